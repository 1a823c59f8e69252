"""Workflow code stays deterministic, including the helper modules that are passed through the
sandbox (their code runs unchecked by it): no clocks, randomness, I/O or threads outside
``workflow.*``, checked in the source of every module of workflows/."""

import ast
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
# Modules a workflow never imports: time, randomness, I/O, processes, threads, the network.
BANNED_MODULES = {
    "os", "random", "secrets", "socket", "subprocess", "threading", "time", "uuid",
    "httpx", "requests", "sqlalchemy", "urllib", "shutil", "pathlib",
}  # fmt: skip
# Calls that read the clock or the world (``workflow.now()``, ``workflow.uuid4()`` and
# ``workflow.random()`` are the deterministic ones).
BANNED_CALLS = {"now", "utcnow", "today", "fromtimestamp", "open", "print", "input"}


def _modules() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.py"))


def _violations(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        found += [
            f"{path.name}:{node.lineno} imports {n}"
            for n in names
            if n.split(".")[0] in BANNED_MODULES
        ]
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value if isinstance(func, ast.Attribute) else None
            is_workflow_api = isinstance(owner, ast.Name) and owner.id == "workflow"
            if name in BANNED_CALLS and not is_workflow_api:
                found.append(f"{path.name}:{node.lineno} calls {name}()")
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_no_clock_randomness_or_io_in_workflow_code(path: Path) -> None:
    assert _violations(path) == []


def test_the_check_finds_what_it_bans(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import time\nfrom datetime import datetime\n"
        "def f():\n    return datetime.now(), open('x'), workflow.now()\n"
    )
    assert _violations(bad) == [
        "bad.py:1 imports time",
        "bad.py:4 calls now()",
        "bad.py:4 calls open()",
    ]
