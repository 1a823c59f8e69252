"""CommitGuard: one commit's saga (M2.2) — build, confirm, revert, verify, tell #dev.

The forward step is the commit itself (already made); its compensation, declared here, is a
``git revert`` of exactly that commit, run only once the failure is confirmed: a failing build is
run once more while the parent is built (at the same time); a pass on the re-run is a flake, a red
parent means the commit is not the culprit. Anything the guard cannot settle safely (a red parent,
a revert that does not fix the build, a dirty tree, a conflict, the daily cap, a broken setup)
opens an incident and starts the ``Escalation`` ladder as an abandoned child, so it outlives us.

Blame is judged with the culprits already found on the branch reverted (the queue hands them
over), as LUCI and PyTorch's autorevert reason about a range: a red commit that builds green once
they are reverted is ``inherited`` (its incident is closed at once, no escalation), and the
re-run and the parent build revert them too, so a second culprit close behind the first is found
and reverted on its own.
"""

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.build import build
    from activities.git import GitActivities
    from activities.ledger import CommitGuardLedgerActivities
    from activities.notify import NotifyActivities
    from selfheal import search_attributes as sa
    from selfheal.ids import escalation_workflow_id
    from selfheal.models import (
        CloseIncident,
        Escalated,
        EscalationInput,
        IncidentRecord,
        IncidentUpdate,
        Notice,
    )
    from selfheal.rollback import (
        REVERT_WINDOW,
        BuildInput,
        BuildResult,
        CommitGuardInput,
        CommitInfo,
        GuardLedgerEntry,
        GuardState,
        GuardStatus,
        InspectInput,
        RevertInput,
        incident_key,
        is_revert,
        opted_out,
        tail_lines,
    )
    from workflows.incidents import Incidents
    from workflows.supervision import Refused, parse
    from workflows.versions import Versions


_SHORT = timedelta(seconds=60)
_GIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=10,
    non_retryable_error_types=["GitError"],
)
_NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
)
# Incident kind per final state; "passed" and "skipped" open none.
_INCIDENT: dict[str, str] = {
    "flaky": "flaky-build",
    "parent-broken": "parent-broken",
    "setup-broken": "broken-setup",
    "reverted": "broken-build",
    "revert-failed": "revert-failed",
    "refused": "revert-refused",
    "capped": "revert-cap",
    "opted-out": "revert-opted-out",
    "disabled": "revert-disabled",
    "inherited": "inherited",
}
_NO_ESCALATION = frozenset({"passed", "skipped", "flaky", "reverted", "inherited"})
_SETTLED = frozenset({"passed", "skipped", "flaky", "reverted", "inherited"})


