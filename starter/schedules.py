"""The Temporal Schedules selfheal runs, and ``selfheal schedules apply`` (create or update).

``SCHEDULES`` holds one function per schedule, ``(settings) -> (schedule id, Schedule)``;
``apply_schedules`` creates each, or updates it in place when it exists. ``selfheal dev`` applies
them at start."""

import argparse
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from selfheal.config import Settings, load_settings
from selfheal.health import HealthProbeInput
from starter.cli.commands import add_command
from starter.client import connect
from starter.pattern_schedule import pattern_analysis_schedule
from workflows.health_probe import HealthProbe

HEALTH_PROBE_ID = "selfheal-health-probe"
HEALTH_PROBE_EVERY = 60.0  # seconds, divided by the time scale


def health_probe_schedule(settings: Settings) -> tuple[str, Schedule]:
    every = HEALTH_PROBE_EVERY / settings.time_scale
    timeout = min(5.0, max(0.5, every / 2))
    return HEALTH_PROBE_ID, Schedule(
        action=ScheduleActionStartWorkflow(
            HealthProbe.run,
            HealthProbeInput(timeout=timeout),
            id=HEALTH_PROBE_ID,
            task_queue=settings.task_queue,
            # a probe that cannot finish gives way to the next one
            execution_timeout=timedelta(seconds=max(every * 3, timeout + 30)),
            static_summary="sample every agent's availability (uptime)",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every))]),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(seconds=max(every, 60))
        ),
    )


SCHEDULES: tuple[Callable[[Settings], tuple[str, Schedule]], ...] = (
    health_probe_schedule,
    pattern_analysis_schedule,
)


async def apply_schedules(client: Client, settings: Settings) -> list[str]:
    """Create or update every schedule; returns their ids."""
    applied = []
    for make in SCHEDULES:
        schedule_id, schedule = make(settings)
        await apply_schedule(client, schedule_id, schedule)
        applied.append(schedule_id)
    return applied


async def apply_schedule(client: Client, schedule_id: str, schedule: Schedule) -> None:
    """Create the schedule, or update it in place when it exists."""
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput, schedule: Schedule = schedule) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(replace)


def register(sub: argparse._SubParsersAction) -> None:
    schedules = add_command(sub, "schedules")
    verbs = schedules.add_subparsers(
        dest="schedules_command", required=True, parser_class=type(schedules)
    )
    apply = verbs.add_parser(
        "apply", help="create or update the schedules (health probe, pattern analysis)"
    )
    apply.set_defaults(handler=run_apply)


async def run_apply(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    client = await connect()
    for schedule_id in await apply_schedules(client, settings):
        print(f"applied schedule {schedule_id}")
    return 0
