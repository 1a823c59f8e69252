"""Hourly rollups of a time-stamped table, so a 7-day window or an all-time counter over a
million rows costs a few small queries instead of a scan.

A range ``[start, end)`` is answered from hours that are over (cached in memory, filled with one
grouped query when missing) plus at most two partial pieces read live: the unaligned head and
the recent tail. An hour is cached once it ended ``settle`` seconds ago: ledger rows are written
seconds after their time stamp, so a closed hour no longer changes.
"""

import itertools
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

HOUR = 3600
Key = tuple[object, ...]


def epoch(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def bucket_of(column: ColumnElement, dialect: str, width: int) -> ColumnElement:
    """The integer ``floor(epoch(column) / width)`` in SQL, for SQLite and PostgreSQL."""
    if dialect == "sqlite":
        seconds = sa.cast(sa.func.strftime("%s", column), sa.Integer)
        return sa.cast(seconds / width, sa.Integer)
    return sa.cast(sa.func.floor(sa.extract("epoch", column) / width), sa.Integer)


class Rollup:
    """Counts of rows of ``table`` grouped by ``keys``, over any time range of ``column``."""

    def __init__(
        self,
        column: ColumnElement,
        keys: Sequence[ColumnElement],
        where: ColumnElement[bool] | None = None,
        settle: float = 600.0,
    ) -> None:
        self.column, self.keys, self.where, self.settle = column, list(keys), where, settle
        self._hours: dict[int, Counter[Key]] = {}
        # sums of closed hours: by (first, last) hour, and the longest one by its first hour, so
        # a range that grows (all time) adds its new hours instead of summing them all again
        self._sums: dict[tuple[int, int], Counter[Key]] = {}
        self._longest: dict[int, tuple[int, Counter[Key]]] = {}
        self._lock = threading.Lock()

    def _select(self, *columns: ColumnElement, start: int, end: int) -> sa.Select:
        stmt = sa.select(*columns).where(self.column >= at(start), self.column < at(end))
        return stmt.where(self.where) if self.where is not None else stmt

    def live(self, conn: Connection, start: int, end: int) -> Counter[Key]:
        """Counts over ``[start, end)`` straight from the table."""
        if end <= start:
            return Counter()
        stmt = self._select(*self.keys, sa.func.count(), start=start, end=end)
        rows = conn.execute(stmt.group_by(*self.keys))
        return Counter({tuple(r[:-1]): r[-1] for r in rows})

    def _fill(self, conn: Connection, first: int, last: int) -> None:
        """Cache the hours ``first..last`` (hour numbers) with one grouped query."""
        bucket = bucket_of(self.column, conn.dialect.name, HOUR).label("bucket")
        stmt = self._select(bucket, *self.keys, sa.func.count(), start=first * HOUR,
                            end=(last + 1) * HOUR)  # fmt: skip
        hours: dict[int, Counter[Key]] = {h: Counter() for h in range(first, last + 1)}
        for row in conn.execute(stmt.group_by(bucket, *self.keys)):
            hours[int(row[0])][tuple(row[1:-1])] += row[-1]
        with self._lock:
            self._hours.update(hours)

    def counts(self, conn: Connection, start: int, end: int, now: float | None = None) -> Counter:
        if end <= start:
            return Counter()
        closed = int(((now if now is not None else time.time()) - self.settle) // HOUR)
        first = -(-start // HOUR)  # the first whole hour
        last = min(end // HOUR, closed) - 1  # the last whole hour that is over
        if last < first:
            return self.live(conn, start, end)
        with self._lock:
            missing = [h for h in range(first, last + 1) if h not in self._hours]
        if missing:
            self._fill(conn, missing[0], missing[-1])
        total = self.live(conn, start, first * HOUR) + self.live(conn, (last + 1) * HOUR, end)
        total.update(self._closed_sum(first, last))  # a copy: the cached sum stays as it is
        return total

    def _closed_sum(self, first: int, last: int) -> Counter[Key]:
        with self._lock:
            found = self._sums.get((first, last))
            if found is not None:
                return found
            done, summed = self._longest.get(first, (first - 1, Counter()))
            if done > last:
                done, summed = first - 1, Counter()
            summed = summed.copy()
            for h in range(done + 1, last + 1):
                summed.update(self._hours[h])
            if len(self._sums) > 1024:
                self._sums.clear()
                self._longest.clear()
            self._sums[(first, last)] = summed
            if last >= self._longest.get(first, (first - 1, None))[0]:
                self._longest[first] = (last, summed)
            return summed

    def series(
        self, conn: Connection, start: int, end: int, width: int, now: float | None = None
    ) -> list[Counter[Key]]:
        """Counts per bucket of ``width`` seconds on the epoch grid, from ``start`` to ``end``."""
        edges = [start, *range((start // width + 1) * width, end, width), end]
        if width < HOUR:
            bucket = bucket_of(self.column, conn.dialect.name, width).label("bucket")
            stmt = self._select(bucket, *self.keys, sa.func.count(), start=start, end=end)
            out: list[Counter[Key]] = [Counter() for _ in edges[:-1]]
            base = start // width
            for row in conn.execute(stmt.group_by(bucket, *self.keys)):
                out[int(row[0]) - base][tuple(row[1:-1])] += row[-1]
            return out
        return [self.counts(conn, a, b, now) for a, b in itertools.pairwise(edges)]

    def earliest(self, conn: Connection) -> int | None:
        stmt = sa.select(sa.func.min(self.column))
        if self.where is not None:
            stmt = stmt.where(self.where)
        value = conn.execute(stmt).scalar()
        if value is None:
            return None
        return epoch(value) if isinstance(value, datetime) else epoch(datetime.fromisoformat(value))

    def total(self, conn: Connection, now: float | None = None) -> Counter[Key]:
        """All-time counts."""
        now = now if now is not None else time.time()
        first = self.earliest(conn)
        if first is None:
            return Counter()
        return self.counts(conn, first, int(now) + 1, now)
