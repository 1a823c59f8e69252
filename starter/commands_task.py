"""``selfheal task start|show|block|progress|ack|resolve``."""

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from selfheal.config import Settings, load_settings
from selfheal.ids import task_workflow_id
from selfheal.models import AdapterSpec, EscalationOutcome, TaskStatus
from starter.client import build_task_input, connect, start_task
from starter.errors import UsageError
from workflows.agent_task import AgentTask
from workflows.escalation import Escalation


def register(sub: argparse._SubParsersAction) -> None:
    task = sub.add_parser("task", help="start, read or signal an AgentTask")
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
    start.add_argument("--time-scale", type=float, help="divide every policy duration by N")
    start.add_argument("--wait", action="store_true", help="wait and print the final status")
    start.add_argument("--json", action="store_true")
    start.set_defaults(handler=task_start)

    show = cmds.add_parser("show", help="print a task's status document")
    show.add_argument("id", help="task id or workflow id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=task_show)

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


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


async def task_start(args: argparse.Namespace) -> int:
    settings = _settings(args)
    kind = args.adapter or ("sim" if args.sim else None)
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
        handle = await start_task(client, settings, input)
    except RPCError as err:
        if err.status == RPCStatusCode.ALREADY_EXISTS:
            raise UsageError(f"task {input.id} already exists") from None
        raise UsageError(f"could not start task: {err.message}") from None
    if not args.wait:
        print(
            json.dumps({"workflow_id": handle.id, "task_id": input.id}) if args.json else handle.id
        )
        return 0
    status = await handle.result()
    _print_status(status, args.json)
    return 0 if status.state == "succeeded" else 1


async def _handle(client: Client, id: str) -> tuple[WorkflowHandle[AgentTask, TaskStatus], Any]:
    handle = client.get_workflow_handle_for(AgentTask.run, task_workflow_id(id))
    try:
        return handle, await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise UsageError(f"no task {id!r} (looked for workflow {handle.id})") from None
        raise


async def read_status(client: Client, id: str) -> TaskStatus:
    handle, description = await _handle(client, id)
    if description.status == WorkflowExecutionStatus.COMPLETED:
        return await _with_late_escalations(client, await handle.result())
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise UsageError(f"task {id} ended as {description.status.name.lower()}")
    return await handle.query(AgentTask.status)


async def _with_late_escalations(client: Client, status: TaskStatus) -> TaskStatus:
    """A final failure's escalation outlives its task: add the steps it fired since."""
    for incident in status.incidents:
        if incident.kind != "failed":
            continue
        escalation = client.get_workflow_handle(incident.escalation_id)
        try:
            if (await escalation.describe()).status == WorkflowExecutionStatus.RUNNING:
                outcome = await escalation.query(Escalation.outcome)
            else:
                outcome = await escalation.result(rpc_timeout=timedelta(seconds=5))
                outcome = EscalationOutcome.model_validate(outcome)
        except (RPCError, WorkflowFailureError, WorkflowQueryFailedError):
            continue
        status.escalations += [s for s in outcome.steps if s not in status.escalations]
    return status


async def task_show(args: argparse.Namespace) -> int:
    client = await connect()
    _print_status(await read_status(client, args.id), args.json)
    return 0


async def _signal(
    args: argparse.Namespace, name: str, body: dict[str, str], *incident_statuses: str
) -> int:
    client = await connect()
    handle, description = await _handle(client, args.id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        # DESIGN §4: a signal to a finished task is ignored, not an error.
        print(f"selfheal: task {args.id} has finished; {name} ignored", file=sys.stderr)
        return 0
    if incident_statuses:
        await _require_incident(client, args, *incident_statuses)
    await handle.signal(name, body)
    print(
        json.dumps({"workflow_id": handle.id, "signal": name, "body": body})
        if args.json
        else f"{name} sent to {handle.id}"
    )
    return 0


async def task_block(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise UsageError("--reason must not be empty")
    return await _signal(args, "mark_blocked", {"reason": args.reason})


async def task_progress(args: argparse.Namespace) -> int:
    return await _signal(args, "report_progress", {"note": args.note})


async def _require_incident(client: Client, args: argparse.Namespace, *statuses: str) -> None:
    status = await read_status(client, args.id)
    live = [i for i in status.incidents if i.kind != "failed" and i.status in statuses]
    if not live:
        raise UsageError(f"task {args.id} has no {' or '.join(statuses)} incident")


async def task_ack(args: argparse.Namespace) -> int:
    if not args.by.strip():
        raise UsageError("--by must not be empty")
    return await _signal(args, "acknowledge", {"by": args.by}, "open")


async def task_resolve(args: argparse.Namespace) -> int:
    return await _signal(args, "resolve", {"note": args.note}, "open", "acknowledged")


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
