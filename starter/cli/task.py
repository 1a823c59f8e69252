"""``selfheal task start|show|list|block|progress|ack|resolve|cancel``."""

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from selfheal import search_attributes as sa
from selfheal.config import Settings, load_settings
from selfheal.durations import parse_duration
from selfheal.ids import task_id_of, task_workflow_id
from selfheal.models import AdapterSpec, EscalationOutcome, TaskAnswer, TaskState, TaskStatus
from starter.cli.commands import add_command
from starter.cli.errors import UsageError
from starter.client import build_task_input, connect, start_task, task_outcome
from workflows.agent_task import AgentTask
from workflows.escalation import Escalation

_STATES = list(get_args(TaskState))
_AGENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
# How long the CLI waits for the workflow's answer to an Update (a worker must be running).
_ANSWER_TIMEOUT = 30.0
_QUERY_TIMEOUT = timedelta(seconds=10)
_CLOSED_QUERY_TIMEOUT = timedelta(seconds=5)  # a closed task is answered by a worker's replay


def register(sub: argparse._SubParsersAction) -> None:
    task = add_command(sub, "task")
    cmds = task.add_subparsers(dest="task_command", required=True, parser_class=type(task))

    start = cmds.add_parser("start", help="start an AgentTask")
    start.add_argument("--agent", required=True)
    start.add_argument("--title", required=True)
    start.add_argument("--description", default="")
    start.add_argument("--adapter", choices=["sim", "command", "http"])
    start.add_argument("--sim", help="sim script, e.g. transient,transient,ok")
    start.add_argument("--command", dest="shell_command", help="command for the command adapter")
    start.add_argument("--url", help="agent URL for the http adapter")
    start.add_argument("--priority", choices=["high", "normal", "low"], default="normal")
    start.add_argument("--id", dest="task_id", help="task id (default: generated)")
    start.add_argument(
        "--rerun", action="store_true", help="run a finished task's id again (a new run)"
    )
    start.add_argument("--time-scale", type=float, help="divide every policy duration by N")
    start.add_argument("--wait", action="store_true", help="wait and print the final status")
    start.add_argument("--json", action="store_true")
    start.set_defaults(handler=task_start)

    show = cmds.add_parser("show", help="print a task's status document")
    show.add_argument("id", help="task id or workflow id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=task_show)

    listing = cmds.add_parser("list", help="the tasks, from a visibility query")
    listing.add_argument("--state", choices=_STATES)
    listing.add_argument("--agent")
    listing.add_argument("--since", help="started within this long, e.g. 1h, 30m, 7d")
    listing.add_argument("--limit", type=int, default=100, help="at most N tasks (default 100)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=task_list)

    for name, flag, field, help_text, handler in (
        ("block", "--reason", "reason", "mark the task blocked", task_block),
        ("progress", "--note", "note", "report progress on the task", task_progress),
        ("ack", "--by", "by", "acknowledge the task's open incident", task_ack),
        ("resolve", "--note", "note", "resolve the task's open incident", task_resolve),
    ):
        cmd = cmds.add_parser(name, help=help_text)
        cmd.add_argument("id", help="task id or workflow id")
        cmd.add_argument(flag, dest=field, required=name in ("block", "ack"), default="")
        cmd.add_argument("--json", action="store_true")
        cmd.set_defaults(handler=handler)

    cancel = cmds.add_parser("cancel", help="cancel a task (its open incident is closed)")
    cancel.add_argument("id", help="task id or workflow id")
    cancel.add_argument("--reason", default="", help="recorded with the cancellation")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(handler=task_cancel)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


# -- start ------------------------------------------------------------------------------------


async def task_start(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.sim is not None and args.adapter not in (None, "sim"):
        raise UsageError(f"--sim is for the sim adapter, not --adapter {args.adapter}")
    kind = args.adapter or ("sim" if args.sim is not None else None)
    if args.time_scale is not None and args.time_scale <= 0:
        raise UsageError(f"--time-scale must be positive, got {args.time_scale:g}")
    adapter = (
        AdapterSpec(kind=kind, sim=args.sim, command=args.shell_command, url=args.url)
        if kind
        else None
    )
    input = build_task_input(
        settings,
        agent=args.agent,
        title=args.title,
        description=args.description,
        task_id=args.task_id,
        priority=args.priority,
        adapter=adapter,
        time_scale=args.time_scale,
    )
    client = await connect()
    try:
        handle = await start_task(client, settings, input, rerun=args.rerun)
    except WorkflowAlreadyStartedError:
        raise UsageError(await _already_started(client, input.id)) from None
    except RPCError as err:
        raise UsageError(f"could not start task {input.id}: {err.message}") from None
    if not args.wait:
        print(
            json.dumps({"workflow_id": handle.id, "task_id": input.id}) if args.json else handle.id
        )
        return 0
    status = await task_outcome(handle)
    _print_status(status, args.json)
    return 0 if status.state == "succeeded" else 1


async def _already_started(client: Client, task_id: str) -> str:
    workflow_id = task_workflow_id(task_id)
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return f"task {task_id} already exists ({workflow_id})"
    if description.status == WorkflowExecutionStatus.RUNNING:
        return (
            f"task {task_id} is already running ({workflow_id}); see: selfheal task show {task_id}"
        )
    ended = description.status.name.lower() if description.status else "finished"
    return f"task {task_id} already ran ({workflow_id}, {ended}); --rerun starts it again"


# -- show -------------------------------------------------------------------------------------


async def _handle(
    client: Client, id: str
) -> tuple[WorkflowHandle[AgentTask, TaskStatus], WorkflowExecutionDescription]:
    handle = client.get_workflow_handle_for(AgentTask.run, task_workflow_id(id))
    try:
        return handle, await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise UsageError(f"no task {id!r} (looked for workflow {handle.id})") from None
        raise UsageError(f"could not read task {id}: {err.message}") from None


async def read_status(client: Client, id: str) -> TaskStatus:
    """The status document of a task: its query while it runs, its outcome once it ended. A task
    whose document cannot be read raises ``Unreadable`` with what Temporal knows of it."""
    handle, description = await _handle(client, id)
    status = description.status
    if status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
        try:
            return await _with_late_escalations(client, await task_outcome(handle))
        except WorkflowFailureError as err:  # failed, but not as a task: a bug, say
            why = _one_line(err.cause or err)
            raise Unreadable(await _last_known(client, handle, description, why)) from None
    # Running: ask it. Ended otherwise (cancelled, terminated, timed out): a worker can still
    # replay its history to answer the query, so try that before falling back.
    running = status == WorkflowExecutionStatus.RUNNING
    timeout = _QUERY_TIMEOUT if running else _CLOSED_QUERY_TIMEOUT
    try:
        return await handle.query(AgentTask.status, rpc_timeout=timeout)
    except RPCError:
        why = f"no worker answered the status query within {timeout.total_seconds():g}s"
        raise Unreadable(await _last_known(client, handle, description, why)) from None
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise Unreadable(await _last_known(client, handle, description, _one_line(err))) from None


class Unreadable(Exception):
    """A task whose status document could not be read; carries what is known of it."""

    def __init__(self, known: dict[str, Any]) -> None:
        super().__init__(known["problem"])
        self.known = known


async def _last_known(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    description: WorkflowExecutionDescription,
    problem: str,
) -> dict[str, Any]:
    """What describe and the history tell of a task whose document could not be read."""
    attrs = description.typed_search_attributes
    summary = await description.static_summary() or ""
    execution = description.status.name.lower() if description.status else "unknown"
    failing = await _failing_workflow_task(handle)
    if failing:
        problem = f"its workflow task keeps failing: {failing}"
    elif description.status != WorkflowExecutionStatus.RUNNING:
        problem = f"it ended {execution}; {problem}"
    return {
        "id": task_id_of(handle.id),
        "workflow_id": handle.id,
        "agent": attrs.get(sa.AGENT),
        "title": summary.split(": ", 1)[-1],
        "state": attrs.get(sa.STATE),
        "attempt": attrs.get(sa.ATTEMPT),
        "error_kind": attrs.get(sa.ERROR_KIND),
        "execution": execution,
        "started_at": description.start_time.isoformat(),
        "closed_at": description.close_time.isoformat() if description.close_time else None,
        "problem": problem,
        "partial": True,
    }


async def _failing_workflow_task(handle: WorkflowHandle[Any, Any]) -> str | None:
    """The failure of the last workflow task, if no workflow task completed after it."""
    failure: str | None = None
    try:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failure = event.workflow_task_failed_event_attributes.failure.message or "failed"
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                failure = None
    except RPCError:
        return None
    return failure.splitlines()[0][:300] if failure else None


async def _with_late_escalations(client: Client, status: TaskStatus) -> TaskStatus:
    """A final failure's escalation outlives its task: add the steps it fired since."""
    for incident in status.incidents:
        if incident.kind != "failed":
            continue
        escalation = client.get_workflow_handle(incident.escalation_id)
        try:
            if (await escalation.describe()).status == WorkflowExecutionStatus.RUNNING:
                outcome = await escalation.query(Escalation.outcome, rpc_timeout=_QUERY_TIMEOUT)
            else:
                outcome = await escalation.result(rpc_timeout=timedelta(seconds=5))
                outcome = EscalationOutcome.model_validate(outcome)
        except (RPCError, WorkflowFailureError, WorkflowQueryFailedError):
            continue
        status.escalations += [s for s in outcome.steps if s not in status.escalations]
    return status


async def task_show(args: argparse.Namespace) -> int:
    client = await connect()
    try:
        status = await read_status(client, args.id)
    except Unreadable as unreadable:
        _print_known(unreadable.known, args.json)
        return 1
    _print_status(status, args.json)
    return 0


# -- list -------------------------------------------------------------------------------------


def list_query(state: str | None, agent: str | None, since: float | None, now: datetime) -> str:
    """The visibility query over the Selfheal search attributes."""
    parts = ['SelfhealKind = "task"']
    if state:
        parts.append(f'SelfhealState = "{state}"')
    if agent:
        parts.append(f'SelfhealAgent = "{agent}"')
    if since is not None:
        after = (now - timedelta(seconds=since)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        parts.append(f'StartTime > "{after}"')
    return " AND ".join(parts)


async def task_list(args: argparse.Namespace) -> int:
    agent = None
    if args.agent is not None:
        if not _AGENT.fullmatch(args.agent):
            raise UsageError(f"bad agent name {args.agent!r}")
        agent = args.agent.upper()
    since = parse_duration(args.since) if args.since is not None else None
    if args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    query = list_query(args.state, agent, since, datetime.now(UTC))
    client = await connect()
    rows: list[dict[str, Any]] = []
    try:
        async for execution in client.list_workflows(query, limit=args.limit):
            rows.append(await _row(execution))
    except RPCError as err:
        raise UsageError(f"could not list tasks: {err.message}") from None
    rows.sort(key=lambda r: r["started_at"], reverse=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no tasks", file=sys.stderr)
        return 0
    for r in rows:
        started = datetime.fromisoformat(r["started_at"]).strftime("%m-%d %H:%M:%S")
        print(
            f"{r['workflow_id']:<40} {r['agent'] or '-':<6} {r['state'] or '-':<10} "
            f"attempt {r['attempt'] or '-':<2} {started}  {r['title']}"
        )
    return 0


async def _row(execution: WorkflowExecution) -> dict[str, Any]:
    attrs = execution.typed_search_attributes
    try:
        memo = await execution.memo()
    except Exception:  # a memo this client cannot decode: the row is still worth showing
        memo = {}
    return {
        "id": task_id_of(execution.id),
        "workflow_id": execution.id,
        "agent": attrs.get(sa.AGENT),
        "state": attrs.get(sa.STATE),
        "attempt": attrs.get(sa.ATTEMPT),
        "error_kind": attrs.get(sa.ERROR_KIND),
        "title": str(memo.get("title", "")),
        "execution": execution.status.name.lower() if execution.status else None,
        "started_at": execution.start_time.isoformat(),
        "closed_at": execution.close_time.isoformat() if execution.close_time else None,
    }


# -- act on a task ----------------------------------------------------------------------------


async def _running(args: argparse.Namespace, what: str) -> WorkflowHandle[AgentTask, TaskStatus]:
    """The task's handle; ``_Finished`` if it has ended (DESIGN §4: ignored, not an error)."""
    client = await connect()
    handle, description = await _handle(client, args.id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise _Finished(args.id, what)
    return handle


class _Finished(Exception):
    def __init__(self, id: str, what: str) -> None:
        super().__init__(f"task {id} has finished; {what} ignored")


async def _update(args: argparse.Namespace, name: str, body: dict[str, str]) -> int:
    """Ask the task (an Update): its answer is printed, a refusal is one line and exit 2."""
    try:
        handle = await _running(args, name)
        answer = await asyncio.wait_for(
            handle.execute_update(name, body, result_type=TaskAnswer), _ANSWER_TIMEOUT
        )
    except _Finished as finished:
        print(f"selfheal: {finished}", file=sys.stderr)
        return 0
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == "TaskFinished":
            print(f"selfheal: {cause.message}", file=sys.stderr)
            return 0
        raise UsageError(_one_line(cause)) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # it finished between describe and update
            print(f"selfheal: task {args.id} has finished; {name} ignored", file=sys.stderr)
            return 0
        raise UsageError(f"{name} of task {args.id} failed: {err.message}") from None
    except TimeoutError:
        raise UsageError(
            f"no answer from task {args.id} within {_ANSWER_TIMEOUT:g}s (is a worker running?)"
        ) from None
    print(
        answer.model_dump_json(indent=2) if args.json else f"{answer.workflow_id}: {answer.message}"
    )
    return 0


async def task_block(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise UsageError("--reason must not be empty")
    return await _update(args, "mark_blocked", {"reason": args.reason})


async def task_ack(args: argparse.Namespace) -> int:
    if not args.by.strip():
        raise UsageError("--by must not be empty")
    return await _update(args, "acknowledge", {"by": args.by})


async def task_resolve(args: argparse.Namespace) -> int:
    return await _update(args, "resolve", {"note": args.note})


async def task_progress(args: argparse.Namespace) -> int:
    """Progress stays a signal: it needs no answer."""
    body = {"note": args.note}
    try:
        handle = await _running(args, "report_progress")
    except _Finished as finished:
        print(f"selfheal: {finished}", file=sys.stderr)
        return 0
    await handle.signal("report_progress", body)
    print(
        json.dumps({"workflow_id": handle.id, "signal": "report_progress", "body": body})
        if args.json
        else f"report_progress sent to {handle.id}"
    )
    return 0


async def task_cancel(args: argparse.Namespace) -> int:
    try:
        handle = await _running(args, "cancel")
        await handle.cancel(reason=args.reason)
    except _Finished as finished:
        print(f"selfheal: {finished}", file=sys.stderr)
        return 0
    except RPCError as err:
        raise UsageError(f"could not cancel task {args.id}: {err.message}") from None
    print(
        json.dumps({"workflow_id": handle.id, "cancel_requested": True})
        if args.json
        else f"cancel requested: {handle.id}"
    )
    return 0


# -- printing ---------------------------------------------------------------------------------


def _one_line(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err) or type(err).__name__
    return text.splitlines()[0]


def _print_known(known: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(known, indent=2))
        return
    print(
        f"{known['workflow_id']}  {known['agent'] or '-'}  {known['state'] or '-'} "
        f"(last known; workflow {known['execution']})  {known['title']!r}"
    )
    print(f"  attempt {known['attempt'] or '-'}  last error kind {known['error_kind'] or '-'}")
    print(f"  status document unavailable: {known['problem']}")


def _print_status(status: TaskStatus, as_json: bool) -> None:
    if as_json:
        print(status.model_dump_json(indent=2))
        return
    print(f"{status.workflow_id}  {status.agent}  {status.state}  {status.title!r}")
    for a in status.attempts:
        error = f"  {a.error_kind}: {a.error}" if a.error else ""
        print(f"  attempt {a.n}  {a.agent:<6} {a.strategy:<12} {a.outcome}{error}")
    for i in status.incidents:
        print(f"  incident {i.n}  {i.kind:<8} {i.status:<12} {i.reason}  ({i.escalation_id})")
    for e in status.escalations:
        print(f"  escalation {e.step} → {e.target} at {e.at:%H:%M:%S}")
    if status.next_step:
        print(f"  next escalation step: {status.next_step}")
    if status.result:
        print(f"  result: {status.result.splitlines()[0][:120]}")
