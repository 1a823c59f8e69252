"""The ledger (DESIGN §6): ``schema`` (the tables, one ``metadata``), ``store`` (``Ledger``:
queries and idempotent writes), ``migrate`` and ``migrations/`` (Alembic), ``activities`` (the
thin activity classes over the store), ``engine`` (URLs, engines, ``LedgerError``)."""

from activities.ledger.activities import CommitGuardLedgerActivities, LedgerActivities
from activities.ledger.engine import LedgerError
from activities.ledger.schema import (
    attempts,
    blockers,
    commit_guards,
    failures,
    incidents,
    metadata,
    notifications,
    review_outbox,
    tasks,
)
from activities.ledger.store import Ledger

__all__ = [
    "CommitGuardLedgerActivities",
    "Ledger",
    "LedgerActivities",
    "LedgerError",
    "attempts",
    "blockers",
    "commit_guards",
    "failures",
    "incidents",
    "metadata",
    "notifications",
    "review_outbox",
    "tasks",
]
