"""The `selfheal` command line: bad input is one line on stderr and exit code 2, no traceback."""

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from starter.cli.commands import COMMANDS
from starter.cli.errors import UsageError

# Errors worded for one line (besides UsageError, ValueError, FileNotFoundError), by the module
# that defines each: a command that never loaded the module cannot have raised its error, so it
# is not imported just to be checked.
_ONE_LINE_ERRORS = {
    "activities.ledger.engine": "LedgerError",
    "starter.client": "UnreachableError",
    "starter.devserver": "DevServerError",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def fail(message: str) -> NoReturn:
    print(f"selfheal: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given ``argv``, only the module of its command is imported (each
    module registers its commands; their handlers are coroutines taking the args), the others
    are listed by name and help line."""
    parser = _Parser(prog="selfheal", description="Temporal plugins that make agent teams heal")
    parser.add_argument("--config", help="path of selfheal.toml (default: SELFHEAL_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    wanted = None if argv is None else _module_of(argv)
    for name, (module, help_line) in COMMANDS.items():
        if name in sub.choices:  # registered with an earlier command of its module
            continue
        if argv is None or module == wanted:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_line)
    return parser


def _module_of(argv: Sequence[str]) -> str | None:
    """The module of the command ``argv`` asks for, if it names one."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--config")
    probe.add_argument("command", nargs="?")
    known, _ = probe.parse_known_args(argv)
    command = COMMANDS.get(known.command or "")
    return command[0] if command else None


def _one_line(err: BaseException) -> bool:
    if isinstance(err, UsageError | ValueError | FileNotFoundError):
        return True
    return any(
        module in sys.modules and isinstance(err, getattr(sys.modules[module], name))
        for module, name in _ONE_LINE_ERRORS.items()
    )


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
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    handler: Callable[[argparse.Namespace], Coroutine[Any, Any, int | None]] = args.handler
    try:
        code = asyncio.run(handler(args))
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `... | head` closed the pipe: nothing more to say
        _stdout_to_devnull()
        code = 0
    except Exception as err:
        if not _one_line(err):
            raise
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    return code or 0
