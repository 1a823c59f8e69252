"""The learning loop's queries and idempotent writes (M2.5) over the ledger's ``learnings``,
``learning_uses`` and ``failure_resolutions`` tables; SQLite and PostgreSQL.

Failures themselves are the ledger's ``failures`` rows (written with every failed attempt, their
context holding the strategy, the hints and learning ids given, and the normalised template);
counts (occurrences, repeats after publication, agents, tasks) are always computed from them, so
they can never drift from what happened.
"""

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from activities.ledger.schema import (
    attempts,
    failure_resolutions,
    failures,
    learning_uses,
    learnings,
)
from activities.ledger.store import Ledger
from selfheal.learning import (
    ATTACHABLE,
    Learning,
    LearningPolicy,
    LearningScope,
    PatternState,
    PatternStatus,
    Resolution,
    UseRecord,
    advice_from,
    hint_text,
    in_window,
    learning_id,
    merge_templates,
    near_duplicate_groups,
    rescore,
    scope_for,
    score_from,
    select_learnings,
    slug,
)
from selfheal.patterns import (
    AttemptLearning,
    Consolidation,
    HintsRequest,
    LoadPattern,
    Merge,
    PublishInput,
    Recurring,
    StatusChange,
)

_PATTERN_STATUS: dict[str, PatternStatus] = {
    "published": "published",
    "regressed": "regressed",
    "retired": "retired",
}


