"""A2AExchangeWorkflow on its own: the Temporal dev server with the fake activities of
``tests/workflows/fakes.py`` (no database, no model)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tests.workflows.fakes import FakeActivities, new_prefix, serve
from workflows.a2a_exchange import A2AExchangeWorkflow
from workflows.a2a_exchange_payloads import (
    A2AExchangeInput,
    A2ASessionRecord,
    SessionClose,
    SessionMaxima,
    SessionMessage,
    SessionNegotiation,
    SessionPeer,
    SessionView,
    default_limits,
)
from workflows.a2a_payloads import A2AAgentCall, RemoteAgentCall
from workflows.activities import Activity

pytestmark = pytest.mark.asyncio(loop_scope="session")

Handle = WorkflowHandle[A2AExchangeWorkflow, SessionView]


def session_input(target: SessionPeer | None = None, **options: Any) -> A2AExchangeInput:
    source = SessionPeer(kind="agent", id="agt_src", name="Source", capabilities=["ask"])
    target = target or SessionPeer(kind="agent", id="agt_dst", name="Target")
    maxima = SessionMaxima(max_message_size=1000, max_turns=20, budget_usd=5.0)
    return A2AExchangeInput(
        session_id=f"a2s_{new_prefix().strip('-')}",
        tenant_id="ten_w",
        started_by="usr_w",
        source=source,
        target=target,
        limits=default_limits(source, target, maxima),
        maxima=maxima,
        **options,
    )


async def start(client: Client, queue: str, params: A2AExchangeInput) -> Handle:
    await client.start_workflow(
        A2AExchangeWorkflow.run, params, id=f"a2a-{params.session_id}", task_queue=queue
    )
    # No run id: every call reaches the session's latest run, across continue-as-new.
    return client.get_workflow_handle_for(A2AExchangeWorkflow.run, f"a2a-{params.session_id}")


def say(text: str | dict[str, Any]) -> SessionMessage:
    return SessionMessage(content=text, sent_by="usr_w")


async def refused(coroutine: Any) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await coroutine
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


def records(fakes: FakeActivities) -> list[A2ASessionRecord]:
    return [r for r in fakes.called(Activity.RECORD_A2A_SESSION) if isinstance(r, A2ASessionRecord)]


async def test_a_long_session_continues_as_new_and_keeps_its_state(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities()
    client = temporal_env.client
    async with serve(client, fakes, new_prefix()) as queue:
        handle = await start(client, queue, session_input(turns_per_run=2, transcript_window=4))
        first_run = (await handle.describe()).run_id
        await handle.execute_update(
            A2AExchangeWorkflow.negotiate,
            SessionNegotiation(protocol_version="0.3", max_turns=5, max_message_size=100),
        )
        replies = [
            await handle.execute_update(A2AExchangeWorkflow.message, say(f"question {n}"))
            for n in range(1, 6)
        ]
        assert [r.turn for r in replies] == [1, 2, 3, 4, 5]
        assert replies[-1].reply == "answer to: question 5"
        view = await handle.query(A2AExchangeWorkflow.transcript)
        # Five turns at two per run: the third run holds the session.
        assert (await handle.describe()).run_id != first_run
        assert (view.runs, view.turns, view.status) == (3, 5, "active")
        # The negotiated limits came along: the sixth turn is one too many.
        assert (view.limits.protocol_version, view.limits.max_turns) == ("0.3", 5)
        assert view.negotiated
        over = await refused(handle.execute_update(A2AExchangeWorkflow.message, say("more")))
        assert over.type == "A2A_LIMIT_EXCEEDED"
        assert over.details[0]["limit"] == "max_turns"
        too_big = await refused(handle.execute_update(A2AExchangeWorkflow.message, say("x" * 101)))
        assert too_big.type == "A2A_MESSAGE_TOO_LARGE"
        # The recent transcript came along too (the window's worth of it).
        assert [(e.turn, e.sender) for e in view.transcript] == [
            (4, "source"), (4, "target"), (5, "source"), (5, "target"),
        ]  # fmt: skip
        assert view.dropped == 6
        closed = await handle.execute_update(A2AExchangeWorkflow.close, SessionClose())
        assert closed.status == "closed"
        assert (await handle.result()).turns == 5
    # In the later runs, the target still read the conversation before them.
    calls = [c for c in fakes.called(Activity.ANSWER_A2A_AGENT) if isinstance(c, A2AAgentCall)]
    assert len(calls) == 5
    assert [t.text for t in calls[2].turns] == [
        "question 1", "answer to: question 1", "question 2", "answer to: question 2", "question 3",
    ]  # fmt: skip
    assert [(r.status, r.turns) for r in records(fakes)][-2:] == [("active", 5), ("closed", 5)]


async def test_a_negotiation_the_server_cannot_agree_to_is_refused_and_changes_nothing(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities()
    client = temporal_env.client
    async with serve(client, fakes, new_prefix()) as queue:
        handle = await start(client, queue, session_input())
        version = await refused(
            handle.execute_update(
                A2AExchangeWorkflow.negotiate, SessionNegotiation(protocol_version="2.0")
            )
        )
        assert (version.type, version.details[0]["field"]) == (
            "VALIDATION_ERROR",
            "protocol_version",
        )
        assert version.details[0]["supported"] == ["1.0", "0.3"]
        kinds = await refused(
            handle.execute_update(
                A2AExchangeWorkflow.negotiate, SessionNegotiation(content_types=["image/png"])
            )
        )
        assert kinds.details[0]["unsupported"] == ["image/png"]
        for asked, field in (
            (SessionNegotiation(max_turns=21), "max_turns"),
            (SessionNegotiation(max_message_size=1001), "max_message_size"),
            (SessionNegotiation(budget_usd=5.01), "budget_usd"),
        ):
            too_much = await refused(handle.execute_update(A2AExchangeWorkflow.negotiate, asked))
            assert (too_much.type, too_much.details[0]["field"]) == ("VALIDATION_ERROR", field)
        view = await handle.query(A2AExchangeWorkflow.transcript)
        assert (view.status, view.negotiated, view.limits.max_turns) == ("handshake", False, 20)
        # Text only: a JSON object is no longer welcome.
        agreed = await handle.execute_update(
            A2AExchangeWorkflow.negotiate, SessionNegotiation(content_types=["text/plain"])
        )
        assert agreed.content_types == ["text/plain"]
        media = await refused(handle.execute_update(A2AExchangeWorkflow.message, say({"order": 7})))
        assert media.type == "UNSUPPORTED_MEDIA_TYPE"
        closed = await handle.execute_update(A2AExchangeWorkflow.close, SessionClose())
        assert closed.status == "closed"
        with pytest.raises(RPCError, match="already completed"):  # the run ended with it
            await handle.execute_update(
                A2AExchangeWorkflow.negotiate, SessionNegotiation(max_turns=3)
            )
    assert fakes.called(Activity.ANSWER_A2A_AGENT) == []  # nothing was delivered


async def test_a_remote_target_keeps_its_context_and_the_agreed_protocol(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities()
    client = temporal_env.client
    remote = SessionPeer(
        kind="remote", url="https://agents.example/card.json", name="Remote",
        content_types=["text/plain"],
    )  # fmt: skip
    async with serve(client, fakes, new_prefix()) as queue:
        params = session_input(remote)
        handle = await start(client, queue, params)
        await handle.execute_update(
            A2AExchangeWorkflow.negotiate, SessionNegotiation(protocol_version="0.3")
        )
        first = await handle.execute_update(A2AExchangeWorkflow.message, say("hello"))
        second = await handle.execute_update(A2AExchangeWorkflow.message, say("again"))
        assert (first.reply, second.reply, second.state) == (
            "remote answer to: hello",
            "remote answer to: again",
            "completed",
        )
        await handle.execute_update(A2AExchangeWorkflow.close, SessionClose())
    calls = [c for c in fakes.called(Activity.CALL_REMOTE_AGENT) if isinstance(c, RemoteAgentCall)]
    assert [(c.card_url, c.protocol, c.idempotency_key) for c in calls] == [
        ("https://agents.example/card.json", "0.3", f"{params.session_id}:1"),
        ("https://agents.example/card.json", "0.3", f"{params.session_id}:2"),
    ]


async def test_an_idle_session_closes_itself(temporal_env: WorkflowEnvironment) -> None:
    fakes = FakeActivities()
    client = temporal_env.client
    async with serve(client, fakes, new_prefix()) as queue:
        handle = await start(client, queue, session_input(idle_timeout_seconds=1.5))
        await handle.execute_update(A2AExchangeWorkflow.message, say("anyone?"))
        async with asyncio.timeout(20):
            done = await handle.result()
    assert (done.status, done.closed_reason, done.turns) == ("closed", "idle", 1)
    assert records(fakes)[-1].status == "closed"
