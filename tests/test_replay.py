"""Every recorded history in tests/histories/ replays against the current workflow code."""

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from selfheal.config import Settings
from selfheal.plugins import SelfHealing

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
# The workflow id each history ran under (CommitGuard's commands use it); by default its name.
WORKFLOW_IDS = dict(
    line.split(" ", 1)
    for line in (Path(__file__).parent / "histories" / "workflow_ids.txt").read_text().splitlines()
)


def test_there_are_histories_of_each_long_lived_workflow():
    names = " ".join(p.name for p in HISTORIES)
    assert "commit_queue_continued_as_new" in names  # a run that ended in continue-as-new
    for workflow in (
        "agent_task",
        "escalation",
        "pr_review",
        "pattern",
        "commit_guard",
        "commit_queue",
    ):
        assert workflow in names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path, tmp_path: Path):
    replayer = Replayer(workflows=[], plugins=[SelfHealing(Settings(data_dir=tmp_path))])
    history = WorkflowHistory.from_json(WORKFLOW_IDS.get(path.stem, path.stem), path.read_text())
    await replayer.replay_workflow(history)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_every_patch_is_decided_before_the_first_local_activity(path: Path):
    """workflows/versions.py: a patch asked for after a local activity can be decided wrongly on
    replay when the server split the workflow task after the activity's marker."""
    markers = [
        event["markerRecordedEventAttributes"]["markerName"]
        for event in json.loads(path.read_text())["events"]
        if event["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
    ]
    if "core_local_activity" in markers:
        first_local = markers.index("core_local_activity")
        assert "core_patch" not in markers[first_local:], markers
