"""The ledger's Alembic migrations on SQLite and on a real PostgreSQL: a new ledger is created at
the head, a pre-Alembic ledger is adopted with its rows, processes starting at once migrate one
at a time, and with SELFHEAL_DB_MIGRATE=false an older schema is refused in one line."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from activities.ledger import Ledger, LedgerError, metadata, migrate, tasks
from activities.ledger.engine import create_engine
from starter.devserver import free_port
from tests.postgres import PostgresCluster

ROOT = Path(__file__).resolve().parents[2]


def version_of(url: str) -> tuple[str, ...]:
    """The schema revisions of the ledger at ``url``."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return migrate.current(conn)
    finally:
        engine.dispose()


def _to(url: str, revision: str) -> None:
    """Migrate ``url`` to ``revision`` with Alembic itself (the way an older selfheal left it)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()
    engine.dispose()


def test_a_new_ledger_is_created_at_the_head(ledger_url: str) -> None:
    ledger = Ledger(ledger_url).open()
    assert ledger.migration == ((), migrate.head())
    assert version_of(ledger_url) == migrate.head()
    assert set(sa.inspect(ledger.engine).get_table_names()) >= set(metadata.tables)
    ledger.close()
    # Opening it again migrates nothing.
    again = Ledger(ledger_url).open()
    assert again.migration == (migrate.head(), migrate.head())
    again.close()


def test_the_migrations_build_exactly_the_schema_module(ledger_url: str) -> None:
    """Every table, column, type, index and key of schema.py, and nothing else: a change to
    schema.py without its revision (or the other way round) fails here."""
    ledger = Ledger(ledger_url).open()
    with ledger.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    ledger.close()


def test_a_ledger_from_before_migrations_is_adopted_with_its_rows(ledger_url: str) -> None:
    # What selfheal made before Alembic: the baseline tables (an older one lacked the outbox),
    # rows, and no alembic_version.
    _to(ledger_url, migrate.BASELINE)
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
        conn.execute(sa.text("DROP TABLE review_outbox"))
        conn.execute(
            tasks.insert().values(
                workflow_id="task-old", task_id="old", agent="SAM", title="t", priority="normal",
                state="succeeded", attempts=1, created_at=sa.func.now(), updated_at=sa.func.now(),
            )
        )  # fmt: skip
    engine.dispose()
    assert version_of(ledger_url) == ()

    ledger = Ledger(ledger_url).open()
    assert ledger.migration == ((), migrate.head())
    assert [r["workflow_id"] for r in ledger.rows(tasks)] == ["task-old"]
    assert ledger.queue_review("pr-o-r-1-abc", "{}", None)
    with ledger.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    ledger.close()


def test_migrate_false_refuses_an_older_schema_in_one_line(ledger_url: str) -> None:
    with pytest.raises(LedgerError) as refused:
        Ledger(ledger_url, migrate=False).open()
    message = str(refused.value)
    assert "\n" not in message
    assert "schema none" in message and "run `selfheal db upgrade`" in message
    assert version_of(ledger_url) == ()  # it migrated nothing

    Ledger(ledger_url).open().close()
    at_head = Ledger(ledger_url, migrate=False).open()
    assert at_head.rows(tasks) == []
    at_head.close()


def test_a_ledger_newer_than_this_code_is_refused(ledger_url: str) -> None:
    Ledger(ledger_url).open().close()
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for migrate_on_start in (True, False):
        with pytest.raises(LedgerError, match="schema 9999, which this selfheal does not know"):
            Ledger(ledger_url, migrate=migrate_on_start).open()


def test_a_migration_waits_for_the_lock(ledger_url: str) -> None:
    """The lock is what keeps two migrations apart: while another process holds it, an open
    waits, and migrates once it is released."""
    holder = create_engine(ledger_url)
    opened = threading.Event()
    ledger = Ledger(ledger_url)

    def open_ledger() -> None:
        ledger.open()
        opened.set()

    with migrate.locked(holder):
        thread = threading.Thread(target=open_ledger, daemon=True)
        thread.start()
        assert not opened.wait(1.0), "the ledger migrated while another process held the lock"
        assert version_of(ledger_url) == ()
    assert opened.wait(30)
    thread.join()
    assert ledger.migration == ((), migrate.head())
    ledger.close()
    holder.dispose()


# Each process says it is ready, then waits for the go file: they open the new ledger together.
RACER = """
import os, sys, time
from activities.ledger import Ledger
url, ready, go = sys.argv[1:]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
ledger = Ledger(url).open()
print(",".join(ledger.migration[0]) or "-")
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new database (for PostgreSQL a real CREATE DATABASE, not a schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()


def test_processes_starting_at_once_all_open_a_new_ledger(
    new_database_url: str, tmp_path: Path
) -> None:
    go, ready = tmp_path / "go", [tmp_path / f"ready-{n}" for n in range(2)]
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, new_database_url, str(flag), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready):
        assert time.monotonic() < deadline and all(r.poll() is None for r in racers)
        time.sleep(0.01)
    go.touch()
    results = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], [err for _, err in results]
    # Under the lock each re-reads the version: exactly one found the ledger new and migrated it.
    assert sorted(out.strip() for out, _ in results) == ["-", ",".join(migrate.head())]
    assert version_of(new_database_url) == migrate.head()


def test_an_unreachable_postgres_is_one_line_without_the_password() -> None:
    url = f"postgresql+psycopg://selfheal:s3cr3t-pw@127.0.0.1:{free_port()}/ledger"
    with pytest.raises(LedgerError) as failed:
        Ledger(url).open()
    message = str(failed.value)
    assert message.startswith(
        "cannot open the ledger at postgresql+psycopg://selfheal:***@127.0.0.1:"
    )
    assert "s3cr3t-pw" not in message and "\n" not in message


@pytest.mark.parametrize(
    "url, says",
    [
        ("not a url at all s3cr3t", "is not a database URL"),
        ("mysql://root:s3cr3t@localhost/x", "supports SQLite and PostgreSQL, not mysql"),
    ],
)
def test_a_bad_ledger_url_is_one_line_without_secrets(url: str, says: str) -> None:
    with pytest.raises(LedgerError, match=says) as failed:
        Ledger(url).open()
    assert "s3cr3t" not in str(failed.value)


def test_a_plain_postgresql_url_uses_psycopg_3(postgres: PostgresCluster) -> None:
    url = postgres.new_schema().replace("postgresql+psycopg://", "postgresql://")
    ledger = Ledger(url).open()
    assert ledger.engine.dialect.driver == "psycopg"
    ledger.close()


DDL_SNAPSHOT = Path(__file__).parent / "ledger_ddl.txt"


def _ddl_at_every_revision(tmp_path: Path) -> str:
    lines = []
    for n, script in enumerate(reversed(list(migrate._scripts().walk_revisions()))):
        url = f"sqlite:///{tmp_path}/ledger-{n}.db"
        _to(url, script.revision)
        engine = create_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                    " AND sql IS NOT NULL ORDER BY type, name"
                )
            ).all()
        engine.dispose()
        lines += [f"-- at revision {script.revision}", *(f"{row.sql};" for row in rows)]
    return "\n".join(lines) + "\n"


def test_each_revision_still_builds_what_it_built_when_written(tmp_path: Path) -> None:
    """The revisions and schema.py share a frozen column vocabulary (migrations/columns.py): an
    edit to it would move both sides of the schema comparison above at once, so each revision's
    DDL is held against a snapshot. A new revision adds its section (the test prints it)."""
    ddl = _ddl_at_every_revision(tmp_path)
    assert ddl.startswith(DDL_SNAPSHOT.read_text()), ddl
