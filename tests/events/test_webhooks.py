"""Webhooks end to end: a real receiver on loopback, the real API, worker and
Temporal dev server. Every request the receiver gets is checked against both
signatures with the secret it registered."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.db.tables import Event
from engine.platform.settings import Settings
from tests.conftest import api_client, make_tenant
from tests.documents.test_durability import start_worker
from tests.documents_support import upload
from tests.events.receiver import Arrival, webhook_receiver
from tests.events.support import (
    FAST_RETRIES,
    deliveries,
    deliveries_api,
    emit_events,
    event_stack,
    events_of,
    register,
    rows,
    verified,
    webhook_row,
)
from tests.pipelines.support import SQLITE_ONLY

pytestmark = pytest.mark.asyncio


async def test_an_upload_reaches_the_receiver_signed_as_file_uploaded_then_file_processed(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with (
        webhook_receiver() as receiver,
        event_stack(settings, temporal_env, receiver) as stack,
    ):
        subscribed = ["file.uploaded", "file.processed", "ai.response"]
        hook = await register(stack, receiver, subscribed)
        assert hook["status"] == "active" and hook["id"].startswith("whk_")
        assert hook["events"] == subscribed
        assert "secret" not in hook or hook["secret"] is None  # ours was given, never echoed

        sent = await upload(stack.http, stack.headers, "notes.txt", b"Rent is 1,200 euros.\n" * 20)
        assert sent.status_code in (200, 201, 202), sent.text
        file_id = sent.json()["data"]["file_id"]
        await receiver.wait_for(lambda r: bool(r.of_type("file.processed")))

        uploaded, processed = receiver.of_type("file.uploaded"), receiver.of_type("file.processed")
        assert len(uploaded) == 1 and len(processed) == 1
        assert verified(receiver), "a request failed signature verification"
        body = uploaded[0].event
        assert body["id"] == uploaded[0].webhook_id and body["id"].startswith("evt_")
        assert body["event"] == body["type"] == "file.uploaded"
        assert body["data"]["file_id"] == file_id and body["data"]["filename"] == "notes.txt"
        assert body["timestamp"].endswith("Z")
        assert processed[0].event["data"]["file_id"] == file_id

        asked = await stack.http.post(
            "/api/v1/ai/rag/query", headers=stack.headers, json={"query": "How much is the rent?"}
        )
        assert asked.status_code == 200, asked.text
        await receiver.wait_for(lambda r: bool(r.of_type("ai.response")))
        answered = receiver.of_type("ai.response")[0].event["data"]
        assert answered["query"] == "How much is the rent?" and "1,200" in answered["answer"]
        assert answered["model"] == asked.json()["data"]["model"]

        # The log row is written just after the receiver answered: wait for it.
        deadline = time.monotonic() + 30
        log = await deliveries_api(stack, hook["id"])
        while len(log) < len(subscribed) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            log = await deliveries_api(stack, hook["id"])
        assert {entry["event_type"] for entry in log} == set(subscribed)
        assert all(e["status"] == "delivered" and e["status_code"] == 200 for e in log)
        assert all(e["attempt"] == 1 and e["latency_ms"] is not None for e in log)

        tested = await stack.http.post(f"/api/v1/webhooks/{hook['id']}/test", headers=stack.headers)
        assert tested.status_code == 202, tested.text
        await receiver.wait_for(lambda r: bool(r.of_type("webhook.test")))
        assert receiver.of_type("webhook.test")[0].webhook_id == tested.json()["data"]["event_id"]
        assert verified(receiver)


@SQLITE_ONLY
async def test_webhooks_are_managed_per_tenant(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with (
        webhook_receiver() as receiver,
        event_stack(settings, temporal_env, receiver) as stack,
    ):
        made = await stack.http.post(
            "/api/v1/webhooks",
            headers=stack.headers,
            json={"url": receiver.url + "/hook", "events": ["workflow.completed"]},
        )
        assert made.status_code == 201, made.text
        hook = made.json()["data"]
        assert hook["secret"].startswith("whsec_")  # none given: one is generated, shown once
        assert hook["signing_secret"] == hook["secret"]

        listed = (await stack.http.get("/api/v1/webhooks", headers=stack.headers)).json()["data"]
        assert [w["id"] for w in listed["webhooks"]] == [hook["id"]] and listed["total"] == 1
        read = await stack.http.get(f"/api/v1/webhooks/{hook['id']}", headers=stack.headers)
        assert "secret" not in read.json()["data"] and "signing_secret" not in read.json()["data"]

        changed = await stack.http.put(
            f"/api/v1/webhooks/{hook['id']}",
            headers=stack.headers,
            json={"events": ["workflow.completed", "workflow.failed"], "status": "disabled"},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["data"]["events"] == ["workflow.completed", "workflow.failed"]
        assert changed.json()["data"]["status"] == "disabled"

        other = await make_tenant(stack.settings, "other")
        for method in ("GET", "PUT", "DELETE"):
            seen = await stack.http.request(
                method,
                f"/api/v1/webhooks/{hook['id']}",
                headers={"X-API-Key": other.key},
                json={"events": ["*"]} if method == "PUT" else None,
            )
            assert seen.status_code == 404, (method, seen.text)
            assert seen.json()["error"]["code"] == "WEBHOOK_NOT_FOUND"
        theirs = await stack.http.get("/api/v1/webhooks", headers={"X-API-Key": other.key})
        assert theirs.json()["data"]["webhooks"] == []

        unknown = await stack.http.post(
            "/api/v1/webhooks",
            headers=stack.headers,
            json={"url": receiver.url + "/hook", "events": ["file.exploded"]},
        )
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "VALIDATION_ERROR"
        no_auth = await stack.http.get("/api/v1/webhooks")
        assert no_auth.status_code == 401

        gone = await stack.http.delete(f"/api/v1/webhooks/{hook['id']}", headers=stack.headers)
        assert gone.status_code == 204
        again = await stack.http.get(f"/api/v1/webhooks/{hook['id']}", headers=stack.headers)
        assert again.status_code == 404


@SQLITE_ONLY
async def test_urls_that_reach_inside_are_refused_without_a_connection(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with (
        webhook_receiver() as allowed,
        webhook_receiver() as inside,
        event_stack(settings, temporal_env, allowed) as stack,
    ):
        refused = [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/hook",
            f"http://[::1]:{inside.port}/hook",
            "http://0x7f.1/hook",
            f"http://127.0.0.1:{inside.port}/hook",  # loopback, but not the allowed port
            "file:///etc/passwd",
            "ftp://example.com/hook",
        ]
        for url in refused:
            response = await stack.http.post(
                "/api/v1/webhooks",
                headers=stack.headers,
                json={"url": url, "events": ["file.uploaded"], "secret": "s3cret-value"},
            )
            assert response.status_code == 422, (url, response.text)
            error = response.json()["error"]
            assert error["code"] == "VALIDATION_ERROR" and error["details"]["field"] == "url"
        assert inside.arrivals == []
        listed = (await stack.http.get("/api/v1/webhooks", headers=stack.headers)).json()
        assert listed["data"]["total"] == 0  # nothing half-registered


@SQLITE_ONLY
async def test_a_thousand_events_arrive_once_each_and_verified(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    # The receiver shares this busy process: an answer later than the timeout
    # would be an attempt timed out and sent again (at-least-once, as webhooks
    # are), which is not what this test is about.
    async with (
        webhook_receiver() as receiver,
        event_stack(settings, temporal_env, receiver, webhook_timeout_seconds=60.0) as stack,
    ):
        hook = await register(stack, receiver, ["ai.response"])
        ids = await emit_events(stack.settings, temporal_env.client, stack.tenant.tenant_id, 1000)
        await receiver.wait_for(lambda r: len(r.delivered_ids()) >= 1000, seconds=240)
        assert verified(receiver)
        delivered = receiver.delivered_ids()
        assert set(delivered) == set(ids)
        twice = {event_id for event_id, count in delivered.items() if count > 1}
        log = [row for row in await deliveries(stack.settings, hook["id"]) if row.event_id in twice]
        assert not twice, [(r.event_id, r.attempt, r.status, r.status_code, r.error) for r in log]
        assert {a.event["data"]["n"] for a in receiver.arrivals} == set(range(1000))


@SQLITE_ONLY
async def test_a_receiver_down_for_a_while_gets_every_event_exactly_once(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    up_at = time.monotonic() + 2.5

    refused = 0

    def flaky(arrival: Arrival) -> tuple[int, dict[str, str]]:
        nonlocal refused
        # Down for 2.5 s, and for the first 5 attempts however late they come.
        if time.monotonic() < up_at or refused < 5:
            refused += 1
            return 503, {"Retry-After": "1"}
        return 200, {}

    async with (
        webhook_receiver(flaky) as receiver,
        event_stack(settings, temporal_env, receiver) as stack,
    ):
        hook = await register(stack, receiver, ["ai.response"])
        ids = await emit_events(stack.settings, temporal_env.client, stack.tenant.tenant_id, 20)
        await receiver.wait_for(lambda r: len(r.delivered_ids()) >= 20, seconds=60)
        await asyncio.sleep(1.0)  # any duplicate would arrive now
        delivered = receiver.delivered_ids()
        assert set(delivered) == set(ids) and set(delivered.values()) == {1}
        assert any(status == 503 for _, status in receiver.answered)
        assert verified(receiver)
        # The same webhook-id on every attempt of one event.
        for event_id in ids:
            attempts = [a for a in receiver.arrivals if a.webhook_id == event_id]
            assert {a.event["id"] for a in attempts} == {event_id}
        log = await deliveries(stack.settings, hook["id"])
        retried = [row for row in log if row.status == "retrying"]
        # Retried because of the 503s; on a loaded machine an attempt may also time
        # out (no status), but never fail otherwise.
        causes = [(row.status_code, row.error) for row in retried]
        assert any(code == 503 for code, _ in causes), causes
        timed_out = ("no answer within", "Timeout")
        assert all(code == 503 or (code is None and any(t in (error or "") for t in timed_out))
                   for code, error in causes), causes  # fmt: skip
        assert all(row.next_retry_at is not None for row in retried)
        assert sum(1 for row in log if row.status == "delivered") == 20
        assert (await webhook_row(stack.settings, hook["id"])).consecutive_failures == 0


@SQLITE_ONLY
async def test_410_gone_disables_the_webhook_and_says_so(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with (
        webhook_receiver(lambda _: (410, {})) as receiver,
        event_stack(settings, temporal_env, receiver) as stack,
    ):
        hook = await register(stack, receiver, ["ai.response"])
        await emit_events(stack.settings, temporal_env.client, stack.tenant.tenant_id, 1)
        await receiver.wait_for(lambda r: len(r.arrivals) >= 1)
        read = await _wait_status(stack, hook["id"], "disabled")
        assert "410" in read["disabled_reason"]
        notices = await events_of(stack.settings, stack.tenant.tenant_id, "system.notification")
        assert [n.data["webhook_id"] for n in notices] == [hook["id"]]

        later = await emit_events(stack.settings, temporal_env.client, stack.tenant.tenant_id, 1)
        await _wait_dispatched(stack.settings, later[0])
        await asyncio.sleep(0.5)
        assert len(receiver.arrivals) == 1  # one attempt in all: 410 is final
        log = await deliveries(stack.settings, hook["id"])
        assert [(row.status, row.status_code) for row in log] == [("gone", 410)]


@SQLITE_ONLY
async def test_a_redirect_is_never_followed_and_failing_events_disable_the_webhook(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    async with (
        webhook_receiver(lambda _: (302, {})) as receiver,
        event_stack(
            settings,
            temporal_env,
            receiver,
            webhook_retry_schedule_seconds=[0, 0.2],
            webhook_disable_after_failures=2,
        ) as stack,
    ):
        hook = await register(stack, receiver, ["ai.response"])
        await emit_events(stack.settings, temporal_env.client, stack.tenant.tenant_id, 2)
        read = await _wait_status(stack, hook["id"], "disabled")
        assert "2 events in a row" in read["disabled_reason"]
        assert len(receiver.arrivals) == 4  # 2 events x 2 attempts
        assert receiver.redirect_target_calls == 0
        log = await deliveries(stack.settings, hook["id"])
        assert {row.error for row in log} == {"redirect not followed"}
        assert sorted(row.status for row in log) == ["failed", "failed", "retrying", "retrying"]
        notices = await events_of(stack.settings, stack.tenant.tenant_id, "system.notification")
        assert len(notices) == 1 and notices[0].data["kind"] == "webhook.disabled"


@SQLITE_ONLY
async def test_a_worker_killed_during_delivery_loses_nothing(
    settings: Settings, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with webhook_receiver() as receiver:
        receiver.hang = asyncio.Event()
        receiver.hang.set()  # the first request never gets an answer
        isolated = settings.model_copy(
            update={
                "task_queue_prefix": f"k{uuid.uuid4().hex[:8]}-",
                "rate_limits_enabled": False,
                "tenant_egress_allowed_hosts": [f"127.0.0.1:{receiver.port}"],
                "webhook_retry_schedule_seconds": FAST_RETRIES,
                "webhook_timeout_seconds": 2.0,
                "event_poll_seconds": 1.0,
            }
        )
        env = {
            "WEFT_TENANT_EGRESS_ALLOWED_HOSTS": f"127.0.0.1:{receiver.port}",
            "WEFT_WEBHOOK_RETRY_SCHEDULE_SECONDS": ",".join(str(s) for s in FAST_RETRIES),
            "WEFT_WEBHOOK_TIMEOUT_SECONDS": "2",
            "WEFT_EVENT_POLL_SECONDS": "1",
        }
        tenant = await make_tenant(isolated, "durable-hooks")
        log_file = tmp_path / "worker.log"
        worker = start_worker(isolated, log_file, env)
        try:
            async with api_client(create_app(isolated)) as http:
                made = await http.post(
                    "/api/v1/webhooks",
                    headers={"X-API-Key": tenant.key},
                    json={
                        "url": receiver.url + "/hook",
                        "events": ["ai.response"],
                        "secret": "your_webhook_secret",
                    },
                )
                assert made.status_code == 201, made.text
                receiver.secret = "your_webhook_secret"
                receiver.signing_secret = made.json()["data"]["signing_secret"]
                ids = await emit_events(isolated, temporal_env.client, tenant.tenant_id, 1)
                await receiver.wait_for(lambda r: len(r.arrivals) >= 1, seconds=90)
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=30)
                receiver.hang.clear()
                worker = start_worker(isolated, log_file, env)
                await receiver.wait_for(lambda r: len(r.delivered_ids()) >= 1, seconds=120)
                await asyncio.sleep(1.0)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
        assert receiver.delivered_ids() == {ids[0]: 1}
        assert all(a.webhook_id == ids[0] for a in receiver.arrivals)
        assert verified(receiver)
        log = await deliveries(isolated, made.json()["data"]["id"])
        assert [(row.attempt, row.status) for row in log] == [(1, "delivered")]


async def _wait_status(stack, webhook_id: str, status: str, seconds: float = 60) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        read = await stack.http.get(f"/api/v1/webhooks/{webhook_id}", headers=stack.headers)
        if read.json()["data"]["status"] == status:
            return dict(read.json()["data"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"webhook {webhook_id} never became {status}")


async def _wait_dispatched(settings: Settings, event_id: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await rows(settings, Event, Event.id == event_id)
        if found and found[0].dispatched_at is not None:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"event {event_id} was never dispatched")
