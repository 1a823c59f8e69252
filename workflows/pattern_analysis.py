"""PatternAnalysis: the weekly consolidation of the learnings (M2.5).

Run by the Temporal Schedule ``selfheal-pattern-analysis`` (Monday 06:00 UTC; id
``patterns-<scheduled time>``) or by ``selfheal patterns analyze`` (``patterns-now-<n>``). Over
the ledger it merges near-duplicate templates, rescores every learning from the outcomes of its
uses and retires the ones not seen for ``retire_after``; then it writes ``docs/patterns/*.md``
(committed once when the directory is in a git repository), takes back the hints people
rewrote there, and posts a digest to the ``dev`` channel. Every step is idempotent, so a worker
killed halfway through leaves one commit and no duplicate learning.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.learning import LearningActivities
    from activities.notify import NotifyActivities
    from activities.patterns import PatternDocs
    from selfheal.learning import pattern_workflow_id
    from selfheal.models import Notice
    from selfheal.patterns import (
        AnalysisInput,
        AnalysisReport,
        ConsolidateInput,
        DocsInput,
        DocsResult,
        PatternCommand,
        digest_text,
    )

_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)


@workflow.defn(name="PatternAnalysis")
class PatternAnalysis:
    @workflow.run
    async def run(self, input: AnalysisInput) -> AnalysisReport:
        analysis_id = workflow.info().workflow_id
        now = workflow.now()
        workflow.set_current_details("consolidating the ledger")
        consolidation = await workflow.execute_activity_method(
            LearningActivities.consolidate,
            ConsolidateInput(policy=input.policy, now=now, analysis_id=analysis_id),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=_RETRY,
            summary="merge near-duplicates, rescore, retire",
        )
        workflow.set_current_details(f"writing {len(consolidation.learnings)} learning file(s)")
        docs: DocsResult = await workflow.execute_activity_method(
            PatternDocs.write_docs,
            DocsInput(analysis_id=analysis_id, learnings=consolidation.learnings, now=now),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=input.heartbeat_timeout),
            retry_policy=_RETRY,
            summary="write docs/patterns and commit",
        )
        problems = list(docs.problems)
        if docs.person_hints:
            await workflow.execute_activity_method(
                LearningActivities.apply_person_hints,
                docs.person_hints,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=_RETRY,
                summary=f"take {len(docs.person_hints)} hint(s) people rewrote",
            )
        by_id = {x.id: x for x in consolidation.learnings}
        rewritten = {h.learning_id for h in docs.person_hints}
        for learning_id in consolidation.retired:
            await self._tell(by_id[learning_id].fingerprint, "retire", "not seen for retire_after")
        for learning_id in consolidation.regressed:
            if learning_id in rewritten:  # a person rewrote the hint of a regressed learning
                await self._tell(by_id[learning_id].fingerprint, "republish", "hint rewritten")
        digest = digest_text(consolidation, docs)
        if input.digest:
            await self._post(analysis_id, digest, problems)
        workflow.set_current_details(
            f"{len(consolidation.learnings)} learning(s); {len(docs.written)} file(s) written"
            + (f"; {len(problems)} problem(s)" if problems else "")
        )
        return AnalysisReport(
            analysis_id=analysis_id,
            consolidation=consolidation,
            docs=docs,
            digest=digest,
            problems=problems,
        )

    async def _tell(self, fingerprint: str, signal: str, reason: str) -> None:
        """The entity follows the ledger; one that has ended reloads it when it starts again."""
        try:
            await workflow.get_external_workflow_handle(pattern_workflow_id(fingerprint)).signal(
                signal, PatternCommand(by="pattern-analysis", reason=reason)
            )
        except Exception:
            workflow.logger.info("pattern %s is not running; the ledger has it", fingerprint)

    async def _post(self, analysis_id: str, digest: str, problems: list[str]) -> None:
        try:
            await workflow.execute_activity_method(
                NotifyActivities.send,
                Notice(target="dev", text=digest, idempotency_key=f"{analysis_id}:digest"),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(minutes=10),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
                summary="digest to #dev",
            )
        except Exception as err:  # the channel is down: the report still has the digest
            problems.append(f"digest not delivered to dev: {err}")
