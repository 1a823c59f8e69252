"""The program of a ``command`` adapter's shell command, made absolute.

A command runs in the task's workspace (``<data dir>/workspaces/<task>``), so a relative program
such as ``./run-agent.sh`` would be looked for there and fail with exit 127. Its program is
resolved instead against the directory the task was started from (client side, at start) or the
worker's directory (a command from the team config). Only the program word is touched, and only
when it is a plain relative path (it has a ``/``, no quotes or shell syntax); a bare name is left
to ``PATH``, and the arguments are left alone: they are the agent's, relative to its workspace.
"""

import os
import re
import shlex
from pathlib import Path

# Leading NAME=value assignments, then the program word, ending where a shell word would.
_PROGRAM = re.compile(
    r"^\s*(?:[A-Za-z_][A-Za-z0-9_]*=[^\s;&|<>()'\"`$\\]*\s+)*"
    r"(?P<word>[^\s;&|<>()'\"`$\\]+)(?=$|[\s;&|<>()])"
)


def relative_program(command: str) -> str | None:
    """The program word of ``command`` when it is a relative path (``./x``, ``../x``, ``bin/x``)."""
    match = _PROGRAM.match(command)
    if not match:
        return None
    word = match["word"]
    if "/" not in word or word.startswith(("/", "~")):
        return None
    return word


def absolute_program(command: str, base: Path) -> str:
    """``command`` with a relative program word made absolute against ``base``."""
    word = relative_program(command)
    if word is None:
        return command
    match = _PROGRAM.match(command)
    assert match is not None
    path = os.path.normpath(os.path.join(os.path.abspath(base), word))
    return command[: match.start("word")] + shlex.quote(path) + command[match.end("word") :]
