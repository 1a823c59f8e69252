"""``python -m starter.cli``: the ``selfheal`` command."""

from starter.cli.main import console

console()
