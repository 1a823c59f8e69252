"""Send a command's logs to a file instead of the user's terminal: Python's logging (the SDK's
worker and activity loggers, uvicorn, warnings) and the Temporal core's own Rust logs, which are
forwarded into Python's logging by the runtime rather than printed to stderr."""

import logging
from pathlib import Path

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def core_logging(logger: logging.Logger, level: str = "INFO") -> Runtime:
    """A Temporal runtime whose core logs (at ``level`` and above) go to ``logger``."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level=level, other_level="WARN"),
                forwarding=LogForwardingConfig(logger=logger),
            )
        )
    )


def log_to_file(path: Path, level: int = logging.INFO) -> Path:
    """Every log record of this process goes to ``path``, and only there. Call it before the
    first Temporal client connects: the core's logging is fixed when its runtime is made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    Runtime.set_default(core_logging(logging.getLogger("temporalio.core")))
    return path
