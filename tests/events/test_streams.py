"""Live event streams end to end: real uvicorn servers (WebSockets and SSE), a
real worker whose dispatcher workflow sequences the outbox, real SQLite and
PostgreSQL, and real Redis for the fan-out between two API processes.

Events enter the way the engine emits them: the API's own upload path, or
``outbox.emit`` in a transaction whose commit rings the doorbell.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.app import create_app
from api.resources import Resources
from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.events import doorbell, outbox
from engine.events.catalog import EventType
from engine.events.dispatch import Dispatcher
from engine.events.doorbell import Doorbell
from engine.events.hub import EventHub
from engine.events.streams import client_message, requested_types
from engine.platform.queues import ALL_QUEUES
from engine.platform.settings import Settings
from tests.conftest import TenantFixture, make_tenant
from tests.fake_providers import serve_app
from tests.pipelines.support import SQLITE_ONLY
from workers.main import WorkerResources, build_workers

WAIT = 30.0
ADMIN_KEY = "streams-admin-key-0123456789"


@dataclass
class Stack:
    settings: Settings
    apps: list[FastAPI]
    urls: list[str]
    sessions: async_sessionmaker[AsyncSession]
    a: TenantFixture
    b: TenantFixture

    def ws(self, path: str, api: int = 0) -> str:
        return self.urls[api].replace("http://", "ws://", 1) + path

    def hub(self, api: int = 0) -> EventHub:
        resources: Resources = self.apps[api].state.resources
        return resources.hub

    async def emit(
        self,
        tenant: TenantFixture,
        kind: EventType,
        data: dict[str, Any],
        subject: str | None = None,
    ) -> str:
        """One event in its own transaction; the commit rings the doorbell."""
        async with transaction(self.sessions) as session:
            event_id = await outbox.emit(session, tenant.tenant_id, kind, data, subject=subject)
        assert event_id is not None
        return event_id


@asynccontextmanager
async def stream_stack(
    settings: Settings, temporal_env: WorkflowEnvironment, *, apis: int = 1, **overrides: Any
) -> AsyncIterator[Stack]:
    """A worker on task queues of its own and ``apis`` API processes served by uvicorn."""
    isolated = settings.model_copy(
        update={
            "task_queue_prefix": f"s{uuid.uuid4().hex[:8]}-",
            "rate_limits_enabled": False,
            "event_stream_poll_seconds": 0.1,
            **overrides,
        }
    )
    resources = WorkerResources.open(isolated)
    a, b = await make_tenant(isolated, "alpha"), await make_tenant(isolated, "beta")
    engine = create_engine(isolated)
    sessions = create_sessionmaker(engine)
    bell = Doorbell(temporal_env.client, isolated)
    doorbell.install(sessions, bell)
    try:
        async with AsyncExitStack() as stack:
            for worker in build_workers(
                temporal_env.client, ALL_QUEUES, resources, prefix=isolated.task_queue_prefix
            ):
                await stack.enter_async_context(worker)
            apps = [create_app(isolated) for _ in range(apis)]
            urls = [await stack.enter_async_context(serve_app(app, lifespan="on")) for app in apps]
            yield Stack(isolated, apps, urls, sessions, a, b)
    finally:
        await bell.close()
        await engine.dispose()
        await resources.close()


async def receive(ws: ClientConnection, within: float = WAIT) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
    return message


async def collect(
    ws: ClientConnection, done: Callable[[dict[str, Any]], bool], within: float = WAIT
) -> list[dict[str, Any]]:
    """Messages up to and including the first that ``done`` accepts."""
    deadline = time.monotonic() + within
    seen: list[dict[str, Any]] = []
    while True:
        message = await receive(ws, max(0.1, deadline - time.monotonic()))
        seen.append(message)
        if done(message):
            return seen


async def connected(url: str, **kwargs: Any) -> ClientConnection:
    ws = await connect(url, **kwargs)
    hello = await receive(ws)
    assert hello["type"] == "connected", hello
    return ws


async def access_token(base: str, tenant: TenantFixture) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post(
            "/api/v1/auth/login", json={"email": tenant.email, "password": tenant.password}
        )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["access_token"])


async def no_subscribers_left(stack: Stack, api: int = 0) -> None:
    deadline = time.monotonic() + WAIT
    while stack.hub(api).subscribers:
        assert time.monotonic() < deadline, f"{stack.hub(api).subscribers} subscriptions left"
        await asyncio.sleep(0.05)


def pipeline(kind: EventType, execution_id: str, **data: Any) -> tuple[EventType, dict[str, Any]]:
    return kind, {"execution_id": execution_id, "workflow_id": "wf_onboarding", **data}


async def test_websocket_clients_of_two_tenants_see_only_their_own_events(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with stream_stack(settings, temporal_env) as stack:
        a_token = await access_token(stack.urls[0], stack.a)
        # Three ways to present a credential: ?token= (a JWT), Bearer, X-API-Key.
        a_query = await connected(stack.ws(f"/ws?token={a_token}"))
        a_header = await connected(
            stack.ws("/ws"), additional_headers={"Authorization": f"Bearer {stack.a.key}"}
        )
        b_ws = await connected(stack.ws("/ws"), additional_headers={"X-API-Key": stack.b.key})
        async with a_query, a_header, b_ws:
            # A's first event comes from the real upload path (the API commits
            # file.uploaded with the file row). Processing stays off: loading the
            # embedding model would dominate this test's time.
            async with httpx.AsyncClient(base_url=stack.urls[0], timeout=30) as http:
                uploaded = await http.post(
                    "/api/v1/mcp/upload",
                    headers={"X-API-Key": stack.a.key},
                    files={"file": ("notes.txt", b"Lunch is served at noon.", "text/plain")},
                    data={"process": "false"},
                )
            assert uploaded.status_code == 201, uploaded.text
            file_id = uploaded.json()["data"]["file_id"]
            b_note = await stack.emit(
                stack.b, EventType.SYSTEM_NOTIFICATION, {"level": "info", "message": "for b"}
            )

            a_note = await stack.emit(
                stack.a, EventType.SYSTEM_NOTIFICATION, {"level": "info", "message": "for a"}
            )
            a_seen = await collect(a_query, lambda m: m["id"] == a_note)
            b_seen = await collect(b_ws, lambda m: m["id"] == b_note)
            # Markers after everything: the stream is in position order, so a
            # leaked event would have arrived before them.
            a_mark = await stack.emit(stack.a, EventType.SYSTEM_NOTIFICATION, {"message": "a"})
            b_mark = await stack.emit(stack.b, EventType.SYSTEM_NOTIFICATION, {"message": "b"})
            a_seen += await collect(a_query, lambda m: m["id"] == a_mark)
            a_also = await collect(a_header, lambda m: m["id"] == a_mark)
            b_seen += await collect(b_ws, lambda m: m["id"] == b_mark)
            assert stack.hub().subscribers == 3
        await no_subscribers_left(stack)

    assert [m["type"] for m in a_seen] == [
        "file.uploaded", "system.notification", "system.notification",
    ]  # fmt: skip
    uploaded_event = a_seen[0]
    assert set(uploaded_event) >= {"type", "id", "timestamp", "data"}
    assert uploaded_event["id"].startswith("evt_") and uploaded_event["timestamp"].endswith("Z")
    assert uploaded_event["data"]["file_id"] == file_id
    assert [m["id"] for m in a_seen[1:]] == [a_note, a_mark]
    assert [m["id"] for m in a_also] == [m["id"] for m in a_seen]
    assert b_note not in {m["id"] for m in a_seen} and b_mark not in {m["id"] for m in a_seen}
    assert [m["id"] for m in b_seen] == [b_note, b_mark]
    positions = [m["seq"] for m in a_seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


@SQLITE_ONLY
async def test_websockets_refuse_a_missing_or_bad_credential(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with stream_stack(settings, temporal_env, admin_api_keys=[ADMIN_KEY]) as stack:
        cases = [
            (stack.ws("/ws"), {}, 4401),
            (stack.ws("/ws?token=not-a-token"), {}, 4401),
            (stack.ws("/ws?token=znt_bogus"), {}, 4401),
            (stack.ws("/ws/executions"), {"X-API-Key": "znt_bogus"}, 4401),
            (stack.ws("/api/v1/mcp/stream?token=not-a-token"), {}, 4401),
            # A global admin key belongs to no tenant: there is no stream to show.
            (stack.ws(f"/ws?token={ADMIN_KEY}"), {}, 4403),
        ]
        for url, headers, code in cases:
            async with connect(url, additional_headers=headers) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), WAIT)  # nothing is sent before the close
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code, url
        # zentoria's client authenticates in its first message; one without a token is refused.
        async with connect(stack.ws("/api/v1/mcp/stream")) as ws:
            await ws.send(json.dumps({"type": "command", "command": "Summarize the report"}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), WAIT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


@SQLITE_ONLY
async def test_execution_updates_map_pipeline_events_to_auterity_messages(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with stream_stack(settings, temporal_env) as stack:
        first = await connected(stack.ws(f"/ws/executions?token={stack.a.key}"))
        alias = await connected(
            stack.ws("/api/ws/executions"), additional_headers={"X-API-Key": stack.a.key}
        )
        other = await connected(stack.ws(f"/ws/executions?token={stack.b.key}"))
        async with first, alias, other:
            ok_run, bad_run, stopped = "exe_ok", "exe_bad", "exe_stopped"
            sent = [
                (pipeline(EventType.WORKFLOW_STARTED, ok_run, workflow_name="Onboarding",
                          status="running", total_steps=2), ok_run),
                ((EventType.FILE_UPLOADED, {"file_id": "file_1"}), "file_1"),
                (pipeline(EventType.WORKFLOW_STEP_COMPLETED, ok_run, step_id="welcome-email",
                          step_name="Send Welcome Email", status="completed",
                          progress={"completed_steps": 1, "total_steps": 2}), ok_run),
                # A document run's completion is no pipeline execution update.
                ((EventType.WORKFLOW_COMPLETED,
                  {"execution_id": "doc-file_1", "status": "completed"}), "doc-file_1"),
                (pipeline(EventType.WORKFLOW_FAILED, bad_run, status="failed",
                          error={"code": "STEP_FAILED", "message": "the CRM said no"}), bad_run),
                (pipeline(EventType.WORKFLOW_STEP_COMPLETED, ok_run, step_id="setup-account",
                          step_name="Setup Customer Account", status="completed",
                          progress={"completed_steps": 2, "total_steps": 2}), ok_run),
                (pipeline(EventType.WORKFLOW_COMPLETED, ok_run, status="completed",
                          duration_ms=1234, output_data={"ok": True}), ok_run),
                (pipeline(EventType.WORKFLOW_CANCELLED, stopped, status="cancelled"), stopped),
            ]  # fmt: skip
            ids = [await stack.emit(stack.a, kind, data, subject) for (kind, data), subject in sent]
            updates = await collect(first, lambda m: m.get("event_id") == ids[-1])
            via_alias = await collect(alias, lambda m: m.get("event_id") == ids[-1])
            b_mark = await stack.emit(
                stack.b, *pipeline(EventType.WORKFLOW_STARTED, "exe_b", total_steps=1), "exe_b"
            )
            b_seen = await collect(other, lambda m: m.get("event_id") == b_mark)

    assert [(u["execution_id"], u["status"]) for u in updates] == [
        (ok_run, "execution_started"),
        (ok_run, "step_completed"),
        (bad_run, "execution_failed"),
        (ok_run, "step_completed"),
        (ok_run, "execution_completed"),
        (stopped, "execution_cancelled"),
    ]
    assert all(u["type"] == "execution_update" and u["timestamp"].endswith("Z") for u in updates)
    started, step, failed, last_step, completed, _ = updates
    assert started["progress"] == {"completed_steps": 0, "total_steps": 2}
    assert step["step_name"] == "Send Welcome Email"
    assert step["progress"] == {"completed_steps": 1, "total_steps": 2}
    assert failed["error"] == {"code": "STEP_FAILED", "message": "the CRM said no"}
    assert last_step["progress"] == {"completed_steps": 2, "total_steps": 2}
    assert completed["duration_ms"] == 1234 and completed["output_data"] == {"ok": True}
    assert [u["event_id"] for u in via_alias] == [u["event_id"] for u in updates]
    assert [u["execution_id"] for u in b_seen] == ["exe_b"]


@SQLITE_ONLY
async def test_mcp_stream_authenticates_by_message_and_narrows_to_one_execution(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with (
        stream_stack(settings, temporal_env) as stack,
        connect(stack.ws("/api/v1/mcp/stream")) as ws,
    ):
        # (Commands on this stream are tested in tests/mcp.)
        await ws.send(json.dumps({"type": "auth", "token": stack.a.key}))
        hello = await receive(ws)
        await ws.send(json.dumps({"type": "ping"}))
        pong = await receive(ws)
        await ws.send(json.dumps({"type": "subscribe", "execution_id": "exe_watched"}))
        narrowed = await receive(ws)
        await stack.emit(stack.a, *pipeline(EventType.WORKFLOW_STARTED, "exe_other"), "exe_other")
        watched = await stack.emit(
            stack.a, *pipeline(EventType.WORKFLOW_STARTED, "exe_watched"), "exe_watched"
        )
        seen = await collect(ws, lambda m: m.get("id") == watched)
        async with connect(stack.ws("/api/v1/mcp/stream")) as by_auth:
            await by_auth.send(json.dumps({"type": "auth", "token": stack.b.key}))
            b_hello = await receive(by_auth)

    assert hello["type"] == "connected" and hello["data"]["tenant_id"] == stack.a.tenant_id
    assert pong["type"] == "pong"
    assert narrowed["type"] == "subscribed" and narrowed["data"]["execution_id"] == "exe_watched"
    # The other execution's event never arrives; the stream stays open and authenticated.
    assert [m["id"] for m in seen] == [watched]
    assert seen[0]["type"] == "workflow.started"
    assert seen[0]["data"]["execution_id"] == "exe_watched"
    assert set(seen[0]) >= {"type", "id", "timestamp", "data"}
    assert b_hello["type"] == "connected" and b_hello["data"]["tenant_id"] == stack.b.tenant_id


async def read_sse(
    response: httpx.Response, stop_after: int | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    """(seq, type, public event) per SSE event; stops after ``stop_after`` events."""
    events: list[tuple[int, str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if line == "":
            if "data" in fields:
                events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                if stop_after is not None and len(events) >= stop_after:
                    return events
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
    return events


async def test_an_sse_client_that_reconnects_with_last_event_id_gets_every_event_once(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    execution = "exe_resumed"
    async with stream_stack(settings, temporal_env) as stack:
        started = await stack.emit(
            stack.a, *pipeline(EventType.WORKFLOW_STARTED, execution, total_steps=30), execution
        )
        emitted = [started]
        path = f"/api/v1/executions/{execution}/events"
        a_headers = {"X-API-Key": stack.a.key}
        async with httpx.AsyncClient(base_url=stack.urls[0], timeout=WAIT) as http:
            # The execution is known once its first event is sequenced.
            deadline = time.monotonic() + WAIT
            while True:
                listed = await http.get(f"/api/v1/events?subject={execution}", headers=a_headers)
                if listed.json()["data"]["events"]:
                    break
                assert time.monotonic() < deadline, "the first event was never sequenced"
                await asyncio.sleep(0.05)
            foreign = await http.get(path, headers={"X-API-Key": stack.b.key})
            assert foreign.status_code == 404
            assert foreign.json()["error"]["code"] == "EXECUTION_NOT_FOUND"

            async def emit_steps() -> None:
                for n in range(1, 31):
                    data = pipeline(
                        EventType.WORKFLOW_STEP_COMPLETED,
                        execution,
                        step_id=f"s{n}",
                        progress={"completed_steps": n, "total_steps": 30},
                    )
                    emitted.append(await stack.emit(stack.a, *data, execution))
                    await asyncio.sleep(0.02)
                done = pipeline(EventType.WORKFLOW_COMPLETED, execution, status="completed")
                emitted.append(await stack.emit(stack.a, *done, execution))

            emitter = asyncio.create_task(emit_steps())
            received: list[tuple[int, str, dict[str, Any]]] = []
            connections = 0
            # Read a few events, hang up, resume from the last one seen: over
            # and over while the run keeps emitting, until its terminal event.
            while not received or received[-1][1] != "workflow.completed":
                headers = dict(a_headers)
                if received:
                    headers["Last-Event-ID"] = str(received[-1][0])
                async with http.stream("GET", path, headers=headers) as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/event-stream")
                    received += await read_sse(response, stop_after=4)
                connections += 1
                assert connections < 100
            await emitter
            # The stream closes by itself after the terminal event; the query
            # parameter resumes like the header.
            async with http.stream(
                "GET", f"{path}?last_event_id={received[-3][0]}", headers=a_headers
            ) as response:
                tail = await read_sse(response)
        await no_subscribers_left(stack)  # every hung-up stream let go of its subscription

    assert [event["id"] for _, _, event in received] == emitted  # none missed, none repeated
    positions = [seq for seq, _, _ in received]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert connections > 3
    assert [seq for seq, _, _ in tail] == positions[-2:]
    _, kind, public = received[1]
    assert kind == "workflow.step_completed" and public["event"] == public["type"] == kind
    assert public["data"]["progress"] == {"completed_steps": 1, "total_steps": 30}


@SQLITE_ONLY
async def test_polling_lists_the_tenants_sequenced_events(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with stream_stack(settings, temporal_env) as stack:
        ids = [
            await stack.emit(stack.a, *pipeline(EventType.WORKFLOW_STARTED, "exe_1"), "exe_1"),
            await stack.emit(stack.b, EventType.SYSTEM_NOTIFICATION, {"message": "b"}),
            await stack.emit(stack.a, EventType.SYSTEM_NOTIFICATION, {"message": "a"}),
            await stack.emit(
                stack.a, *pipeline(EventType.WORKFLOW_COMPLETED, "exe_1", status="completed"),
                "exe_1",
            ),
        ]  # fmt: skip
        a_headers = {"X-API-Key": stack.a.key}
        async with httpx.AsyncClient(base_url=stack.urls[0], timeout=30) as http:
            deadline = time.monotonic() + WAIT
            while True:
                body = (await http.get("/api/v1/events", headers=a_headers)).json()
                if len(body["data"]["events"]) == 3:
                    break
                assert time.monotonic() < deadline, body
                await asyncio.sleep(0.05)
            b_body = (await http.get("/api/v1/events", headers={"X-API-Key": stack.b.key})).json()
            first = body["data"]["events"][0]["seq"]
            paged = (
                await http.get(f"/api/v1/events?after={first}&limit=1", headers=a_headers)
            ).json()["data"]
            by_subject = (await http.get("/api/v1/events?subject=exe_1", headers=a_headers)).json()[
                "data"
            ]
            by_type = (
                await http.get(
                    "/api/v1/events?type=system.notification&type=workflow.completed",
                    headers=a_headers,
                )
            ).json()["data"]
            anonymous = await http.get("/api/v1/events")

    assert body["success"] is True
    assert [e["id"] for e in body["data"]["events"]] == [ids[0], ids[2], ids[3]]
    assert body["data"]["has_more"] is False
    assert body["data"]["next_after"] == body["data"]["events"][-1]["seq"]
    assert set(body["data"]["events"][0]) == {
        "seq", "id", "event", "type", "subject", "timestamp", "data",
    }  # fmt: skip
    assert [e["id"] for e in b_body["data"]["events"]] == [ids[1]]
    assert [e["id"] for e in paged["events"]] == [ids[2]] and paged["has_more"] is True
    assert paged["next_after"] == paged["events"][0]["seq"]
    assert [e["id"] for e in by_subject["events"]] == [ids[0], ids[3]]
    assert [e["id"] for e in by_type["events"]] == [ids[2], ids[3]]
    assert anonymous.status_code == 401


@SQLITE_ONLY
async def test_two_api_processes_both_deliver_through_redis(
    settings: Settings, temporal_env: WorkflowEnvironment, redis_url: str
) -> None:
    async with stream_stack(settings, temporal_env, apis=2, redis_url=redis_url) as stack:
        assert [stack.hub(i).source for i in (0, 1)] == ["redis", "redis"]
        one = await connected(stack.ws(f"/ws?token={stack.a.key}", api=0))
        two = await connected(stack.ws(f"/ws?token={stack.a.key}", api=1))
        other = await connected(stack.ws(f"/ws?token={stack.b.key}", api=1))
        async with one, two, other:
            ids = [
                await stack.emit(stack.a, EventType.SYSTEM_NOTIFICATION, {"n": n}) for n in range(3)
            ]
            b_id = await stack.emit(stack.b, EventType.SYSTEM_NOTIFICATION, {"n": "b"})
            seen_one = await collect(one, lambda m: m["id"] == ids[-1])
            seen_two = await collect(two, lambda m: m["id"] == ids[-1])
            seen_other = await collect(other, lambda m: m["id"] == b_id)
    assert [m["id"] for m in seen_one] == ids
    assert [m["id"] for m in seen_two] == ids
    assert [m["id"] for m in seen_other] == [b_id]


@SQLITE_ONLY
async def test_a_subscriber_that_falls_behind_is_closed_without_holding_up_others(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    tenant = await make_tenant(settings, "slow")
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    hub = EventHub(settings.model_copy(update={"event_stream_poll_seconds": 0.05}), sessions,
                   None, queue_size=3)  # fmt: skip
    try:
        async with hub.subscribe(tenant.tenant_id) as slow, hub.subscribe(tenant.tenant_id) as fast:
            ids, got = [], []
            for n in range(10):
                async with transaction(sessions) as session:
                    event_id = await outbox.emit(
                        session, tenant.tenant_id, EventType.SYSTEM_NOTIFICATION, {"n": n}
                    )
                ids.append(event_id)
                # The real dispatcher gives it its position (no webhooks: no runs start).
                await Dispatcher(settings, sessions, temporal_env.client).run(100)
                got.append(await asyncio.wait_for(fast.__anext__(), WAIT))
            assert [event.id for event in got] == ids
            assert slow.closed and slow.overflowed
            backlog = [event async for event in slow]  # what it had queued, then the end
            assert [event.id for event in backlog] == ids[:3]
            assert hub.subscribers == 1
            # It may resume from its last position: the rest comes from the table.
            async with hub.subscribe(tenant.tenant_id, after_seq=backlog[-1].seq) as resumed:
                rest = [await asyncio.wait_for(resumed.__anext__(), WAIT) for _ in ids[3:]]
            assert [event.id for event in rest] == ids[3:]
    finally:
        await hub.stop()
        await engine.dispose()
    assert hub.subscribers == 0


def test_client_messages_are_read_leniently_and_never_widen_the_view() -> None:
    assert client_message('{"type": "ping"}').kind == "ping"
    narrowed = client_message('{"type": "subscribe", "execution_id": "exe_1", "events": "a.b"}')
    assert (narrowed.subject, narrowed.types) == ("exe_1", frozenset({"a.b"}))
    assert client_message('{"type": "subscribe", "subject": 7}').kind == "invalid"
    assert client_message("[1, 2]").kind == "invalid"
    assert client_message("not json").kind == "invalid"
    command = client_message('{"type": "command", "command": "go", "token": "t"}')
    assert (command.kind, command.command, command.token) == ("command", "go", "t")
    assert client_message('{"type": "dance"}').raw_type == "dance"
    allowed = frozenset({"file.uploaded", "system.notification"})
    assert requested_types(allowed, None) == allowed
    assert requested_types(allowed, ["*"]) == allowed
    assert requested_types(allowed, ["file.uploaded", "workflow.failed"]) == {"file.uploaded"}
