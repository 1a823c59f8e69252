"""The `selfheal` command line: bad input is one line on stderr and exit code 2, no traceback."""

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from activities.ledger import LedgerError
from selfheal.config import ConfigError
from selfheal.durations import DurationError
from starter import schedules
from starter.cli import commit, db, patterns, pr, run, status, task
from starter.cli.errors import UsageError
from starter.client import UnreachableError
from starter.devserver import DevServerError

# Each command group registers its subcommands; its handlers are coroutines taking the args.
COMMAND_GROUPS = [
    run,
    task,
    commit,
    pr,
    db,
    status,
    patterns,
    schedules,
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def fail(message: str) -> NoReturn:
    print(f"selfheal: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="selfheal", description="Temporal plugins that make agent teams heal")
    parser.add_argument("--config", help="path of selfheal.toml (default: SELFHEAL_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    raise SystemExit(execute(argv))


def console() -> None:
    """The ``selfheal`` console script: ``main`` without interpreter finalization, where the
    Temporal client's native threads can abort the process after all the work is done."""
    try:
        code = execute()
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
    sys.stderr.flush()
    os._exit(code)


def _stdout_to_devnull() -> None:
    """The reader of our output went away (``selfheal task show X | head``): drop the rest."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def execute(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], Coroutine[Any, Any, int | None]] = args.handler
    try:
        code = asyncio.run(handler(args))
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `... | head` closed the pipe: nothing more to say
        _stdout_to_devnull()
        code = 0
    except (
        UsageError,
        ConfigError,
        LedgerError,
        DurationError,
        UnreachableError,
        DevServerError,
        ValueError,
        FileNotFoundError,
    ) as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    return code or 0
