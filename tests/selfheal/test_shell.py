"""A command's relative program word is made absolute; nothing else in the command changes."""

import shlex
from pathlib import Path

import pytest

from selfheal.shell import absolute_program, relative_program

BASE = Path("/home/me/project")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("./run-agent.sh", "/home/me/project/run-agent.sh"),
        ("./run-agent.sh --fast && echo done", "/home/me/project/run-agent.sh --fast && echo done"),
        ("agents/sam.sh", "/home/me/project/agents/sam.sh"),
        ("../tools/agent", "/home/me/tools/agent"),
        ("FOO=1 BAR=x ./run.sh arg", "FOO=1 BAR=x /home/me/project/run.sh arg"),
        ("./run.sh;echo hi", "/home/me/project/run.sh;echo hi"),
    ],
)
def test_a_relative_program_is_made_absolute(command: str, expected: str):
    assert absolute_program(command, BASE) == expected


@pytest.mark.parametrize(
    "command",
    [
        "claude --print 'fix it'",  # a bare name: PATH finds it
        "/usr/local/bin/agent ./relative-arg",  # absolute already; arguments are the agent's
        "~/bin/agent",
        "'./my agent.sh'",  # quoted: left as written
        "$AGENT ./x",
        "python ./agent.py",  # only the program word is resolved
        './a"b"',
        "",
    ],
)
def test_anything_else_is_left_as_written(command: str):
    assert relative_program(command) is None
    assert absolute_program(command, BASE) == command


def test_a_start_dir_with_spaces_is_quoted():
    command = absolute_program("./run-agent.sh --x", Path("/tmp/my project"))
    assert shlex.split(command) == ["/tmp/my project/run-agent.sh", "--x"]