class UnknownLearning(LookupError):
    pass


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; the ledger writes UTC."""
    if value is None or value.tzinfo is not None:
        return value
    from datetime import UTC

    return value.replace(tzinfo=UTC)


class LearningStore:
    """Synchronous queries and writes; activities call them off the event loop."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @property
    def engine(self) -> sa.Engine:
        return self.ledger.engine  # opened (and migrated) on first use

    # -- reading ---------------------------------------------------------------------------------

    def _learning(self, row: Any, conn: sa.Connection, with_counts: bool = True) -> Learning:
        item = Learning(
            id=row.id,
            fingerprint=row.fingerprint,
            fingerprints=json.loads(row.fingerprints),
            kind=row.kind,
            template=row.template,
            slug=row.slug,
            status=row.status,
            scope=LearningScope.model_validate_json(row.scope),
            advice=json.loads(row.advice),
            hint=row.hint,
            hint_source=row.hint_source,
            score=row.score,
            regressions=row.regressions,
            merged_into=row.merged_into,
            first_seen=_aware(row.first_seen),
            published_at=_aware(row.published_at),
            retired_at=_aware(row.retired_at),
        )
        if with_counts:
            self._count(item, conn)
        return item

    def _count(self, item: Learning, conn: sa.Connection) -> None:
        prints = sorted({item.fingerprint, *item.fingerprints})
        f = failures.c
        row = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.min(f.at),
                sa.func.max(f.at),
                sa.func.count(sa.distinct(f.task_id)),
            ).where(f.fingerprint.in_(prints))
        ).one()
        item.occurrences, item.tasks_seen = row[0], row[3]
        item.first_seen = _aware(row[1]) or item.first_seen
        item.last_seen = _aware(row[2])
        item.agents_seen = sorted(
            conn.execute(sa.select(f.agent).distinct().where(f.fingerprint.in_(prints)))
            .scalars()
            .all()
        )
        if item.published_at is not None:
            item.repeats_after_publication = conn.execute(
                sa.select(sa.func.count()).where(
                    f.fingerprint.in_(prints), f.at > item.published_at
                )
            ).scalar_one()
        u = learning_uses.c
        uses = conn.execute(
            sa.select(u.outcome, sa.func.count())
            .where(u.learning_id == item.id)
            .group_by(u.outcome)
        ).all()
        by = dict((o, n) for o, n in uses)
        item.uses = sum(by.values())
        item.successes = by.get("succeeded", 0)
        item.failures = by.get("failed_same", 0)

    def _covering(self, conn: sa.Connection, fingerprint: str) -> Any:
        """The row of the learning that covers ``fingerprint`` (its own, or the one it was
        merged into), or None."""
        row = conn.execute(
            sa.select(learnings).where(learnings.c.fingerprint == fingerprint)
        ).first()
        seen: set[str] = set()
        while row is not None and row.status == "merged" and row.merged_into not in seen:
            seen.add(row.id)
            row = conn.execute(
                sa.select(learnings).where(learnings.c.id == row.merged_into)
            ).first()
        if row is not None:
            return row
        # A fingerprint first seen after its template was merged: the survivor lists it.
        like = conn.execute(
            sa.select(learnings).where(
                learnings.c.status != "merged",
                learnings.c.fingerprints.contains(f'"{fingerprint}"'),
            )
        ).first()
        return like

    def all(self, statuses: Iterable[str] | None = None) -> list[Learning]:
        stmt = sa.select(learnings).order_by(learnings.c.id)
        if statuses is not None:
            stmt = stmt.where(learnings.c.status.in_(list(statuses)))
        with self.engine.connect() as conn:
            return [self._learning(r, conn) for r in conn.execute(stmt).all()]

    def get(self, key: str) -> Learning:
        """A learning by id, fingerprint or slug."""
        c = learnings.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(learnings).where(sa.or_(c.id == key, c.fingerprint == key, c.slug == key))
            ).first()
            if row is None:
                raise UnknownLearning(f"no learning {key!r} (see selfheal patterns list)")
            return self._learning(row, conn)

    def hints_for(self, request: HintsRequest) -> list[Learning]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(learnings).where(
                    learnings.c.status.in_(sorted(ATTACHABLE)), learnings.c.score > 0
                )
            ).all()
            candidates = [self._learning(r, conn, with_counts=False) for r in rows]
            return select_learnings(candidates, request)

    def advice_for(self, fingerprint: str, kinds: Iterable[str] | None = None) -> Learning | None:
        """The published (or regressed) learning for a fingerprint, whatever its score: the
        failure just happened, so its advice is the best there is."""
        with self.engine.connect() as conn:
            row = self._covering(conn, fingerprint)
            if row is None or row.status not in ATTACHABLE:
                return None
            if kinds is not None and row.kind not in set(kinds):
                return None
            return self._learning(row, conn, with_counts=False)

    def load_pattern(self, request: LoadPattern) -> PatternState:
        """A Pattern entity's state rebuilt from the ledger (a first start, or a start after the
        entity retired itself and ended): counts from the failures, status from the learning."""
        state = PatternState(
            fingerprint=request.fingerprint, kind=request.kind, template=request.template
        )
        f = failures.c
        with self.engine.connect() as conn:
            row = self._covering(conn, request.fingerprint)
            seen = conn.execute(
                sa.select(f.workflow_id, f.n, f.at, f.agent, f.task_id, f.context)
                .where(f.fingerprint == request.fingerprint)
                .order_by(f.at, f.workflow_id, f.n)
            ).all()
        if row is not None:
            status = "published" if row.status == "merged" else row.status
            state.status = _PATTERN_STATUS.get(status, "new")
            state.learning_id = row.id
            state.published_at = _aware(row.published_at)
            state.regressions = row.regressions
        retired_at = _aware(row.retired_at) if row is not None else None
        times: list[datetime] = []
        for workflow_id, n, at, agent, task_id, context in seen:
            at = _aware(at)
            assert at is not None
            times.append(at)
            state.occurrences += 1
            state.first_seen = state.first_seen or at
            state.last_seen = at
            state.recent_keys = [*state.recent_keys, f"{workflow_id}#{n}"][-50:]
            details = json.loads(context or "{}")
            for items, item in ((state.agents, agent), (state.repos, details.get("repo"))):
                if item and item not in items:
                    items.append(item)
            state.repo_missing = state.repo_missing or not details.get("repo")
            if task_id not in state.tasks:
                state.tasks.append(task_id)
                if details.get("title"):
                    state.titles.append(details["title"])
            strategy = details.get("strategy")
            if strategy and strategy != "initial" and strategy not in state.strategies_failed:
                state.strategies_failed.append(strategy)
        if state.status == "retired" and retired_at and times and times[-1] > retired_at:
            state.status, times = "new", [t for t in times if t > retired_at]  # it came back
        elif state.status in ("published", "regressed") and state.published_at:
            state.repeats = sum(1 for t in times if t > state.published_at)
        if times:
            state.recent = in_window(times, times[-1], request.window)[-request.min_occurrences :]
        del state.agents[:-20], state.tasks[:-20], state.titles[:-20], state.repos[:-20]
        return state

    def resolutions(self, conn: sa.Connection, prints: Sequence[str]) -> list[Resolution]:
        r = failure_resolutions.c
        rows = conn.execute(
            sa.select(r.strategy, r.agent)
            .select_from(
                failure_resolutions.join(
                    failures, sa.and_(failures.c.workflow_id == r.workflow_id, failures.c.n == r.n)
                )
            )
            .where(failures.c.fingerprint.in_(list(prints)), r.by == "attempt")
        ).all()
        return [Resolution(strategy=s, agent=a) for s, a in rows if s and a]

    def failed_strategies(self, conn: sa.Connection, prints: Sequence[str]) -> list[str]:
        a = attempts.c
        return list(
            conn.execute(
                sa.select(a.strategy).distinct().where(a.fingerprint.in_(list(prints)))
            ).scalars()
        )

    # -- writing ---------------------------------------------------------------------------------

    def publish(self, input: PublishInput) -> Learning:
        """Publish the learning of ``input.state``'s fingerprint (idempotent: an already published
        one is returned as is; a retired one is published again with a fresh score)."""
        state, policy, at = input.state, input.policy, input.at
        with self.engine.begin() as conn:
            row = self._covering(conn, state.fingerprint)
            if row is not None and row.status in ATTACHABLE:
                return self._learning(row, conn)
            prints = [state.fingerprint]
            advice = advice_from(
                state.kind,
                self.resolutions(conn, prints),
                [*state.strategies_failed, *self.failed_strategies(conn, prints)],
            )
            if row is not None:  # retired (or never published): publish it again
                values: dict[str, Any] = {
                    "status": "published",
                    "published_at": at,
                    "retired_at": None,
                    "score": policy.initial_score,
                    "advice": advice.model_dump_json(),
                    "updated_at": at,
                }
                conn.execute(learnings.update().where(learnings.c.id == row.id).values(values))
                item = self._learning(
                    conn.execute(sa.select(learnings).where(learnings.c.id == row.id)).one(), conn
                )
                if item.hint_source == "generated":
                    item.hint = hint_text(item)
                    conn.execute(
                        learnings.update().where(learnings.c.id == item.id).values(hint=item.hint)
                    )
                return item
            item = Learning(
                id=learning_id(state.fingerprint),
                fingerprint=state.fingerprint,
                kind=state.kind,
                template=state.template,
                slug=slug(state.template, state.fingerprint),
                status="published",
                scope=scope_for(state),
                advice=advice,
                score=policy.initial_score,
                first_seen=state.first_seen,
                published_at=at,
            )
            self._count(item, conn)
            item.occurrences = max(item.occurrences, state.occurrences)
            item.agents_seen = sorted({*item.agents_seen, *state.agents})
            item.hint = hint_text(item)
            conn.execute(
                self.ledger._upsert(learnings, self._row(item, at), [])
            )  # a concurrent publish of the same fingerprint wins; ours is the same
            row = conn.execute(sa.select(learnings).where(learnings.c.id == item.id)).one()
            return self._learning(row, conn)

    def _readvise(self, conn: sa.Connection, row: Any, now: datetime) -> None:
        """The advice from every resolution seen so far (a generated hint follows it)."""
        prints = sorted({row.fingerprint, *json.loads(row.fingerprints)})
        advice = advice_from(
            row.kind, self.resolutions(conn, prints), self.failed_strategies(conn, prints)
        )
        if advice.model_dump_json() == row.advice:
            return
        values: dict[str, Any] = {"advice": advice.model_dump_json(), "updated_at": now}
        if row.hint_source == "generated":
            item = self._learning(row, conn)
            item.advice = advice
            values["hint"] = hint_text(item)
        conn.execute(learnings.update().where(learnings.c.id == row.id).values(values))

    def _row(self, item: Learning, now: datetime) -> dict[str, Any]:
        return {
            "id": item.id,
            "fingerprint": item.fingerprint,
            "fingerprints": _json(sorted(set(item.fingerprints) - {item.fingerprint})),
            "kind": item.kind,
            "template": item.template,
            "slug": item.slug,
            "status": item.status,
            "scope": item.scope.model_dump_json(),
            "advice": item.advice.model_dump_json(),
            "hint": item.hint,
            "hint_source": item.hint_source,
            "score": item.score,
            "regressions": item.regressions,
            "merged_into": item.merged_into,
            "first_seen": item.first_seen,
            "published_at": item.published_at,
            "retired_at": item.retired_at,
            "updated_at": now,
        }

    def set_status(self, change: StatusChange) -> Learning | None:
        """Regress, retire or republish the learning covering a fingerprint; idempotent."""
        with self.engine.begin() as conn:
            row = self._covering(conn, change.fingerprint)
            if row is None or row.status == change.status:
                return self._learning(row, conn) if row is not None else None
            values: dict[str, Any] = {"status": change.status, "updated_at": change.at}
            if change.status == "retired":
                values["retired_at"] = change.at
            elif change.status == "regressed":
                values["regressions"] = row.regressions + 1
            elif change.status == "published":
                values |= {"published_at": change.at, "retired_at": None}
            conn.execute(learnings.update().where(learnings.c.id == row.id).values(values))
            return self._learning(
                conn.execute(sa.select(learnings).where(learnings.c.id == row.id)).one(), conn
            )

    def retire(self, key: str, at: datetime) -> Learning:
        item = self.get(key)
        if item.status == "merged":
            raise UnknownLearning(f"{key} was merged into {item.merged_into}; retire that one")
        self.set_status(StatusChange(fingerprint=item.fingerprint, status="retired", at=at))
        return self.get(item.id)

    def set_hint(self, learning_id: str, text: str, at: datetime) -> bool:
        """A person's rewrite of a hint; True when it changed the ledger."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                learnings.update()
                .where(
                    learnings.c.id == learning_id,
                    sa.or_(learnings.c.hint != text, learnings.c.hint_source != "person"),
                )
                .values(hint=text, hint_source="person", updated_at=at)
            ).rowcount
        return bool(changed)

    def after_attempt(self, entry: AttemptLearning, policy: LearningPolicy) -> None:
        """Record the uses of learnings by one attempt (each use votes once on its learning's
        score) and, when the attempt succeeded or the task ended, what resolved its earlier
        failures. Idempotent: a retried call changes nothing."""
        with self.engine.begin() as conn:
            for use in entry.uses:
                # RETURNING, not rowcount (psycopg reports -1 for ON CONFLICT DO NOTHING)
                stmt = self.ledger._upsert(learning_uses, self._use_row(use), [])
                if conn.execute(stmt.returning(learning_uses.c.attempt)).first() is None:
                    continue  # recorded before: it has voted already
                current = conn.execute(
                    sa.select(learnings.c.score).where(learnings.c.id == use.learning_id)
                ).scalar()
                if current is None:
                    continue
                score = rescore(current, use.outcome, policy)
                if score != current:
                    conn.execute(
                        learnings.update()
                        .where(learnings.c.id == use.learning_id)
                        .values(score=score, updated_at=use.at)
                    )
            for n in entry.resolves:
                row: dict[str, Any]
                if entry.ended_by_incident:
                    row = {"by": "escalation", "incident_key": entry.ended_by_incident}
                else:
                    row = {
                        "by": "attempt",
                        "attempt": entry.attempt,
                        "strategy": entry.strategy,
                        "agent": entry.agent,
                        "learning_ids": _json(sorted({u.learning_id for u in entry.uses})),
                    }
                row |= {"workflow_id": entry.workflow_id, "n": n, "at": entry.at}
                row.setdefault("learning_ids", "[]")
                conn.execute(self.ledger._upsert(failure_resolutions, row, []))

    @staticmethod
    def _use_row(use: UseRecord) -> dict[str, Any]:
        return use.model_dump()

    def uses(self, learning_id: str) -> list[UseRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(learning_uses).where(learning_uses.c.learning_id == learning_id)
            ).all()
        return [UseRecord.model_validate(dict(r._mapping) | {"at": _aware(r.at)}) for r in rows]

    def consolidate(self, policy: LearningPolicy, now: datetime, analysis_id: str) -> Consolidation:
        """The weekly pass: merge near-duplicate templates, rescore every learning from its
        uses, retire the ones not seen for ``retire_after``. Deterministic and idempotent."""
        report = Consolidation(analysis_id=analysis_id, now=now)
        with self.engine.begin() as conn:
            live = [
                self._learning(r, conn)
                for r in conn.execute(
                    sa.select(learnings).where(learnings.c.status != "merged")
                ).all()
            ]
            for group in near_duplicate_groups(
                [x for x in live if x.status != "retired"], policy.merge_similarity
            ):
                keep, rest = group[0], group[1:]
                template = keep.template
                for other in rest:
                    template = merge_templates(template, other.template)
                prints = sorted({*keep.fingerprints, *(p for o in rest for p in o.all_prints())})
                prints = [p for p in prints if p != keep.fingerprint]
                conn.execute(
                    learnings.update()
                    .where(learnings.c.id == keep.id)
                    .values(template=template, fingerprints=_json(prints), updated_at=now)
                )
                conn.execute(
                    learnings.update()
                    .where(learnings.c.id.in_([o.id for o in rest]))
                    .values(status="merged", merged_into=keep.id, updated_at=now)
                )
                report.merged.append(
                    Merge(into=keep.id, merged=[o.id for o in rest], template=template)
                )
            u = learning_uses.c
            rows = conn.execute(
                sa.select(learnings).where(learnings.c.status != "merged").order_by(learnings.c.id)
            ).all()
            for row in rows:
                # its own votes and those of the near-duplicates merged into it, in time order
                ids = [
                    row.id,
                    *conn.execute(
                        sa.select(learnings.c.id).where(learnings.c.merged_into == row.id)
                    ).scalars(),
                ]
                outcomes = (
                    conn.execute(
                        sa.select(u.outcome)
                        .where(u.learning_id.in_(ids))
                        .order_by(u.at, u.workflow_id, u.attempt)
                    )
                    .scalars()
                    .all()
                )
                score = score_from(outcomes, policy) if outcomes else row.score
                if score != row.score:
                    conn.execute(
                        learnings.update().where(learnings.c.id == row.id).values(score=score)
                    )
                    report.rescored[row.id] = score
                self._readvise(conn, row, now)
            for row in conn.execute(sa.select(learnings).order_by(learnings.c.id)).all():
                item = self._learning(row, conn)
                report.learnings.append(item)  # a merged one too: its file says where it went
                if item.status == "merged":
                    continue
                idle = (
                    item.last_seen is not None
                    and (now - item.last_seen).total_seconds() >= policy.retire_after
                )
                if item.status in ("published", "regressed", "new") and idle:
                    conn.execute(
                        learnings.update()
                        .where(learnings.c.id == item.id)
                        .values(status="retired", retired_at=now, updated_at=now)
                    )
                    item.status, item.retired_at = "retired", now
                    report.retired.append(item.id)
                if item.published_at and now - item.published_at <= timedelta(
                    seconds=policy.window
                ):
                    report.new.append(item.id)
                if item.status == "regressed":
                    report.regressed.append(item.id)
            since = now - timedelta(seconds=policy.window)
            recurring = []
            for item in report.learnings:
                if item.status == "merged":
                    continue
                n = conn.execute(
                    sa.select(sa.func.count()).where(
                        failures.c.fingerprint.in_(item.all_prints()), failures.c.at >= since
                    )
                ).scalar_one()
                if n:
                    recurring.append(Recurring(id=item.id, template=item.template, occurrences=n))
            report.top_recurring = sorted(recurring, key=lambda r: (-r.occurrences, r.id))[:5]
        return report


def max_repeats_after_learning(
    conn: sa.Connection, kinds: Iterable[str] = ("task", "agent")
) -> int | None:
    """The seed metric "same mistake repeated after learning": the most failures of one
    fingerprint after its learning was published, over the learnings of ``kinds`` (those fed
    back to dispatches); None while no learning has been published. One grouped query."""
    lc, f = learnings.c, failures.c
    per_learning = (
        sa.select(sa.func.count(f.fingerprint).label("n"))
        .select_from(
            learnings.outerjoin(
                failures, sa.and_(f.fingerprint == lc.fingerprint, f.at > lc.published_at)
            )
        )
        .where(lc.published_at.is_not(None), lc.kind.in_(list(kinds)))
        .group_by(lc.id)
        .subquery()
    )
    return conn.execute(sa.select(sa.func.max(per_learning.c.n))).scalar()
