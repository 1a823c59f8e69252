"""The layout's import rules (DESIGN §2), read from the source: imports point one way
(``starter``, ``dashboard`` → ``workflows``, ``activities`` → ``selfheal``), ``selfheal`` imports
none of the others except in ``selfheal/plugins.py``, and no package module imports another in a
cycle (the demo runner and its scenarios included)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("selfheal", "workflows", "activities", "starter", "dashboard")
# Which top-level packages each one may import.
ALLOWED = {
    "selfheal": {"selfheal"},
    "workflows": {"workflows", "selfheal", "activities"},
    "activities": {"activities", "selfheal"},
    "starter": {"starter", "selfheal", "workflows", "activities", "dashboard"},
    "dashboard": {"dashboard", "selfheal", "workflows", "activities"},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if "migrations" in parts:
                continue  # Alembic's scripts are loaded by Alembic, not imported
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports (``from a.b import c`` counts a.b.c if a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        out |= {n for n in names if n in known}
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    edges = {name: imports(path, set(found)) for name, path in found.items()}
    for name, path in found.items():
        if path.name == "__init__.py" and "pkgutil.iter_modules" in path.read_text():
            # It imports its modules when it discovers them (the demo's scenarios).
            edges[name] |= {m for m in found if m.rpartition(".")[0] == name}
    return edges


def test_imports_point_one_way() -> None:
    wrong = []
    for module, targets in graph().items():
        top = module.split(".")[0]
        for target in targets:
            if target.split(".")[0] not in ALLOWED[top] and module != "selfheal.plugins":
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_no_import_cycles() -> None:
    edges = graph()
    # A module's package __init__ runs before it: importing a.b.c imports a.b too.
    for module in list(edges):
        for target in list(edges[module]):
            parts = target.split(".")
            edges[module] |= {".".join(parts[:n]) for n in range(1, len(parts))} & set(edges)
        edges[module].discard(module)
    cycles, state = [], dict.fromkeys(edges, 0)

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if node.startswith(nxt + "."):
                continue  # a module needs its package, which is being imported already
            if state[nxt] == 1:
                cycles.append(" → ".join([*path[path.index(nxt) :], nxt]))
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if state[node] == 0:
            visit(node, [node])
    assert cycles == [], cycles
