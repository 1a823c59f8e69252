"""The ``selfheal`` command: ``main`` parses and runs it (``errors``: what becomes one line on
stderr and exit 2); one module per command group (``run``: dev, worker, api, demo; ``task``,
``commit``, ``pr``, ``db``, ...), each with a ``register(subparsers)``."""

from starter.cli.main import console, main

__all__ = ["console", "main"]
