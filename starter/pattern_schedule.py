"""The weekly ``selfheal-pattern-analysis`` Schedule (M2.5): Monday 06:00 UTC.

At a time scale N the week is N times shorter: the schedule fires every 7 d / N, at the scaled
clock's "Monday 06:00" (the same phase of the interval), so a simulated week still has its one
analysis.
"""

from datetime import timedelta

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)

from selfheal.config import Settings
from selfheal.patterns import ANALYSIS_SCHEDULE_ID, AnalysisInput
from workflows.pattern_analysis import PatternAnalysis

WEEK = timedelta(days=7)
# The Unix epoch fell on a Thursday: Monday 06:00 UTC is 4 days 6 hours into each epoch week.
MONDAY_0600 = timedelta(days=4, hours=6)


def analysis_spec(
    time_scale: float, every: timedelta | None = None, offset: timedelta | None = None
) -> ScheduleSpec:
    if time_scale == 1 and every is None:
        return ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    second=[ScheduleRange(0)],
                    minute=[ScheduleRange(0)],
                    hour=[ScheduleRange(6)],
                    day_of_week=[ScheduleRange(1)],
                    comment="Monday 06:00 UTC",
                )
            ],
            time_zone_name="UTC",
        )
    every = every or WEEK / time_scale
    offset = offset if offset is not None else (MONDAY_0600 / time_scale) % every
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every, offset=offset)])


def pattern_analysis_schedule(
    settings: Settings, every: timedelta | None = None, offset: timedelta | None = None
) -> tuple[str, Schedule]:
    """The schedule; ``every``/``offset`` override the interval (the week benchmark places its
    firing inside the simulated week)."""
    return ANALYSIS_SCHEDULE_ID, Schedule(
        action=ScheduleActionStartWorkflow(
            PatternAnalysis.run,
            AnalysisInput(policy=settings.learning.scaled(settings.time_scale)),
            id="patterns",  # Temporal appends the scheduled time: patterns-<time>
            task_queue=settings.task_queue,
            static_summary="weekly pattern analysis: merge, rescore, retire, docs, digest",
        ),
        spec=analysis_spec(settings.time_scale, every, offset),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=max(timedelta(minutes=1), timedelta(days=1) / settings.time_scale),
        ),
        state=ScheduleState(note="selfheal: the weekly learning consolidation (M2.5)"),
    )
