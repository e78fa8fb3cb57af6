"""The activities of A2A: answer a task's turn (an agent or a pipeline), record a
task's change (its row, its event, its pushes), and call a remote A2A agent.

Engine errors that cannot heal (an unknown agent, a forbidden URL, a budget)
become non-retryable ``ApplicationError``s with the engine's code. Long calls
heartbeat, so cancelling a task reaches them within seconds and a worker that
died is noticed by its heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from engine.a2a import sessions as a2a_sessions
from engine.a2a import tasks, work
from engine.a2a.client import call_remote_agent
from engine.ai.runtime import ModelRuntime
from engine.platform.settings import Settings
from workers.activities.errors import engine_errors
from workers.activities.heartbeats import heartbeating
from workflows.a2a_exchange_payloads import A2ASessionRecord
from workflows.a2a_payloads import (
    A2AAgentCall,
    A2AAnswer,
    A2APipelineCall,
    A2ATaskRecord,
    RemoteAgentCall,
    RemoteResult,
)
from workflows.activities import (
    ANSWER_A2A_AGENT,
    CALL_REMOTE_AGENT,
    RECORD_A2A_SESSION,
    RECORD_A2A_TASK,
    RUN_A2A_PIPELINE,
)

HEARTBEAT_SECONDS = 5.0


class A2AActivities:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        models: ModelRuntime,
    ) -> None:
        self.settings, self.sessions, self.http, self.models = settings, sessions, http, models

    @ANSWER_A2A_AGENT.defn
    async def answer_a2a_agent(self, call: A2AAgentCall) -> A2AAnswer:
        """One chat call with the agent's system prompt and the conversation so far."""
        info = activity.info()
        async with heartbeating(every=HEARTBEAT_SECONDS):
            return await engine_errors(
                work.answer_with_agent(
                    self.sessions,
                    self.models,
                    call,
                    workflow_id=info.workflow_id,
                    run_id=info.workflow_run_id,
                )
            )

    @RUN_A2A_PIPELINE.defn
    async def run_a2a_pipeline(self, call: A2APipelineCall) -> A2AAnswer:
        """Execute the pipeline for this turn and wait for its outcome."""
        return await engine_errors(
            work.run_pipeline(
                self.sessions,
                activity.client(),
                self.settings,
                call,
                heartbeat=activity.heartbeat,
            )
        )

    @RECORD_A2A_TASK.defn
    async def record_a2a_task(self, record: A2ATaskRecord) -> None:
        await tasks.record_change(self.sessions, activity.client(), self.settings, record)

    @CALL_REMOTE_AGENT.defn
    async def call_remote_agent(self, call: RemoteAgentCall) -> RemoteResult:
        """One message to a remote A2A agent, awaited. The remote task's id goes
        into the heartbeat as soon as it exists, so a retried attempt resumes that
        task instead of sending the message again."""
        info = activity.info()
        earlier = list(info.heartbeat_details or [])
        resume = str(earlier[0]) if earlier and earlier[0] else None
        remote_task: list[str] = [resume] if resume else []

        async def remember(task_id: str) -> None:
            remote_task[:] = [task_id]
            activity.heartbeat(task_id)

        async def beat() -> None:
            while True:
                activity.heartbeat(*remote_task)
                await asyncio.sleep(HEARTBEAT_SECONDS)

        beating = asyncio.create_task(beat())
        try:
            return await engine_errors(
                call_remote_agent(
                    self.settings,
                    call.card_url,
                    call.text,
                    data=call.data,
                    tenant=True,
                    timeout_seconds=call.timeout_seconds,
                    context_id=call.context_id,
                    task_id=call.task_id,
                    protocol=call.protocol,
                    message_id=call.idempotency_key,
                    resume_task_id=resume,
                    on_task=remember,
                )
            )
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    @RECORD_A2A_SESSION.defn
    async def record_a2a_session(self, record: A2ASessionRecord) -> None:
        """Write where an A2A session stands (status, limits, turns, cost) to its row."""
        await a2a_sessions.record_session(self.sessions, record)
