"""A2AExchangeWorkflow (``a2a-{session_id}``): one z2 A2A session between two agents.

The API writes the session's row and starts this run after the handshake. The
run then answers three updates and a query:

- ``negotiate`` agrees the session's parameters (protocol version, content
  types, message size, turns, budget). Its validator refuses what the server
  does not speak or allow, so a refused negotiation changes nothing and leaves
  nothing in the history.
- ``message`` delivers one message of the source agent to the target and
  answers with the reply: one of the tenant's agents answers through the model
  layer (``answer_a2a_agent``, with the recent conversation), a remote agent
  through the A2A client (``call_remote_agent``, keeping its context id across
  turns). Its validator refuses a message over the agreed size, a turn beyond
  ``max_turns`` and a turn once the cost reached the budget: nothing is
  delivered. Messages are delivered one at a time, in the order accepted.
- ``close`` ends the session (so does ``idle_timeout_seconds`` without a message).
- the ``transcript`` query answers the session with its recent transcript.

After each change the row is written (``record_a2a_session``: status, turns,
cost). A long session continues as new after ``turns_per_run`` turns (or when
Temporal suggests it), once every update in flight has finished, handing the
next run its limits, counts and recent transcript.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.platform.queues import TaskQueue
    from workflows.a2a_exchange_payloads import (
        INVALID,
        LIMIT_EXCEEDED,
        MESSAGE_TOO_LARGE,
        OPEN_STATUSES,
        PROTOCOL_VERSIONS,
        SESSION_CLOSED,
        UNSUPPORTED_CONTENT,
        A2AExchangeInput,
        A2ASessionRecord,
        ExchangeState,
        SessionClose,
        SessionEntry,
        SessionLimits,
        SessionMessage,
        SessionNegotiation,
        SessionReply,
        SessionStatus,
        SessionView,
        common_content_types,
        common_versions,
        content_text,
        content_type_of,
        message_size,
    )
    from workflows.a2a_payloads import A2AAgentCall, A2AAnswer, A2ATurn, RemoteAgentCall
    from workflows.activities import ANSWER_A2A_AGENT, CALL_REMOTE_AGENT, RECORD_A2A_SESSION

# Failures another attempt cannot fix (the activities raise them non-retryable too).
PERMANENT = [
    "VALIDATION_ERROR",
    "NOT_FOUND",
    "FORBIDDEN",
    "AGENT_NOT_FOUND",
    "MODEL_NOT_AVAILABLE",
    "INSUFFICIENT_CREDITS",
    "EGRESS_DENIED",
    "A2A_REMOTE_REFUSED",
]
ANSWER_RETRY = RetryPolicy(
    maximum_attempts=3,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=PERMANENT,
)
RECORD_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))
REMOTE_TIMEOUT_SECONDS = 120.0


def refuse(code: str, message: str, **details: Any) -> NoReturn:
    """Refuse an update: the caller gets ``code`` (and ``details``); the run goes on."""
    raise ApplicationError(message, details, type=code, non_retryable=True)


@workflow.defn
class A2AExchangeWorkflow:
    @workflow.init
    def __init__(self, params: A2AExchangeInput) -> None:
        # Set before any handler runs: an update may arrive with the run's first task.
        self._params = params
        self._state = params.state or ExchangeState(limits=params.limits, updated_at=self._now())
        if params.state is not None:
            self._state.runs += 1
        self._turns_this_run = 0
        self._last_message_at = workflow.time()
        # One message (or close) at a time: turns are numbered in order, and the
        # limits are checked again once it is a message's turn.
        self._lock = asyncio.Lock()

    # --- reading -----------------------------------------------------------------

    @workflow.query
    def transcript(self) -> SessionView:
        """The session: where it stands and its recent transcript."""
        params, state = self._params, self._state
        return SessionView(
            session_id=params.session_id,
            status=state.status,
            source=params.source,
            target=params.target,
            limits=state.limits,
            maxima=params.maxima,
            negotiated=state.negotiated,
            turns=state.turns,
            cost_usd=state.cost_usd,
            tokens_used=state.tokens_used,
            transcript=list(state.transcript),
            dropped=state.dropped,
            runs=state.runs,
            closed_reason=state.closed_reason,
            updated_at=state.updated_at,
        )

    # --- negotiating -------------------------------------------------------------

    @workflow.update
    async def negotiate(self, asked: SessionNegotiation) -> SessionLimits:
        """Agree the parameters asked for (the others stay as they are)."""
        async with self._lock:
            state = self._state
            self._negotiation_rules(asked)  # again: a turn may have run meanwhile
            current = state.limits
            state.limits = SessionLimits(
                protocol_version=asked.protocol_version or current.protocol_version,
                content_types=list(asked.content_types or current.content_types),
                max_message_size=asked.max_message_size or current.max_message_size,
                max_turns=asked.max_turns or current.max_turns,
                budget_usd=current.budget_usd if asked.budget_usd is None else asked.budget_usd,
            )
            state.negotiated = True
            if state.status == "handshake":
                state.status = "negotiated"
            self._touch()
            await self._record()
            return state.limits

    @negotiate.validator
    def _validate_negotiation(self, asked: SessionNegotiation) -> None:
        self._negotiation_rules(asked)

    def _negotiation_rules(self, asked: SessionNegotiation) -> None:
        params, state = self._params, self._state
        if state.status not in OPEN_STATUSES:
            refuse(SESSION_CLOSED, f"the session is {state.status}", status=state.status)
        maxima = params.maxima
        if asked.protocol_version is not None:
            supported = common_versions(params.source, params.target)
            if asked.protocol_version not in supported:
                refuse(
                    INVALID,
                    f"protocol version {asked.protocol_version!r} is not supported "
                    f"(supported: {', '.join(supported) or 'none'})",
                    field="protocol_version",
                    supported=supported,
                    server_supports=list(PROTOCOL_VERSIONS),
                )
        if asked.content_types is not None:
            both = common_content_types(params.source, params.target)
            unsupported = [t for t in asked.content_types if t not in both]
            if not asked.content_types or unsupported:
                refuse(
                    INVALID,
                    f"content types must be ones both agents support ({', '.join(both) or 'none'})",
                    field="content_types",
                    unsupported=unsupported,
                    supported=both,
                )
        numbers: list[tuple[str, float | None, float]] = [
            ("max_message_size", asked.max_message_size, maxima.max_message_size),
            ("max_turns", asked.max_turns, maxima.max_turns),
            ("budget_usd", asked.budget_usd, maxima.budget_usd),
        ]
        for name, value, most in numbers:
            if value is None:
                continue
            if value <= 0 or value > most:
                refuse(
                    INVALID,
                    f"{name} must be more than 0 and at most {most:g} (the server's maximum)",
                    field=name,
                    maximum=most,
                    requested=value,
                )
        if asked.max_turns is not None and asked.max_turns < state.turns:
            refuse(
                INVALID,
                f"max_turns cannot be below the {state.turns} turns already taken",
                field="max_turns",
                turns=state.turns,
                requested=asked.max_turns,
            )

    # --- messages ----------------------------------------------------------------

    @workflow.update
    async def message(self, sent: SessionMessage) -> SessionReply:
        """Deliver ``sent`` to the target and answer with its reply."""
        async with self._lock:
            params, state = self._params, self._state
            self._message_rules(sent)  # again: the turns before it may have used the limits
            turn = state.turns + 1
            message_id = f"{params.session_id}:{turn}"
            entry = SessionEntry(
                message_id=message_id,
                turn=turn,
                sender="source",
                content=sent.content,
                at=self._now(),
            )
            state.transcript.append(entry)
            try:
                reply = await self._deliver(params, state, sent, turn, message_id)
            except ActivityError as err:
                state.transcript.remove(entry)  # not delivered: the turn did not happen
                code, text, details = _cause(err)
                raise ApplicationError(text, details, type=code, non_retryable=True) from None
            state.turns = turn
            state.cost_usd = round(state.cost_usd + reply.cost_usd, 8)
            state.tokens_used += reply.tokens_used
            state.transcript.append(reply)
            self._trim(params, state)
            state.status = "active"
            self._turns_this_run += 1
            self._touch()
            await self._record()
            return SessionReply(
                session_id=params.session_id,
                message_id=message_id,
                reply_message_id=reply.message_id,
                reply=content_text(reply.content),
                turn=turn,
                cost_usd=reply.cost_usd,
                tokens_used=reply.tokens_used,
                model=reply.model,
                state=reply.state,
                turns=state.turns,
                max_turns=state.limits.max_turns,
                total_cost_usd=state.cost_usd,
                budget_usd=state.limits.budget_usd,
            )

    @message.validator
    def _validate_message(self, sent: SessionMessage) -> None:
        self._message_rules(sent)

    def _message_rules(self, sent: SessionMessage) -> None:
        params, state = self._params, self._state
        limits = state.limits
        if state.status not in OPEN_STATUSES:
            refuse(SESSION_CLOSED, f"the session is {state.status}", status=state.status)
        kind = content_type_of(sent.content)
        if kind not in limits.content_types:
            refuse(
                UNSUPPORTED_CONTENT,
                f"the session carries {', '.join(limits.content_types)}, not {kind}",
                limit="content_types",
                content_type=kind,
                content_types=limits.content_types,
            )
        size = message_size(sent.content)
        if size > limits.max_message_size:
            refuse(
                MESSAGE_TOO_LARGE,
                f"the message has {size} bytes; the session allows {limits.max_message_size}",
                limit="max_message_size",
                max_message_size=limits.max_message_size,
                size=size,
            )
        if state.turns >= limits.max_turns:
            refuse(
                LIMIT_EXCEEDED,
                f"the session has used its {limits.max_turns} turns",
                limit="max_turns",
                max_turns=limits.max_turns,
                turns=state.turns,
            )
        budget = params.maxima.budget_usd if limits.budget_usd is None else limits.budget_usd
        if state.cost_usd >= budget:
            refuse(
                LIMIT_EXCEEDED,
                f"the session has spent its budget of ${budget:g}",
                limit="budget_usd",
                budget_usd=budget,
                cost_usd=state.cost_usd,
            )

    async def _deliver(
        self,
        params: A2AExchangeInput,
        state: ExchangeState,
        sent: SessionMessage,
        turn: int,
        message_id: str,
    ) -> SessionEntry:
        target = params.target
        if target.kind == "agent":
            answer: A2AAnswer = await ANSWER_A2A_AGENT.execute(
                A2AAgentCall(
                    tenant_id=params.tenant_id,
                    task_id=params.session_id,
                    agent_id=target.id or "",
                    started_by=sent.sent_by,
                    turn=turn,
                    turns=self._conversation(params, state),
                ),
                task_queue=self._queue(TaskQueue.IO),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=20),
                retry_policy=ANSWER_RETRY,
                summary=f"Ask {target.name or target.id} (turn {turn})",
            )
            return SessionEntry(
                message_id=f"{message_id}:reply",
                turn=turn,
                sender="target",
                content=answer.text,
                at=self._now(),
                model=answer.model,
                cost_usd=answer.cost_usd,
                tokens_used=answer.tokens_used,
            )
        content = sent.content
        result = await CALL_REMOTE_AGENT.execute(
            RemoteAgentCall(
                tenant_id=params.tenant_id,
                card_url=target.url or "",
                text=content if isinstance(content, str) else "",
                data=None if isinstance(content, str) else content,
                context_id=state.remote_context_id,
                task_id=state.remote_task_id,
                timeout_seconds=REMOTE_TIMEOUT_SECONDS,
                protocol="1.0" if state.limits.protocol_version == "1.0" else "0.3",
                idempotency_key=message_id,
            ),
            task_queue=self._queue(TaskQueue.IO),
            start_to_close_timeout=timedelta(seconds=REMOTE_TIMEOUT_SECONDS + 30),
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=ANSWER_RETRY,
            summary=f"Message {target.name or target.url} (turn {turn})",
        )
        state.remote_context_id = result.context_id or state.remote_context_id
        # A task that asks for more input continues with the next message.
        state.remote_task_id = result.task_id if result.state == "input-required" else None
        return SessionEntry(
            message_id=f"{message_id}:reply",
            turn=turn,
            sender="target",
            content=result.text,
            at=self._now(),
            state=result.state,
        )

    # --- closing -----------------------------------------------------------------

    @workflow.update
    async def close(self, asked: SessionClose) -> SessionView:
        """End the session (after a message in flight); closing twice changes nothing."""
        async with self._lock:
            await self._end("closed", asked.reason)
            return self.transcript()

    # --- the run -------------------------------------------------------------------

    @workflow.run
    async def run(self, params: A2AExchangeInput) -> SessionView:
        state = self._state
        idle = params.idle_timeout_seconds
        while state.status in OPEN_STATUSES:
            quiet = workflow.time() - self._last_message_at
            if quiet >= idle:
                if self._lock.locked():  # a message is in flight: not idle after all
                    await workflow.wait_condition(lambda: not self._lock.locked())
                    continue
                async with self._lock:
                    await self._end("closed", "idle")
                break
            try:
                await workflow.wait_condition(
                    lambda: state.status not in OPEN_STATUSES or self._should_continue(),
                    timeout=max(idle - quiet, 1.0),
                    timeout_summary="idle timeout",
                )
            except TimeoutError:
                continue
            if state.status in OPEN_STATUSES and self._should_continue():
                # Updates in flight finish in this run; their results must not be lost.
                await workflow.wait_condition(workflow.all_handlers_finished)
                if state.status in OPEN_STATUSES:
                    self._trim(params, state)
                    workflow.continue_as_new(params.model_copy(update={"state": state}))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.transcript()

    # --- helpers -------------------------------------------------------------------

    def _should_continue(self) -> bool:
        params = self._params
        return (
            self._turns_this_run >= params.turns_per_run
            or workflow.info().is_continue_as_new_suggested()
        )

    async def _end(self, status: SessionStatus, reason: str) -> None:
        state = self._state
        if state.status not in OPEN_STATUSES:
            return
        state.status, state.closed_reason = status, reason
        self._touch()
        await self._record()

    def _conversation(self, params: A2AExchangeInput, state: ExchangeState) -> list[A2ATurn]:
        """The recent transcript as the target agent reads it (its own replies are
        the assistant's), as much as fits in ``context_chars``; at least the last
        message."""
        turns: list[A2ATurn] = []
        left = params.context_chars
        for entry in reversed(state.transcript):
            text = content_text(entry.content)
            if turns and len(text) > left:
                break
            role = "user" if entry.sender == "source" else "assistant"
            turns.append(A2ATurn(role=role, text=text))
            left -= len(text)
        turns.reverse()
        while turns and turns[0].role == "assistant":  # a conversation starts with the user
            turns.pop(0)
        return turns

    def _trim(self, params: A2AExchangeInput, state: ExchangeState) -> None:
        extra = len(state.transcript) - params.transcript_window
        if extra > 0:
            del state.transcript[:extra]
            state.dropped += extra

    async def _record(self) -> None:
        params, state = self._params, self._state
        await RECORD_A2A_SESSION.execute(
            A2ASessionRecord(
                tenant_id=params.tenant_id,
                session_id=params.session_id,
                status=state.status,
                protocol_version=state.limits.protocol_version,
                limits={**state.limits.model_dump(mode="json"), "negotiated": state.negotiated},
                turns=state.turns,
                cost_usd=state.cost_usd,
            ),
            task_queue=self._queue(TaskQueue.IO),
            # SQLite may keep a writer waiting up to 30 s (its busy timeout).
            start_to_close_timeout=timedelta(seconds=40),
            retry_policy=RECORD_RETRY,
            summary=f"Record {state.status} ({state.turns} turns)",
        )

    def _touch(self) -> None:
        state = self._state
        state.updated_at = self._now()
        self._last_message_at = workflow.time()

    def _now(self) -> str:
        return workflow.now().isoformat().replace("+00:00", "Z")

    def _queue(self, queue: TaskQueue) -> str:
        """An activity queue with this run's queue prefix (read from its own queue)."""
        own = workflow.info().task_queue
        return own[: len(own) - len(TaskQueue.WORKFLOWS.value)] + queue.value


def _cause(err: ActivityError) -> tuple[str, str, dict[str, Any]]:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        return cause.type or "A2A_MESSAGE_FAILED", cause.message, details
    return "A2A_MESSAGE_FAILED", str(cause or err), {}
