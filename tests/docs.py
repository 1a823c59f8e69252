"""The fenced code blocks of a Markdown page, each with the test marker written above it:
``<!-- test: NAME -->`` (run by a test under that name) or ``<!-- test: skip: why -->``."""

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(
    r"(?:^<!-- test: (?P<mark>[^\n]*?) -->\n)?^```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@dataclass
class Block:
    mark: str | None  # the test's name, "skip: ...", or None when unmarked
    lang: str
    code: str
    line: int

    @property
    def runnable(self) -> bool:
        return self.mark is not None and not self.mark.startswith("skip:")


def code_blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text()
    return [
        Block(m["mark"], m["lang"], m["code"], text.count("\n", 0, m.start("code")) + 1)
        for m in _BLOCK.finditer(text)
    ]


def block(page: str, name: str) -> str:
    """The code of the block of ``page`` marked ``name``."""
    found = [b.code for b in code_blocks(page) if b.mark == name]
    assert len(found) == 1, f"{page} has {len(found)} blocks marked {name!r}"
    return found[0]


async def run_python(code: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a snippet as written, top-level ``await`` included, in this event loop; its names."""
    namespace = {"__name__": "readme"} if namespace is None else namespace
    compiled = compile(code, "<snippet>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)
    if inspect.iscoroutine(result):
        await result
    return namespace
