"""Inbound callbacks end to end: a ``wait_for_callback`` step announces its one-time URL
and secret to a receiver on loopback (through the tenant egress guard), an external
system calls back with a signed request, and the waiting run goes on with the body.

The API, a real worker and the Temporal dev server; requests are signed with the
``standardwebhooks`` library, with the engine's own ``signature_headers``, and
with a hand-made ``sha256=`` HMAC, as different callers would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import Callback
from engine.events import callbacks
from engine.events.callbacks import MAX_BODY_BYTES
from engine.events.signing import signature_headers
from engine.platform.settings import Settings
from tests.conftest import DocStack, make_tenant, worker_stack
from tests.fake_providers import serve_app
from tests.pipelines.support import (
    SQLITE_ONLY,
    assert_declared,
    create_workflow,
    execute,
    finish,
    read_execution,
    until_step,
)

pytestmark = pytest.mark.asyncio


@dataclass
class Notified:
    """The tenant's system: records every announcement of a callback it receives."""

    url: str = ""
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    answer: int = 200


@asynccontextmanager
async def notify_receiver() -> AsyncIterator[Notified]:
    found = Notified()

    async def hooks(request: Request) -> JSONResponse:
        found.requests.append((dict(request.headers), await request.json()))
        return JSONResponse({"ok": True}, status_code=found.answer)

    async with serve_app(Starlette(routes=[Route("/hooks", hooks, methods=["POST"])])) as url:
        found.url = url
        yield found


@dataclass
class CallbackStack:
    api: DocStack
    notified: Notified
    temporal: WorkflowEnvironment


