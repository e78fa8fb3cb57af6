"""Recorded runs replay on the current workflow code.

Each file in ``histories/`` is the history of a finished run (recorded by
``record_histories.py``). Temporal replays an open run's history whenever a
worker picks it up again, so a code change that makes a workflow issue
different commands for the same history breaks every run in flight. Replaying
the recordings with the worker's own workflows, runner and data converter turns
such a change into a failing test instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.workflows.altered_workflows import (
    CheckFirstDocumentProcessingWorkflow,
    PatchedDocumentProcessingWorkflow,
)
from tests.workflows.record_histories import HISTORIES, SCENARIOS
from workers.main import WORKFLOW_RUNNER, WORKFLOWS

RECORDED = sorted(HISTORIES.glob("*.json"))


def history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def replayer(workflows: list[type]) -> Replayer:
    return Replayer(
        workflows=workflows, data_converter=pydantic_data_converter, workflow_runner=WORKFLOW_RUNNER
    )


def workflow_type(path: Path) -> str:
    started = json.loads(path.read_text())["events"][0]
    return str(started["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


def test_every_scenario_and_every_registered_workflow_has_a_recording() -> None:
    assert [path.stem for path in RECORDED] == sorted(SCENARIOS)
    registered = {cls.__name__ for cls in WORKFLOWS}  # @workflow.defn's default name
    assert {workflow_type(path) for path in RECORDED} == registered


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_a_recorded_run_replays_on_the_current_workflows(path: Path) -> None:
    result = await replayer(WORKFLOWS).replay_workflow(history(path))
    assert result.replay_failure is None


async def test_an_unversioned_change_breaks_the_replay_of_recorded_runs() -> None:
    # The altered workflow schedules a ping where the recording has extract_text.
    with pytest.raises(workflow.NondeterminismError, match="extract_text.*ping_queue"):
        await replayer([CheckFirstDocumentProcessingWorkflow]).replay_workflow(
            history(HISTORIES / "document_completed.json")
        )


async def test_the_same_change_behind_a_patch_replays() -> None:
    result = await replayer([PatchedDocumentProcessingWorkflow]).replay_workflow(
        history(HISTORIES / "document_completed.json")
    )
    assert result.replay_failure is None
