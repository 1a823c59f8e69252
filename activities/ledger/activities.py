"""Ledger writes as activities: thin, each one call of the store off the event loop.

Every write is idempotent, so Temporal's retries are safe. AgentTask calls the attempt and
incident writes as local activities (one marker per write, not a round trip).
"""

import asyncio

from temporalio import activity

from activities.ledger.store import Ledger
from selfheal.models import AttemptLedgerEntry, IncidentRecord, IncidentUpdate
from selfheal.rollback import GuardLedgerEntry


class LedgerActivities:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @activity.defn(name="ledger.record_attempt")
    async def record_attempt(self, entry: AttemptLedgerEntry) -> None:
        await asyncio.to_thread(self.ledger.record_attempt, entry)

    @activity.defn(name="ledger.open_incident")
    async def open_incident(self, record: IncidentRecord) -> None:
        await asyncio.to_thread(self.ledger.open_incident, record)

    @activity.defn(name="ledger.update_incident")
    async def update_incident(self, update: IncidentUpdate) -> None:
        await asyncio.to_thread(self.ledger.update_incident, update)

    def all(self) -> list:
        return [self.record_attempt, self.open_incident, self.update_incident]


class CommitGuardLedgerActivities:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @activity.defn(name="ledger.record_commit_guard")
    async def record_commit_guard(self, entry: GuardLedgerEntry) -> None:
        await asyncio.to_thread(self.ledger.record_commit_guard, entry)
