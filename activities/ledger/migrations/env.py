"""Alembic environment of the ledger.

selfheal runs it through ``activities.ledger.migrate`` with a connection that holds the migration
lock (``config.attributes["connection"]``). From the top of the tree, ``alembic upgrade heads`` and
``alembic revision --autogenerate -m "..."`` use ``-x url=...``, ``sqlalchemy.url`` in
alembic.ini, or else the ledger URL of the selfheal settings (SELFHEAL_DB_URL, the data dir).
"""

from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from activities.ledger.engine import create_engine
from activities.ledger.schema import metadata


def run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters a table by copying it: later revisions' ALTERs need batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def url() -> str:
    given = context.get_x_argument(as_dictionary=True).get("url")
    given = given or context.config.get_main_option("sqlalchemy.url")
    if given:
        return given
    from selfheal.config import load_settings

    return load_settings().ledger_url


if context.config.config_file_name is not None:  # the alembic command, not selfheal itself
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    raise SystemExit("the ledger's migrations run online only (alembic upgrade heads)")

shared = context.config.attributes.get("connection")
if shared is not None:
    run(shared)
else:
    engine = create_engine(url())
    with engine.connect() as connection:
        run(connection)
        connection.commit()
    engine.dispose()
