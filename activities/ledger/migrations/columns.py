"""The ledger's column vocabulary, frozen: the revisions and ``schema.py`` build their tables from
these factories. Each makes exactly the columns the revisions that use it created, so none is ever
edited to follow a change to the schema (a change that needs other columns adds its own factory,
and its revision says so itself). Nothing here imports the live schema.
"""

from typing import Any

import sqlalchemy as sa

TZ = sa.DateTime(timezone=True)

# The columns several tables have: each has one type everywhere, since the ledger's readers match
# and join them across tables (a workflow's attempts and failures, an incident's notifications).
_SHARED: dict[str, sa.types.TypeEngine[Any]] = {
    "workflow_id": sa.String(255),
    "task_id": sa.String(255),
    "incident_key": sa.String(255),
    "agent": sa.String(64),
    "fingerprint": sa.String(64),
    "at": TZ,
    "updated_at": TZ,
}


def shared(name: str, **options: Any) -> sa.Column[Any]:
    """A new ``name`` column of its shared type (a column belongs to one table only)."""
    return sa.Column(name, _SHARED[name], **options)


def attempt_key() -> list[sa.Column[Any]]:
    """The key of a table with a row per attempt: the workflow id and the attempt's number."""
    return [shared("workflow_id", primary_key=True), sa.Column("n", sa.Integer, primary_key=True)]


def moments(*names: str) -> list[sa.Column[Any]]:
    """Times that stay null until what they record happens."""
    return [sa.Column(name, TZ) for name in names]
