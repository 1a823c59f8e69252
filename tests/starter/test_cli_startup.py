"""The command line loads a command's module only when that command runs."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from starter.cli.commands import COMMANDS
from starter.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from starter.cli.main import execute
try:
    execute(sys.argv[1:])
except SystemExit:
    pass
print(sorted(m for m in ("temporalio", "sqlalchemy", "starter.cli.task") if m in sys.modules))
"""


@pytest.mark.parametrize("argv", [["--help"], ["tsk"], ["--config", "x.toml"], []])
def test_help_and_mistakes_load_no_command(argv: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert run.stdout.strip().splitlines()[-1] == "[]"
    assert run.stderr.count("selfheal: error:") == (0 if argv == ["--help"] else 1)


def test_each_command_is_registered_by_the_module_the_table_names() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)
    for name, parser in sub.choices.items():
        lone = build_parser([name, "--help"])
        lone_sub = next(a for a in lone._actions if isinstance(a, argparse._SubParsersAction))
        assert lone_sub.choices[name].format_help() == parser.format_help(), name
