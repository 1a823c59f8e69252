"""The bare workflows bench/retry_overhead.py measures AgentTask against, in a module of their own:
the workflow sandbox re-imports a workflow's module for every run, so they pay for no more code
than they hold."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.agents import AgentActivities
    from activities.learning import LearningActivities
    from activities.ledger import LedgerActivities
    from bench.bare_inputs import SameCallsInput
    from selfheal.learning import Learning
    from selfheal.models import AgentRunInput, AgentRunResult, AttemptLedgerEntry, AttemptRecord

_AGENT_RUN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
_LOCAL = timedelta(seconds=30)


async def run_agent(input: AgentRunInput) -> AgentRunResult:
    """One ``agent.run`` call, as AgentTask makes it."""
    return await workflow.execute_activity_method(
        AgentActivities.run,
        input,
        start_to_close_timeout=timedelta(seconds=input.timeout) + timedelta(minutes=1),
        heartbeat_timeout=timedelta(seconds=30),
        retry_policy=_AGENT_RUN_RETRY,
    )


@workflow.defn(name="BareAgentRun")
class BareAgentRun:
    """The stricter reference: one ``agent.run`` call and nothing else."""

    @workflow.run
    async def run(self, input: AgentRunInput) -> AgentRunResult:
        return await run_agent(input)


@workflow.defn(name="BareSameCalls")
class BareSameCalls:
    """DESIGN §7's baseline: the activity calls of AgentTask's success path and nothing else."""

    @workflow.run
    async def run(self, input: SameCallsInput) -> AgentRunResult:
        found: list[Learning] = await workflow.execute_local_activity_method(
            LearningActivities.hints_for, input.hints, start_to_close_timeout=_LOCAL
        )
        hints = [*input.run.hints, *(item.as_hint() for item in found)]
        run = input.run.model_copy(update={"hints": hints})
        started = workflow.now()
        result = await run_agent(run)
        attempt = AttemptRecord(
            n=1,
            agent=run.agent,
            strategy=run.strategy,
            started_at=started,
            ended_at=workflow.now(),
            outcome=result.outcome,
        )
        await workflow.execute_local_activity_method(
            LedgerActivities.record_attempt,
            AttemptLedgerEntry(
                workflow_id=run.workflow_id,
                task_id=run.task_id,
                title=input.title,
                priority="normal",
                task_state="succeeded",
                attempt=attempt,
                # the context AgentTask keeps beside an attempt
                context={
                    "strategy": run.strategy,
                    "hints": [h.model_dump(mode="json") for h in hints],
                    "title": input.title,
                    "repo": None,
                    "labels": [],
                    "template": None,
                    "learning_ids": [h.id for h in hints if h.id],
                },
            ),
            start_to_close_timeout=_LOCAL,
        )
        return result
