"""A2ATaskWorkflow (``a2a-task-{task_id}``): one A2A task, from its first message
to its end.

The API writes the task's index row and starts this run with the first user
message and the chosen target. Each turn, the run goes ``working``, asks the
target on ``weft-io`` (an agent: one chat call with its system prompt and the
conversation so far, ``answer_a2a_agent``; a pipeline: an execution of the
definition, awaited by ``run_a2a_pipeline``), and then either completes (the
answer becomes the task's artifact) or, for a multi-turn task, waits in
``input-required`` for the next user message (the ``message`` update, which the
API sends for a SendMessage carrying this task's id). A failed target fails
the task; cancelling the run cancels the task. Every change is written to the
index row, announced as an ``a2a.task.status`` event and pushed to the task's
push configs (``record_a2a_task``).

The ``task`` query answers the task as A2A shows it (a 1.0 ``Task`` dict) with
its state and a version that grows with every change.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.platform.queues import TaskQueue
    from workflows.a2a_payloads import (
        TERMINAL_STATES,
        A2AAgentCall,
        A2AAnswer,
        A2AFollowUp,
        A2APipelineCall,
        A2ATaskInput,
        A2ATaskRecord,
        A2ATaskView,
        A2ATurn,
        TaskStateName,
        agent_message,
        answer_artifact,
        message_input,
        parts_data,
        parts_text,
        task_dict,
    )
    from workflows.activities import ANSWER_A2A_AGENT, RECORD_A2A_TASK, RUN_A2A_PIPELINE

# Failures another attempt cannot fix (the activities raise them non-retryable too).
PERMANENT = [
    "VALIDATION_ERROR",
    "NOT_FOUND",
    "FORBIDDEN",
    "AGENT_NOT_FOUND",
    "WORKFLOW_NOT_FOUND",
    "MODEL_NOT_AVAILABLE",
    "INSUFFICIENT_CREDITS",
    "EGRESS_DENIED",
    "INVALID_DEFINITION",
]
ANSWER_RETRY = RetryPolicy(
    maximum_attempts=3,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=PERMANENT,
)
RECORD_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))


class _Failed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _cause(err: ActivityError) -> tuple[str, str]:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "A2A_TASK_FAILED", cause.message
    return "A2A_TASK_FAILED", str(cause or err)


@workflow.defn
class A2ATaskWorkflow:
    def __init__(self) -> None:
        self._task_id = ""
        self._context_id = ""
        self._state: TaskStateName = "submitted"
        self._version = 0
        self._timestamp = ""
        self._status_message: dict[str, Any] | None = None
        self._history: list[dict[str, Any]] = []
        self._artifacts: list[dict[str, Any]] = []
        self._metadata: dict[str, Any] = {}
        self._inbox: list[A2AFollowUp] = []

    # --- reading and steering ------------------------------------------------

    @workflow.query
    def task(self) -> A2ATaskView:
        """The task as A2A shows it, with its state and version."""
        return A2ATaskView(
            version=self._version,
            state=self._state,
            task=task_dict(
                task_id=self._task_id or workflow.info().workflow_id.removeprefix("a2a-task-"),
                context_id=self._context_id,
                state=self._state,
                timestamp=self._timestamp or self._now(),
                status_message=self._status_message,
                history=self._history,
                artifacts=self._artifacts,
                metadata=self._metadata,
            ),
        )

    @workflow.update
    def message(self, follow_up: A2AFollowUp) -> A2ATaskView:
        """The next user message of a task that waits for input; the task works again."""
        self._inbox.append(follow_up)
        self._history.append(follow_up.message)
        self._change("working")
        return self.task()

    @message.validator
    def _waiting(self, follow_up: A2AFollowUp) -> None:
        if self._state != "input-required" or self._inbox:
            raise ValueError(f"the task is {self._state}, not waiting for input")

    # --- the run ---------------------------------------------------------------

    @workflow.run
    async def run(self, params: A2ATaskInput) -> A2ATaskView:
        self._task_id, self._context_id = params.task_id, params.context_id
        self._history = [params.message]
        self._metadata = {"target": params.target.model_dump(mode="json")}
        self._timestamp = self._now()
        final = not params.multi_turn
        turn = 0
        try:
            while True:
                turn += 1
                if self._state != "working":
                    self._change("working")
                await self._record(params)
                answer = await self._answer(params, turn)
                reply = agent_message(
                    answer.text,
                    message_id=str(workflow.uuid4()),
                    task_id=params.task_id,
                    context_id=params.context_id,
                )
                self._history.append(reply)
                if final or turn >= params.max_turns:
                    self._complete(answer, reply, turn)
                    break
                self._change("input-required", reply)
                await self._record(params)
                try:
                    await workflow.wait_condition(
                        lambda: bool(self._inbox),
                        timeout=timedelta(seconds=params.input_timeout_seconds),
                    )
                except TimeoutError:  # nobody answered: the last answer stands
                    self._complete(answer, reply, turn)
                    break
                final = self._inbox.pop(0).final
        except _Failed as failed:
            self._change("failed", self._notice(f"{failed.code}: {failed.message}", params))
            await self._record(params)
            raise ApplicationError(failed.message, type=failed.code, non_retryable=True) from None
        except asyncio.CancelledError:
            self._change("canceled", self._notice("The task was canceled.", params))
            await self._record(params)
            raise
        await self._record(params)
        return self.task()

    async def _answer(self, params: A2ATaskInput, turn: int) -> A2AAnswer:
        target = params.target
        last = self._history[-1]
        try:
            if target.kind == "agent":
                return await ANSWER_A2A_AGENT.execute(
                    A2AAgentCall(
                        tenant_id=params.tenant_id,
                        task_id=params.task_id,
                        agent_id=target.id,
                        started_by=params.started_by,
                        turn=turn,
                        turns=self._turns(),
                    ),
                    task_queue=self._queue(TaskQueue.IO),
                    start_to_close_timeout=timedelta(minutes=10),
                    heartbeat_timeout=timedelta(seconds=20),
                    retry_policy=ANSWER_RETRY,
                    summary=f"Ask {target.name or target.id} (turn {turn})",
                )
            return await RUN_A2A_PIPELINE.execute(
                A2APipelineCall(
                    tenant_id=params.tenant_id,
                    task_id=params.task_id,
                    definition_id=target.id,
                    started_by=params.started_by,
                    turn=turn,
                    text=parts_text(last),
                    data=parts_data(last),
                ),
                task_queue=self._queue(TaskQueue.IO),
                start_to_close_timeout=timedelta(days=7),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=ANSWER_RETRY,
                summary=f"Run {target.name or target.id} (turn {turn})",
            )
        except ActivityError as err:
            raise _Failed(*_cause(err)) from None

    async def _record(self, params: A2ATaskInput) -> None:
        await RECORD_A2A_TASK.execute(
            A2ATaskRecord(tenant_id=params.tenant_id, task_id=params.task_id, view=self.task()),
            task_queue=self._queue(TaskQueue.IO),
            # SQLite may keep a writer waiting up to 30 s (its busy timeout).
            start_to_close_timeout=timedelta(seconds=40),
            retry_policy=RECORD_RETRY,
            summary=f"Record {self._state}",
        )

    # --- helpers -----------------------------------------------------------------

    def _turns(self) -> list[A2ATurn]:
        return [
            A2ATurn(
                role="assistant" if message.get("role") == "ROLE_AGENT" else "user",
                text=message_input(message),
            )
            for message in self._history
        ]

    def _complete(self, answer: A2AAnswer, reply: dict[str, Any], turn: int) -> None:
        self._artifacts.append(answer_artifact(answer, artifact_id=f"answer-{turn}"))
        self._change("completed", reply)

    def _notice(self, text: str, params: A2ATaskInput) -> dict[str, Any]:
        return agent_message(
            text,
            message_id=str(workflow.uuid4()),
            task_id=params.task_id,
            context_id=params.context_id,
        )

    def _change(self, state: TaskStateName, message: dict[str, Any] | None = None) -> None:
        if self._state in TERMINAL_STATES:
            return
        self._state = state
        self._status_message = message
        self._version += 1
        self._timestamp = self._now()

    def _now(self) -> str:
        return workflow.now().isoformat().replace("+00:00", "Z")

    def _queue(self, queue: TaskQueue) -> str:
        """An activity queue with this run's queue prefix (read from its own queue)."""
        own = workflow.info().task_queue
        return own[: len(own) - len(TaskQueue.WORKFLOWS.value)] + queue.value
