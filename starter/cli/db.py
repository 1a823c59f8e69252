"""``selfheal db upgrade``: apply the ledger's Alembic migrations (a new ledger is created at the
head). Workers and the API also migrate when they start, unless SELFHEAL_DB_MIGRATE=false."""

import argparse
import asyncio
import json

from activities.ledger import Ledger
from activities.ledger.engine import redacted
from selfheal.config import load_settings
from starter.cli.commands import add_command


def register(sub: argparse._SubParsersAction) -> None:
    db = add_command(sub, "db")
    commands = db.add_subparsers(dest="db_command", required=True, parser_class=type(db))
    upgrade = commands.add_parser("upgrade", help="apply the ledger's migrations (Alembic)")
    upgrade.add_argument("--json", action="store_true", help="print the result as JSON")
    upgrade.set_defaults(handler=run_upgrade)


async def run_upgrade(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    ledger = Ledger(settings.ledger_url, migrate=True)
    await asyncio.to_thread(ledger.open)
    ledger.close()
    assert ledger.migration is not None
    before, after = ledger.migration
    where = redacted(settings.ledger_url)
    if args.json:
        print(json.dumps({"ledger": where, "from": list(before), "to": list(after)}))
    elif before == after:
        print(f"ledger {where}: at the head ({'+'.join(after)}), nothing to do")
    else:
        print(f"ledger {where}: upgraded from {'+'.join(before) or 'nothing'} to {'+'.join(after)}")
    return 0
