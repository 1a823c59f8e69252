"""Engines for a ledger URL: SQLite under the data dir, or PostgreSQL through psycopg 3.

Errors are ``LedgerError``, worded for one line on stderr; a password in the URL is never shown.
"""

from pathlib import Path
from typing import Any

import sqlalchemy as sa

# How long a PostgreSQL connection attempt may take before the ledger counts as unreachable.
CONNECT_TIMEOUT_S = 10


class LedgerError(RuntimeError):
    """The ledger cannot be opened or is at the wrong schema; one line, no secrets."""


def parse_url(url: str) -> sa.URL:
    """``url`` as a SQLAlchemy URL; a plain ``postgresql://`` URL uses psycopg 3."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        # SQLAlchemy's message repeats the URL, and with it any password: say it without.
        raise LedgerError(
            "the ledger URL (SELFHEAL_DB_URL) is not a database URL; expected "
            "sqlite:///path/ledger.db or postgresql+psycopg://user:password@host:5432/db"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise LedgerError(
            f"the ledger supports SQLite and PostgreSQL, not {parsed.get_backend_name()}"
        )
    return parsed


def redacted(url: str | sa.URL) -> str:
    """``url`` for messages: the password, if any, as ``***``."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable URL>"


def create_engine(url: str) -> sa.Engine:
    parsed = parse_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    elif "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args)
    except ImportError as err:
        raise LedgerError(f"the ledger's database driver is not installed: {err}") from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def unreachable(url: str | sa.URL, err: sa.exc.DBAPIError) -> LedgerError:
    """A one-line ``LedgerError`` for a database that refused or never answered."""
    parsed = sa.make_url(url)
    reason = str(err.orig).strip().splitlines()[0] if str(err.orig).strip() else type(err).__name__
    if parsed.password:
        reason = reason.replace(str(parsed.password), "***")
    return LedgerError(f"cannot open the ledger at {redacted(parsed)}: {reason}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # busy_timeout first: switching a new file to WAL waits for a writer in another process.
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