@workflow.defn(name="CommitGuard")
class CommitGuard:
    @workflow.init
    def __init__(self, input: CommitGuardInput) -> None:
        c = input.check
        self._check = c
        self._status = GuardStatus(
            workflow_id=workflow.info().workflow_id,
            repo=c.repo_name,
            sha=c.sha,
            branch=c.branch,
            build_command=c.policy.build_command,
            recheck=c.recheck,
        )
        self._info: CommitInfo | None = None
        self._failure = ""
        self._culprits = [k for k in input.culprits if k != c.sha]
        self._incidents = Incidents(local_in_v1=False)

    @workflow.run
    async def run(self, input: CommitGuardInput) -> GuardStatus:
        c, s = self._check, self._status
        workflow.upsert_search_attributes(
            [sa.KIND.value_set("commit"), sa.STATE.value_set("running")]
        )
        self._incidents.decide_versions(Versions.decide())
        self._info = info = await workflow.execute_activity_method(
            GitActivities.inspect,
            InspectInput(repo_path=c.repo_path, sha=c.sha, branch=c.branch),
            start_to_close_timeout=_SHORT, retry_policy=_GIT_RETRY,
            summary=f"read commit {c.sha[:12]}",
        )  # fmt: skip
        s.author, s.subject, s.committed_at = info.author, info.subject, info.committed_at
        workflow.upsert_search_attributes([sa.AGENT.value_set(self._route()[0])])
        if not info.on_branch:
            return await self._finish("skipped", f"{c.sha[:12]} is no longer on {c.branch}")

        self._describe(f"building {c.sha[:12]}")
        first = await self._build(c.sha, "build", carried_of=self._culprits)
        if first.ok:
            return await self._finish("passed", "the build is green")
        if first.broken_setup:
            return await self._finish("setup-broken", self._setup_reason(first))
        s.detected_at = workflow.now()
        self._failure = first.tail

        known = self._culprits
        if first.carried:
            # Red, and it carries culprits found before it: is it red only because of them?
            self._describe(f"build failed; building {c.sha[:12]} without the earlier culprits")
            isolated = await self._build(c.sha, "isolated build", revert=first.carried)
            if isolated.broken_setup:
                return await self._finish("setup-broken", self._setup_reason(isolated))
            if isolated.isolation_error:
                known = []  # cannot judge it apart from them: judged as it is
            elif isolated.ok:
                s.culprits = isolated.reverted
                names = ", ".join(k[:12] for k in isolated.reverted)
                return await self._finish(
                    "inherited", f"red only because of the earlier culprit(s) {names}: "
                    "it builds green with them reverted",
                )  # fmt: skip
            else:
                self._failure = isolated.tail

        # Confirm before blaming: the same build again, and the parent's, side by side.
        self._describe(f"build failed; re-running it and building the parent of {c.sha[:12]}")
        parent_sha = info.parents[0] if info.parents else None
        rerun, parent = await asyncio.gather(
            self._build(c.sha, "re-run", revert=known),
            self._build(parent_sha, "parent build", revert=known) if parent_sha else _none(),
        )
        if parent:
            self._status.builds[-2:] = [rerun, parent]  # in a fixed order, not finishing order
        broken = next((b for b in (rerun, parent) if b and b.broken_setup), None)
        if broken:
            return await self._finish("setup-broken", self._setup_reason(broken))
        if rerun.ok:
            return await self._finish("flaky", "failed once, passed on the re-run: a flaky build")
        if parent is None:
            return await self._finish("refused", "a root commit has no parent to go back to")
        if not parent.ok:
            also = " even with the earlier culprits reverted" if parent.reverted else ""
            return await self._finish(
                "parent-broken",
                f"the parent {(parent_sha or '')[:12]} fails too{also}: not this commit's fault",
            )

        # The culprit: this commit breaks a green build.
        s.culprit = True
        if is_revert(info.message):
            return await self._finish("refused", "the commit is itself a revert; never reverted")
        if opted_out(info.message):
            return await self._finish("opted-out", "the commit says Selfheal-No-Revert: true")
        if not c.policy.enabled:
            return await self._finish("disabled", "automatic rollback is off (kill switch)")
        now = workflow.now()
        recent = [t for t in input.recent_reverts if (now - t).total_seconds() < REVERT_WINDOW]
        if len(recent) >= c.policy.max_reverts_per_day:
            return await self._finish(
                "capped", f"{len(recent)} auto-reverts in 24 h (the cap is "
                f"{c.policy.max_reverts_per_day}); escalating instead",
            )  # fmt: skip
        return await self._compensate()

    async def _compensate(self) -> GuardStatus:
        """The saga's compensation: revert exactly the culprit on its branch, then verify."""
        c, s = self._check, self._status
        self._describe(f"reverting {c.sha[:12]} on {c.branch}")
        revert = await workflow.execute_activity_method(
            GitActivities.revert,
            RevertInput(
                repo_path=c.repo_path, sha=c.sha, branch=c.branch,
                build_command=c.policy.build_command, failure=self._failure, push=c.policy.push,
            ),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=c.heartbeat_timeout), retry_policy=_GIT_RETRY,
            summary=f"git revert {c.sha[:12]} on {c.branch}",
        )  # fmt: skip
        if revert.outcome == "gone":
            return await self._finish("skipped", revert.reason or "the commit is gone")
        if revert.outcome == "refused" or not revert.revert_sha:
            return await self._finish("refused", f"not reverted: {revert.reason}")
        s.revert_sha, s.pushed = revert.revert_sha, revert.pushed
        s.reverted_at = workflow.now()
        self._set_state("reverted")

        if not revert.tree_is_parent:
            self._describe(f"verifying the revert {revert.revert_sha[:12]}")
            verify = await self._build(revert.revert_sha, "verify", revert=self._culprits)
            if not verify.ok and revert.later:
                # Red at a tip that holds later commits no guard has judged yet: they may be
                # the cause. Their guards come next, each blaming against its parent with
                # this commit reverted, so the branch's verdict is theirs.
                s.deferred_to = revert.later
                return await self._finish(
                    "reverted", f"reverted by {revert.revert_sha[:12]}; the tip is still red "
                    f"with {len(revert.later)} later commit(s) not judged yet, guarded next",
                )  # fmt: skip
            if not verify.ok:
                return await self._finish(
                    "revert-failed", f"the revert {revert.revert_sha[:12]} does not build either"
                )
        # When the culprit was the tip, the revert's tree is the parent's, built green above.
        s.verified_at = workflow.now()
        how = "its tree is the green parent's" if revert.tree_is_parent else "it builds green"
        return await self._finish("reverted", f"reverted by {revert.revert_sha[:12]}; {how}")

    @workflow.query
    def status(self) -> GuardStatus:
        return self._status

    @workflow.signal
    def escalated(self, body: Any = None, *_extra: Any) -> None:
        """From the Escalation ladder: a step fired (recorded; the guard may have finished).
        No body, null or a malformed one (the ``temporal`` CLI's default) is recorded, never
        a failed workflow task."""
        try:
            signal = parse("escalated", Escalated, body)
        except Refused as malformed:
            self._status.ignored_signals = [*self._status.ignored_signals, str(malformed)][-20:]
            return
        self._status.escalations.append(f"{signal.step} → {signal.target}")

    async def _build(
        self, sha: str, label: str, revert: list[str] | None = None,
        carried_of: list[str] | None = None,
    ) -> BuildResult:  # fmt: skip
        c = self._check
        result = await workflow.execute_activity(
            build,
            BuildInput(
                repo_path=c.repo_path, sha=sha, command=c.policy.build_command,
                setup_command=c.policy.setup_command, timeout=c.policy.build_timeout, label=label,
                revert=revert or [], carried_of=carried_of or [],
            ),
            start_to_close_timeout=timedelta(seconds=c.policy.build_timeout + 120),
            heartbeat_timeout=timedelta(seconds=c.heartbeat_timeout),
            retry_policy=_GIT_RETRY,
            summary=f"{label} of {sha[:12]}: {c.policy.build_command}",
        )  # fmt: skip
        self._status.builds.append(result)
        return result

    def _setup_reason(self, build: BuildResult) -> str:
        return (
            f"the {build.phase} command could not run (exit {build.exit_code}): a broken setup, "
            f"not a broken commit"
        )

    def _route(self) -> tuple[str, str | None, str | None]:
        """(agent, peer, lead): the author if an agent of the team, else the lead."""
        c = self._check
        author = (self._status.author or "").split()[0].upper() if self._status.author else ""
        agent = author if author in c.peers else (c.lead or author or "selfheal")
        peers = c.peers.get(agent, [])
        return agent, (peers[0] if peers else None), c.lead

    async def _finish(self, state: GuardState, reason: str) -> GuardStatus:
        s = self._status
        s.reason = reason
        self._set_state(state)
        self._describe(reason)
        kind = _INCIDENT.get(state)
        key = incident_key(s.workflow_id, s.recheck)
        if kind:
            s.incident_key, s.incident_kind = key, kind
            await self._open_incident(kind, reason)
        await self._record()
        # An inherited break is the earlier culprit's incident, told already: no second notice.
        notice = self._notify(kind, reason) if kind and state != "inherited" else None
        if state not in _NO_ESCALATION:
            await self._escalate(kind or state, reason)
        elif state in ("reverted", "inherited"):
            reverted = state == "reverted"
            await self._incidents.record_update(
                IncidentUpdate(key=key, status="resolved" if reverted else "closed",
                               at=workflow.now(), by="selfheal", note=reason,
                               details=self._details()),
                summary="ledger: incident " + ("resolved by the revert" if reverted
                                               else "closed as inherited"),
            )  # fmt: skip
        if self._check.recheck:
            await self._settle_previous(state)
        await self._tell_queue()
        if notice:
            # The queue has the verdict and goes on; this run stays open until #dev has the
            # notice, since a closed workflow would drop a notice still retrying.
            await notice
        return s

    async def _tell_queue(self) -> None:
        parent = workflow.info().parent
        if parent:
            # By name: CommitQueue starts CommitGuard, and importing it back would be a cycle.
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "verdict", self._status
            )

    def _details(self) -> dict[str, Any]:
        s, c = self._status, self._check
        return {
            "repo": s.repo, "repo_path": c.repo_path, "commit": s.sha, "branch": s.branch,
            "author": s.author, "subject": s.subject, "build_command": s.build_command,
            "failure_tail": tail_lines(self._failure, 40, 400) or None,
            "revert_sha": s.revert_sha, "committed_at": s.committed_at,
            "detected_at": s.detected_at, "reverted_at": s.reverted_at,
            "verified_at": s.verified_at,
        }  # fmt: skip

    async def _open_incident(self, kind: str, reason: str) -> None:
        s = self._status
        await self._incidents.record_open(
            IncidentRecord(
                key=s.incident_key or s.workflow_id, kind=kind, subject=s.workflow_id,
                task_id=s.workflow_id,
                agent=self._route()[0], title=f"{s.repo}@{s.sha[:12]}: {s.subject or ''}",
                reason=reason, opened_at=workflow.now(), details=self._details(),
            ),
            summary=f"ledger: {kind} incident",
        )  # fmt: skip

    async def _record(self) -> None:
        s = self._status
        await workflow.execute_activity_method(
            CommitGuardLedgerActivities.record_commit_guard,
            GuardLedgerEntry(
                workflow_id=s.workflow_id, repo=s.repo, repo_path=self._check.repo_path, sha=s.sha,
                branch=s.branch, author=s.author, subject=s.subject,
                build_command=s.build_command, state=s.state,
                failure_tail=tail_lines(self._failure, 40, 400) or None, revert_sha=s.revert_sha,
                incident_key=s.incident_key, committed_at=s.committed_at,
                detected_at=s.detected_at, reverted_at=s.reverted_at, verified_at=s.verified_at,
            ),
            start_to_close_timeout=_SHORT, summary=f"ledger: commit {s.sha[:12]} {s.state}",
        )  # fmt: skip

    def _notify(self, kind: str, reason: str) -> workflow.ActivityHandle[Any]:
        """#dev is told; the notice retries while the endpoint is down."""
        s = self._status
        where = f"`{s.sha[:12]}` on {s.repo}/{s.branch or '(detached)'}"
        who = f" by {s.author}" if s.author else ""
        icon = {"broken-build": ":rewind:", "flaky-build": ":game_die:"}.get(kind, ":warning:")
        text = f"{icon} {kind}: {where} ({s.subject!r}{who}): {reason}"
        fields = {"build": s.build_command, "commit": s.sha}
        if s.revert_sha:
            fields["revert"] = s.revert_sha
        if self._failure:
            fields["failure"] = f"```{tail_lines(self._failure, 8, 160)}```"
        return workflow.start_activity_method(
            NotifyActivities.send,
            Notice(target="dev", text=text, idempotency_key=f"{s.incident_key}:{kind}",
                   incident_key=s.incident_key, fields=fields),
            start_to_close_timeout=timedelta(seconds=30), retry_policy=_NOTIFY_RETRY,
            summary=f"tell #dev: {kind}",
        )  # fmt: skip

    async def _settle_previous(self, state: GuardState) -> None:
        """A re-check supersedes the judgement before it: its incident is resolved (the cause
        is fixed) or closed (this run has its own), and its ladder, if still running, stops."""
        c = self._check
        note = f"re-checked (run {c.recheck + 1}): {state}"
        if c.previous_incident:
            await self._incidents.record_update(
                IncidentUpdate(key=c.previous_incident, at=workflow.now(), by="selfheal",
                               status="resolved" if state in _SETTLED else "closed", note=note),
                summary="ledger: the previous incident settled",
            )  # fmt: skip
        if c.previous_escalation:  # its steps may have ended meanwhile: then nothing to stop
            await self._incidents.close_other(
                c.previous_escalation, CloseIncident(reason="resolved", note=note)
            )

    async def _escalate(self, kind: str, reason: str) -> None:
        s, c = self._status, self._check
        agent, peer, lead = self._route()
        s.escalation_id = escalation_workflow_id(s.workflow_id, s.recheck + 1)
        await self._incidents.escalate(
            s.escalation_id,
            EscalationInput(
                incident_key=s.incident_key or s.workflow_id, n=s.recheck + 1, kind=kind,
                subject=s.workflow_id,
                task_id=s.workflow_id, title=f"{s.repo}@{s.sha[:12]}: {s.subject or ''}",
                agent=agent, peer=peer, lead=lead, reason=reason,
                last_error=tail_lines(self._failure, 20) or None, since=workflow.now(),
                ladder=c.escalation, first_step="peer", context=self._details(),
                peers=c.peers, time_scale=c.time_scale,
            ),
            summary=f"escalate {kind}: {s.repo}@{s.sha[:12]}",
        )  # fmt: skip

    def _set_state(self, state: GuardState) -> None:
        self._status.state = state
        workflow.upsert_search_attributes([sa.STATE.value_set(state)])

    def _describe(self, details: str) -> None:
        s = self._status
        workflow.set_current_details(f"**{s.state}** · {s.repo}@{s.sha[:12]} · {details}")


async def _none() -> None:
    return None
