"""Pipeline step activities: model calls, HTTP calls, e-mail, callbacks, the execution
index, and the step events a run emits (a local activity of the workflows worker).

Each step arrives with its config already rendered by the workflow. Failures
that another attempt cannot fix (an unknown model, a forbidden URL, a 4xx
answer, a budget) are non-retryable ``ApplicationError``s with the engine's
code; everything else is left to the step's retry policy. Long calls heartbeat,
so cancelling the execution reaches them within seconds.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.ai.chat import complete
from engine.ai.providers.base import ChatMessage, ChatRequest
from engine.ai.runtime import CallContext, ModelRuntime
from engine.consent import consents
from engine.events import callbacks
from engine.pipelines import email, executions
from engine.platform.egress import guarded_request
from engine.platform.settings import Settings
from workers.activities.errors import engine_errors
from workers.activities.heartbeats import heartbeating
from workflows.activities import (
    CALL_API,
    CALL_MODEL,
    CHECK_CONSENT,
    EMIT_STEP_EVENTS,
    LOAD_DEFINITION,
    OPEN_CALLBACK,
    RECORD_EXECUTION,
    SEND_EMAIL,
)
from workflows.pipeline_payloads import (
    CALLBACK_SIGNAL,
    CallbackOpened,
    ConsentCheck,
    ConsentHeld,
    ExecutionRecord,
    LoadDefinitionInput,
    LoadedDefinition,
    OpenCallbackInput,
    StepCall,
    StepEvents,
    StepOutcome,
)

HEARTBEAT_SECONDS = 5.0
MAX_CAPTURED_BYTES = 256 * 1024  # a response body kept in history and results
SENT_HEADERS_LIMIT = 50
NOTIFY_TIMEOUT_SECONDS = 30.0  # a wait_for_callback step's notify request


class PipelineActivities:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        models: ModelRuntime,
    ) -> None:
        self.settings, self.sessions, self.http, self.models = settings, sessions, http, models

    @CALL_MODEL.defn
    async def call_model(self, call: StepCall) -> StepOutcome:
        """An ``ai_prompt`` or ``agent`` step: one chat call through the model layer
        (routing, fallback, budgets, breakers and the ledger)."""
        config, agent = call.config, call.agent
        prompt = config.get("prompt") or config.get("input") or config.get("task")
        if prompt is None:
            raise ApplicationError(
                f"step {call.step_id} has no prompt", type="VALIDATION_ERROR", non_retryable=True
            )
        messages = []
        system = config.get("system_prompt") or (agent.system_prompt if agent else "")
        if system:
            messages.append(ChatMessage(role="system", content=str(system)))
        text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
        messages.append(ChatMessage(role="user", content=text))
        model = config.get("model") or (agent.model if agent else None) or ""
        fallback = config.get("fallback_model") or (agent.fallback_model if agent else None)
        temperature = config.get("temperature", agent.temperature if agent else None)
        max_tokens = config.get("max_tokens") or (agent.max_tokens if agent else None)
        info = activity.info()
        ctx = CallContext(
            tenant_id=call.tenant_id,
            user_id=call.started_by,
            kind="agent" if agent else "workflow",
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
        )
        try:
            request = ChatRequest(
                model=str(model),
                messages=messages,
                temperature=0.7 if temperature is None else float(temperature),
                max_tokens=int(max_tokens) if max_tokens else None,
            )
        except ValueError as exc:
            raise ApplicationError(str(exc), type="VALIDATION_ERROR", non_retryable=True) from None
        async with heartbeating(every=HEARTBEAT_SECONDS):
            outcome = await engine_errors(
                complete(self.models, ctx, request, fallback_model=fallback, use_cache=False)
            )
        detail: dict[str, Any] = {"provider": outcome.provider}
        if outcome.fallback_from:
            detail["fallback_from"] = outcome.fallback_from
        return StepOutcome(
            output=outcome.content,
            tokens_used=outcome.total_tokens,
            cost_usd=outcome.cost_usd,
            model=outcome.model,
            detail=detail,
        )

    @CALL_API.defn
    async def call_api(self, call: StepCall) -> StepOutcome:
        """An ``api_call`` step: one HTTP request to a tenant's URL, through the
        egress guard with the tenant rules. 5xx and 429 are retried; 4xx fail."""
        config = call.config
        method = str(config.get("method", "GET")).upper()
        headers = {str(k): str(v) for k, v in dict(config.get("headers") or {}).items()}
        # The same key on every attempt lets a receiver drop a repeated delivery.
        headers.setdefault("Idempotency-Key", f"{call.execution_id}:{call.step_id}")
        body = config.get("body")
        async with heartbeating(every=HEARTBEAT_SECONDS):
            try:
                response = await engine_errors(
                    guarded_request(
                        self.http,
                        method,
                        str(config["url"]),
                        settings=self.settings,
                        headers=headers,
                        json=body if method not in ("GET", "HEAD") else None,
                        timeout_seconds=float(config.get("timeout_seconds", 30)),
                        tenant=True,
                        max_bytes=MAX_CAPTURED_BYTES,
                    )
                )
            except httpx.HTTPError as exc:
                raise ApplicationError(f"{method} failed: {exc}", type="HTTP_ERROR") from None
        status = response.status_code
        text = response.content.decode("utf-8", errors="replace")
        try:
            output: Any = json.loads(text) if text else None
        except ValueError:
            output = text
        detail = {"status_code": status, "url": str(config["url"]), "method": method}
        if status >= 500 or status == 429:
            raise ApplicationError(f"{method} answered {status}", detail, type="HTTP_SERVER_ERROR")
        if status >= 400:
            raise ApplicationError(
                f"{method} answered {status}", detail, type="HTTP_CLIENT_ERROR", non_retryable=True
            )
        return StepOutcome(output=output, detail=detail)

    @SEND_EMAIL.defn
    async def send_email(self, call: StepCall) -> StepOutcome:
        """An ``email`` step: once per execution and step, however often retried."""
        message = await engine_errors(email.send_step_email(self.sessions, self.settings, call))
        return StepOutcome(
            output=f"Email {message.status}", detail={"recipients": message.to, "id": message.id}
        )

    @LOAD_DEFINITION.defn
    async def load_definition(self, params: LoadDefinitionInput) -> LoadedDefinition:
        async with self.sessions() as session:
            return await engine_errors(
                executions.load_for_run(session, params.tenant_id, params.definition_id)
            )

    @RECORD_EXECUTION.defn
    async def record_execution(self, record: ExecutionRecord) -> None:
        """The outcome into the execution index (idempotent: the same values again)."""
        async with self.sessions() as session:
            await executions.record_outcome(session, record)
            await session.commit()

    @EMIT_STEP_EVENTS.defn
    async def emit_step_events(self, batch: StepEvents) -> None:
        """A run's step events into the outbox: a local activity (one small
        transaction, no task queue round trip); each event once, however often retried."""
        async with self.sessions() as session:
            await executions.record_step_events(session, batch)
            await session.commit()

    @CHECK_CONSENT.defn
    async def check_consent(self, params: ConsentCheck) -> ConsentHeld:
        """Before a step that touches data categories: do the data subject's granted
        consents still cover them? Read-only, so any attempt may repeat it."""
        async with self.sessions() as session:
            missing = await consents.missing_categories(
                session, params.tenant_id, params.user_id, params.categories
            )
        return ConsentHeld(missing=missing)

    @OPEN_CALLBACK.defn
    async def open_callback(self, params: OpenCallbackInput) -> CallbackOpened:
        """A ``wait_for_callback`` step: open its one-time URL (the same one on every
        attempt) and, with ``notify``, hand URL and secret to the tenant's system.

        Only the id and URL go back into history; the secret leaves this
        activity only in the ``notify`` request (and through the tenant's
        authenticated ``GET /api/v1/executions/{id}/callbacks``).
        """
        async with self.sessions() as session:
            opened = await engine_errors(
                callbacks.open_callback(
                    session,
                    self.settings,
                    params.tenant_id,
                    params.workflow_id,
                    CALLBACK_SIGNAL,
                    f"{params.execution_id}:{params.step_id}",
                    ttl_seconds=params.timeout_seconds,
                )
            )
            await session.commit()
        if params.notify is not None:
            await self._notify(params, opened)
        return CallbackOpened(callback_id=opened.callback_id, callback_url=opened.url_path)

    async def _notify(self, params: OpenCallbackInput, opened: callbacks.OpenedCallback) -> None:
        """POST the callback's URL and secret to the tenant's ``notify.url`` (through
        the egress guard with the tenant rules). 5xx and 429 are retried; 4xx fail."""
        notify = params.notify or {}
        method = str(notify.get("method") or "POST").upper()
        if method not in ("POST", "PUT", "PATCH"):
            raise ApplicationError(
                f"notify.method {method} is not POST, PUT or PATCH",
                type="VALIDATION_ERROR",
                non_retryable=True,
            )
        extra = notify.get("body") or {}
        if not isinstance(extra, dict):
            raise ApplicationError(
                "notify.body must be an object", type="VALIDATION_ERROR", non_retryable=True
            )
        body = {
            **extra,
            "callback_url": opened.url_path,
            "callback_secret": opened.secret,
            "callback_id": opened.callback_id,
        }
        headers = {str(k): str(v) for k, v in dict(notify.get("headers") or {}).items()}
        headers.setdefault("Idempotency-Key", f"{params.execution_id}:{params.step_id}:callback")
        url = str(notify.get("url") or "")
        async with heartbeating(every=HEARTBEAT_SECONDS):
            try:
                response = await engine_errors(
                    guarded_request(
                        self.http,
                        method,
                        url,
                        settings=self.settings,
                        headers=headers,
                        json=body,
                        timeout_seconds=NOTIFY_TIMEOUT_SECONDS,
                        tenant=True,
                        max_bytes=MAX_CAPTURED_BYTES,
                    )
                )
            except httpx.HTTPError as exc:
                # The exception's text names the URL, never the body (which holds the secret).
                raise ApplicationError(
                    f"notify {method} failed: {type(exc).__name__}", type="HTTP_ERROR"
                ) from None
        status = response.status_code
        detail = {"status_code": status, "url": url, "method": method}
        if status >= 500 or status == 429:
            raise ApplicationError(
                f"notify {method} answered {status}", detail, type="HTTP_SERVER_ERROR"
            )
        if status >= 400:
            raise ApplicationError(
                f"notify {method} answered {status}",
                detail,
                type="HTTP_CLIENT_ERROR",
                non_retryable=True,
            )
