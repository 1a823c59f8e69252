"""The ``selfheal`` commands: each one's help line and the module that declares and runs it.

The command line imports a command's module only when that command is asked for, so ``selfheal
--help``, a mistyped command or flag answer at once, without loading Temporal or the ledger.
"""

import argparse

# name: (its module, its help line); the order of ``selfheal --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("starter.cli.run", "embedded Temporal dev server + worker + API (foreground)"),
    "demo": ("starter.cli.run", "the whole scenario end to end, then the success metrics"),
    "worker": ("starter.cli.run", "a selfheal worker alone (TEMPORAL_ADDRESS, ...)"),
    "api": ("starter.cli.run", "the webhook + dashboard server alone"),
    "task": ("starter.cli.task", "start, list, read or act on AgentTasks"),
    "commit": ("starter.cli.commit", "guard commits: build, revert a breaking one"),
    "hooks": ("starter.cli.commit", "install the git hook that guards every commit"),
    "pr": ("starter.cli.pr", "pull request reviews (M2.3)"),
    "db": ("starter.cli.db", "the ledger's schema"),
    "status": ("starter.cli.status", "the health summary (M2.6): agents, incidents, seed"),
    "patterns": ("starter.cli.patterns", "the learnings from repeated failures (M2.5)"),
    "schedules": ("starter.schedules", "the Temporal Schedules selfheal runs"),
}


def add_command(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    """The parser of command ``name``, with its help line."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=COMMANDS[name][1])
    return parser
