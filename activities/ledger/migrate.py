"""The ledger's schema versions (Alembic): read, check, and upgrade one process at a time.

Every start migrates (``SELFHEAL_DB_MIGRATE``, default true), so several workers and the API may
upgrade the same new ledger at the same moment: the upgrade holds a lock (PostgreSQL: a session
advisory lock; SQLite: an exclusive lock on a file beside the database) and re-reads the version
under it, so one process migrates and the others find the work done.
"""

import contextlib
import fcntl
import functools
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from activities.ledger.engine import LedgerError, redacted

MIGRATIONS = Path(__file__).parent / "migrations"
# The schema selfheal made with ``metadata.create_all`` before it had migrations; it creates only
# the tables a ledger lacks, so a ledger from before migrations (no version) is adopted as it is.
BASELINE = "0001"
# pg_advisory_lock key: any constant bigint shared by every selfheal process ("selfheal" in hex).
ADVISORY_LOCK_KEY = 0x73656C666865616C


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


@functools.cache
def _revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def head() -> tuple[str, ...]:
    """The revisions this code expects (one, unless two branches added migrations in parallel)."""
    return tuple(sorted(_scripts().get_heads()))


def current(connection: sa.Connection) -> tuple[str, ...]:
    """The revisions the database is at; empty for a new (or pre-Alembic) ledger."""
    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def check(engine: sa.Engine) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Raise ``LedgerError`` unless the ledger is at this code's schema (it migrates nothing)."""
    with engine.connect() as connection:
        at = current(connection)
    _known(engine, at)
    if at != head():
        raise LedgerError(
            f"the ledger at {redacted(engine.url)} is at schema {_name(at)}, this selfheal needs "
            f"{_name(head())}: run `selfheal db upgrade` (or start with SELFHEAL_DB_MIGRATE=true)"
        )
    return at, at


def upgrade(engine: sa.Engine) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Migrate the ledger to the head; returns (the revisions before, after)."""
    with engine.connect() as connection:
        before = current(connection)
    if before == head():
        return before, before
    with locked(engine) as connection:
        before = current(connection)  # another process may have migrated while we waited
        _known(engine, before)
        if before != head():
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")
            connection.commit()
        return before, current(connection)


@contextlib.contextmanager
def locked(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection held alone among selfheal processes migrating this ledger."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(sa.select(sa.func.pg_advisory_lock(ADVISORY_LOCK_KEY)))
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(sa.select(sa.func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":  # private to this process: nobody to wait for
        with engine.connect() as connection:
            yield connection
        return
    with open(f"{database}.migrate-lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _known(engine: sa.Engine, at: tuple[str, ...]) -> None:
    unknown = [rev for rev in at if rev not in _revisions()]
    if unknown:
        raise LedgerError(
            f"the ledger at {redacted(engine.url)} is at schema {_name(tuple(unknown))}, which "
            f"this selfheal does not know (a newer selfheal migrated it): upgrade selfheal"
        )


def _name(revisions: tuple[str, ...]) -> str:
    return "+".join(revisions) if revisions else "none (new, or made before migrations)"