@pytest.fixture
async def stack(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> AsyncIterator[CallbackStack]:
    async with notify_receiver() as notified:
        port = notified.url.rsplit(":", 1)[1]
        # The operator opens the receiver's port for tenant URLs, and nothing else.
        configured = settings.model_copy(
            update={"tenant_egress_allowed_hosts": [f"127.0.0.1:{port}"]}
        )
        async with worker_stack(configured, temporal_env, "callbacks") as api:
            yield CallbackStack(api, notified, temporal_env)


def waiting_pipeline(
    notify_url: str | None, timeout_seconds: float | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if notify_url:
        config["notify"] = {
            "url": notify_url,
            "headers": {"X-Order": "{{order_id}}"},
            "body": {"order_id": "{{order_id}}", "purpose": "payment confirmation"},
        }
    if timeout_seconds:
        config["timeout_seconds"] = timeout_seconds
    return {
        "name": "Wait for the ERP",
        "steps": [
            {"id": "wait", "type": "wait_for_callback", "config": config},
            {"id": "use", "type": "transform", "dependencies": ["wait"],
             "config": {"output": {"paid": "{{steps.wait.output}}", "order": "{{order_id}}"}}},
        ],
    }  # fmt: skip


def standard_headers(secret: str, message_id: str, payload: str) -> dict[str, str]:
    """Signed the way a Standard Webhooks sender signs (the library itself)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(datetime.now(UTC).timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, datetime.now(UTC), payload),
        "content-type": "application/json",
    }


def hmac_headers(secret: str, body: bytes) -> dict[str, str]:
    """The contract's ``X-Webhook-Signature: sha256=<hex>``, keyed with the secret as is."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Webhook-Signature": f"sha256={digest}", "content-type": "text/plain"}


async def callbacks_of(api: DocStack, execution_id: str) -> list[dict[str, Any]]:
    response = await api.http.get(
        f"/api/v1/executions/{execution_id}/callbacks", headers=api.headers
    )
    assert response.status_code == 200, response.text
    assert_declared(api, response)
    return list(response.json()["data"]["callbacks"])


async def signals_of(temporal: WorkflowEnvironment, execution_id: str) -> list[str]:
    history = await temporal.client.get_workflow_handle(f"run-{execution_id}").fetch_history()
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


async def history_text(temporal: WorkflowEnvironment, execution_id: str) -> str:
    handle = temporal.client.get_workflow_handle(f"run-{execution_id}")
    return (await handle.fetch_history()).to_json()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["data"] is None
    return dict(body["error"])


async def test_a_signed_callback_wakes_the_step_once_and_the_next_step_reads_its_body(
    stack: CallbackStack,
) -> None:
    api, notified = stack.api, stack.notified
    workflow_id = await create_workflow(api, waiting_pipeline(f"{notified.url}/hooks"))
    execution_id = await execute(api, workflow_id, {"order_id": "o-17"})
    await until_step(api, execution_id, "wait", "waiting_callback")

    # The receiver got the URL and the secret, with the step's own body and headers.
    ((headers, announced),) = notified.requests
    assert announced["order_id"] == "o-17" and announced["purpose"] == "payment confirmation"
    assert headers["x-order"] == "o-17"
    assert headers["idempotency-key"] == f"{execution_id}:wait:callback"
    url, secret = announced["callback_url"], announced["callback_secret"]
    assert url.startswith("/api/v1/callbacks/") and secret.startswith("whsec_")
    # The run shows the URL while it waits; the tenant can read URL and secret too.
    waiting = (await read_execution(api, execution_id))["results"]["wait"]
    assert waiting["detail"] == {"callback_id": announced["callback_id"], "callback_url": url}
    (listed,) = await callbacks_of(api, execution_id)
    assert (listed["callback_id"], listed["status"], listed["step_id"]) == (
        announced["callback_id"], "waiting", "wait",
    )  # fmt: skip
    assert (listed["callback_url"], listed["secret"]) == (url, secret)

    payload = json.dumps({"paid": True, "amount": 120})
    message = f"msg_{uuid.uuid4().hex}"
    delivered = await api.http.post(
        url, content=payload, headers=standard_headers(secret, message, payload)
    )
    assert delivered.status_code == 200, delivered.text
    assert_declared(api, delivered)
    data = delivered.json()["data"]
    assert (data["callback_id"], data["message_id"], data["status"], data["duplicate"]) == (
        announced["callback_id"], message, "received", False,
    )  # fmt: skip

    # The same message again (a sender's retry): answered the same, not delivered twice.
    again = await api.http.post(
        url, content=payload, headers=standard_headers(secret, message, payload)
    )
    assert again.status_code == 200, again.text
    assert again.json()["data"]["duplicate"] is True
    # Any other message: the URL is used up.
    other = await api.http.post(
        url, content=payload, headers=standard_headers(secret, "msg_other", payload)
    )
    assert error_of(other, 410)["code"] == "CALLBACK_GONE"

    done = await finish(api, execution_id)
    assert done["status"] == "completed", done
    assert done["results"]["use"]["output"] == {
        "paid": {"paid": True, "amount": 120},
        "order": "o-17",
    }
    assert done["results"]["wait"]["output"] == {"paid": True, "amount": 120}
    assert await signals_of(stack.temporal, execution_id) == ["callback"]
    # The run knows the URL, never the secret.
    assert secret not in await history_text(stack.temporal, execution_id)
    (used,) = await callbacks_of(api, execution_id)
    assert (used["status"], used["message_id"]) == ("received", message)
    assert used["secret"] is None and used["callback_url"] is None


@SQLITE_ONLY
async def test_without_notify_the_tenant_reads_the_secret_and_bad_signatures_are_refused(
    stack: CallbackStack,
) -> None:
    api = stack.api
    workflow_id = await create_workflow(api, waiting_pipeline(None))
    execution_id = await execute(api, workflow_id, {"order_id": "o-18"})
    await until_step(api, execution_id, "wait", "waiting_callback")
    (listed,) = await callbacks_of(api, execution_id)
    url, secret = listed["callback_url"], listed["secret"]
    body = b"paid in full"

    # Another tenant sees no such execution; nobody gets in without a credential.
    other = await make_tenant(api.settings, "someone-else")
    foreign = await api.http.get(
        f"/api/v1/executions/{execution_id}/callbacks", headers={"X-API-Key": other.key}
    )
    assert error_of(foreign, 404)["code"] == "EXECUTION_NOT_FOUND"
    anonymous = await api.http.get(f"/api/v1/executions/{execution_id}/callbacks")
    assert error_of(anonymous, 401)["code"] == "UNAUTHORIZED"

    # Unsigned, or signed with another secret, in either scheme: 401, and it keeps waiting.
    unsigned = await api.http.post(url, content=body)
    assert error_of(unsigned, 401)["code"] == "UNAUTHORIZED"
    wrong = await api.http.post(url, content=body, headers=hmac_headers("whsec_wrong", body))
    assert error_of(wrong, 401)["code"] == "UNAUTHORIZED"
    forged = signature_headers("not-the-secret", "msg_forged", body, datetime.now(UTC))
    assert error_of(await api.http.post(url, content=body, headers=forged), 401)
    stale = signature_headers(secret, "msg_stale", body, datetime.now(UTC) - timedelta(minutes=10))
    stale.pop("X-Webhook-Signature")  # the Standard Webhooks timestamp alone decides
    assert error_of(await api.http.post(url, content=body, headers=stale), 401)
    tampered = hmac_headers(secret, body)
    assert error_of(await api.http.post(url, content=b"paid in half", headers=tampered), 401)
    # Past the callback cap (bodies travel into workflow history): 413.
    huge = b"x" * (MAX_BODY_BYTES + 1)
    too_large = await api.http.post(url, content=huge, headers=hmac_headers(secret, huge))
    assert error_of(too_large, 413)["code"] == "PAYLOAD_TOO_LARGE"
    # A token nobody issued: 404 (to a signed request).
    unknown = await api.http.post(
        "/api/v1/callbacks/not-a-token", content=body, headers=hmac_headers(secret, body)
    )
    assert error_of(unknown, 404)["code"] == "CALLBACK_NOT_FOUND"
    assert (await read_execution(api, execution_id))["results"]["wait"]["status"] == (
        "waiting_callback"
    )
    assert await signals_of(stack.temporal, execution_id) == []

    # Two different, correctly signed messages at once (the sha256= scheme, whose
    # message id is the body's hash, and Standard Webhooks): exactly one is accepted.
    as_hmac = hmac_headers(secret, body)
    as_standard = {
        **standard_headers(secret, "msg_race", body.decode()),
        "content-type": "text/plain",
    }
    raced = await asyncio.gather(
        api.http.post(url, content=body, headers=as_hmac),
        api.http.post(url, content=body, headers=as_standard),
    )
    assert sorted(response.status_code for response in raced) == [200, 410], raced
    (accepted,) = [response for response in raced if response.status_code == 200]
    winner = as_hmac if accepted.json()["data"]["message_id"].startswith("sha256:") else as_standard
    assert accepted.json()["data"]["message_id"] in (
        "msg_race", "sha256:" + hashlib.sha256(body).hexdigest(),
    )  # fmt: skip
    repeat = await api.http.post(url, content=body, headers=winner)
    assert repeat.status_code == 200 and repeat.json()["data"]["duplicate"] is True
    done = await finish(api, execution_id)
    assert done["status"] == "completed", done
    assert done["results"]["use"]["output"] == {"paid": "paid in full", "order": "o-18"}
    assert await signals_of(stack.temporal, execution_id) == ["callback"]


@SQLITE_ONLY
async def test_an_expired_callback_url_is_gone_and_the_engine_signs_like_a_caller(
    stack: CallbackStack,
) -> None:
    api = stack.api
    workflow_id = await create_workflow(api, waiting_pipeline(None))
    execution_id = await execute(api, workflow_id, {"order_id": "o-19"})
    await until_step(api, execution_id, "wait", "waiting_callback")
    (listed,) = await callbacks_of(api, execution_id)
    url, secret = listed["callback_url"], listed["secret"]
    body = json.dumps({"paid": False}).encode()

    engine = create_engine(api.settings)
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(
                update(Callback)
                .where(Callback.id == listed["callback_id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            await session.commit()
    finally:
        await engine.dispose()
    signed = signature_headers(secret, "msg_late", body, datetime.now(UTC))
    gone = await api.http.post(url, content=body, headers=signed)
    error = error_of(gone, 410)
    assert error["code"] == "CALLBACK_GONE" and error["details"]["reason"] == "expired"
    (expired,) = await callbacks_of(api, execution_id)
    assert expired["status"] == "expired" and expired["secret"] is None
    assert await signals_of(stack.temporal, execution_id) == []

    cancelled = await api.http.post(f"/api/executions/{execution_id}/cancel", headers=api.headers)
    assert cancelled.status_code in (200, 202), cancelled.text
    assert (await finish(api, execution_id))["status"] == "cancelled"


@SQLITE_ONLY
async def test_a_callback_that_never_comes_fails_the_step_with_callback_timeout(
    stack: CallbackStack,
) -> None:
    api, notified = stack.api, stack.notified
    workflow_id = await create_workflow(
        api, waiting_pipeline(f"{notified.url}/hooks", timeout_seconds=2)
    )
    execution_id = await execute(api, workflow_id, {"order_id": "o-20"})
    done = await finish(api, execution_id)
    assert (done["status"], done["error_code"]) == ("failed", "CALLBACK_TIMEOUT")
    assert done["results"]["wait"]["error_code"] == "CALLBACK_TIMEOUT"
    assert done["results"]["use"]["status"] == "pending"

    # Too late: the URL lived as long as the wait did.
    ((_, announced),) = notified.requests
    payload = json.dumps({"paid": True})
    late = await api.http.post(
        announced["callback_url"],
        content=payload,
        headers=standard_headers(announced["callback_secret"], "msg_late", payload),
    )
    assert error_of(late, 410)["code"] == "CALLBACK_GONE"


@SQLITE_ONLY
async def test_notify_goes_through_the_tenant_egress_guard(stack: CallbackStack) -> None:
    api = stack.api
    # Loopback, on a port the operator did not open for tenants.
    closed = f"http://127.0.0.1:{int(stack.notified.url.rsplit(':', 1)[1]) + 1}/hooks"
    workflow_id = await create_workflow(api, waiting_pipeline(closed))
    execution_id = await execute(api, workflow_id, {"order_id": "o-21"})
    done = await finish(api, execution_id)
    assert (done["status"], done["error_code"]) == ("failed", "EGRESS_DENIED")
    assert stack.notified.requests == []


@SQLITE_ONLY
async def test_a_wait_for_callback_definition_is_checked(stack: CallbackStack) -> None:
    api = stack.api
    bad = [
        ({"timeout_seconds": -1}, "config.timeout_seconds"),
        ({"notify": "https://x.example"}, "config.notify"),
        ({"notify": {"method": "POST"}}, "config.notify.url"),
        ({"notify": {"url": "https://x.example", "method": "GET"}}, "config.notify.method"),
        ({"notify": {"url": "https://x.example", "body": [1]}}, "config.notify.body"),
    ]
    for config, where in bad:
        response = await api.http.post(
            "/api/workflows",
            json={"name": "bad", "steps": [{"type": "wait_for_callback", "config": config}]},
            headers=api.headers,
        )
        error = error_of(response, 422)
        assert error["details"]["field"] == where, (config, error)


@SQLITE_ONLY
async def test_opening_again_hands_back_the_same_callback_and_a_new_key_reissues_it(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    tenant = await make_tenant(settings, "openers")
    engine = create_engine(settings)
    try:
        sessions = create_sessionmaker(engine)
        async with sessions() as session:
            first = await callbacks.open_callback(
                session, settings, tenant.tenant_id, "run-gone", "callback", "exe_x:wait"
            )
            await session.commit()
        async with sessions() as session:  # a retried activity
            again = await callbacks.open_callback(
                session, settings, tenant.tenant_id, "run-gone", "callback", "exe_x:wait"
            )
            await session.commit()
            rows = list(await session.scalars(select(Callback)))
        assert again == first and len(rows) == 1
        assert rows[0].token_hash == callbacks.token_hash(first.token) != first.token
        assert first.secret not in rows[0].secret_encrypted
        assert first.url_path == f"/api/v1/callbacks/{first.token}"

        # Signed correctly, but nobody waits any more (the run has ended): 410, and
        # the callback stays unused.
        body = b'{"late": true}'
        signed = signature_headers(first.secret, "msg_1", body, datetime.now(UTC))
        async with sessions() as session:
            with pytest.raises(callbacks.CallbackGone) as gone:
                await callbacks.receive(
                    session, temporal_env.client, settings, first.token, body, signed
                )
        assert gone.value.details["reason"] == "workflow_ended"
        async with sessions() as session:
            (row,) = await session.scalars(select(Callback))
            assert (row.status, row.received_message_id) == ("waiting", None)

        # After the deployment's secret changed, opening again invalidates the old URL.
        rotated = settings.model_copy(update={"jwt_secret": "another-deployment-secret-" * 2})
        async with sessions() as session:
            reissued = await callbacks.open_callback(
                session, rotated, tenant.tenant_id, "run-gone", "callback", "exe_x:wait"
            )
            await session.commit()
        assert reissued.callback_id == first.callback_id
        assert (reissued.token, reissued.secret) != (first.token, first.secret)
        async with sessions() as session:
            with pytest.raises(callbacks.CallbackNotFound):
                await callbacks.receive(
                    session, temporal_env.client, rotated, first.token, body, signed
                )
    finally:
        await engine.dispose()
