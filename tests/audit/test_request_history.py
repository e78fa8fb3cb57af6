"""Partio's request history: what is recorded, what never is, and who may read it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.audit import retention
from engine.audit.request_history import HistoryEntry, RequestHistory, detail_path, redact
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import RequestRecord
from engine.platform.ids import new_id
from engine.platform.queues import TaskQueue, queue_name
from engine.platform.settings import Settings
from tests.conftest import api_client, make_tenant
from workers.main import WorkerResources, build_workers
from workflows.history_purge import HistoryPurgeInput, HistoryPurgeResult, HistoryPurgeWorkflow

pytestmark = pytest.mark.asyncio


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_for_entry(
    http: httpx.AsyncClient, headers: dict[str, str], request_id: str, path: str
) -> dict:
    """The entry once the background writer has stored it (a few seconds at most)."""
    deadline = time.monotonic() + 5
    while True:
        page = await http.post(
            "/v1.0/requests/enumerate",
            headers=headers,
            json={"NameFilter": path, "MaxResults": 1000},
        )
        assert page.status_code == 200, page.text
        found = [row for row in page.json()["Objects"] if row["RequestId"] == request_id]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"{request_id} was never recorded"
        await asyncio.sleep(0.05)


async def login(http: httpx.AsyncClient, email: str, password: str) -> str:
    answer = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["access_token"])


def stored_file(settings: Settings, entry: dict) -> str:
    created = datetime.fromisoformat(entry["CreatedUtc"].replace("Z", "+00:00"))
    return detail_path(settings, entry["Id"], created).read_text()


async def test_login_is_recorded_without_any_credential(settings: Settings, admin_key: str) -> None:
    tenant = await make_tenant(settings, "Acme")
    admin = {"X-API-Key": admin_key}
    async with api_client(create_app(settings)) as http:
        answer = await http.post(
            "/api/v1/auth/login",
            json={"email": tenant.email, "password": tenant.password},
            headers={"X-Request-ID": "hist-login", "User-Agent": "history-test/1"},
        )
        assert answer.status_code == 200
        tokens = answer.json()["data"]
        entry = await wait_for_entry(http, admin, "hist-login", "/api/v1/auth/login")
        assert entry["Id"].startswith("rq_")
        assert (entry["Method"], entry["Path"], entry["StatusCode"]) == (
            "POST",
            "/api/v1/auth/login",
            200,
        )
        assert entry["UserAgent"] == "history-test/1" and entry["TenantId"] is None
        assert entry["RequestBodyLength"] == len(answer.request.content)
        assert entry["ResponseBodyLength"] == len(answer.content)
        assert entry["HasDetail"] and entry["DurationMs"] >= 0
        assert (await http.get(f"/v1.0/requests/{entry['Id']}", headers=admin)).json() == entry

        detail = (await http.get(f"/v1.0/requests/{entry['Id']}/detail", headers=admin)).json()
        assert json.loads(detail["RequestBody"]) == {
            "email": tenant.email,
            "password": "[REDACTED]",
        }
        answered = json.loads(detail["ResponseBody"])["data"]
        assert answered["access_token"] == answered["refresh_token"] == "[REDACTED]"
        on_disk = stored_file(settings, entry)
        for secret in (tenant.password, tokens["access_token"], tokens["refresh_token"]):
            assert secret not in on_disk and secret not in json.dumps(detail)

        # A global admin's own call: who made it, and the new credential hidden.
        created = await http.put(
            "/v1.0/tenants", json={"Name": "Globex"}, headers={**admin, "X-Request-ID": "hist-put"}
        )
        assert created.status_code == 201
        token = created.json()["DefaultCredential"]["BearerToken"]
        entry = await wait_for_entry(http, admin, "hist-put", "/v1.0/tenants")
        assert (entry["Method"], entry["StatusCode"]) == ("PUT", 201) and entry["UserId"]
        assert token not in stored_file(settings, entry)
        assert admin_key not in stored_file(settings, entry)  # headers are never recorded

        await http.get("/v1.0/whoami?token=abc123&page=2", headers={**admin, "X-Request-ID": "q"})
        entry = await wait_for_entry(http, admin, "q", "/v1.0/whoami")
        assert entry["Query"] == "token=[REDACTED]&page=2"


async def test_tenant_admin_sees_only_its_own_tenant(settings: Settings, admin_key: str) -> None:
    a, b = await make_tenant(settings, "A"), await make_tenant(settings, "B")
    admin = {"X-API-Key": admin_key}
    async with api_client(create_app(settings)) as http:
        as_a = bearer(await login(http, a.email, a.password))
        as_b = bearer(await login(http, b.email, b.password))
        await http.get("/v1.0/whoami", headers={**as_a, "X-Request-ID": "hist-a"})
        await http.get("/v1.0/whoami", headers={**as_b, "X-Request-ID": "hist-b"})
        mine = await wait_for_entry(http, admin, "hist-a", "/v1.0/whoami")
        theirs = await wait_for_entry(http, admin, "hist-b", "/v1.0/whoami")
        assert mine["TenantId"] == a.tenant_id and theirs["TenantId"] == b.tenant_id

        assert (await http.get(f"/v1.0/requests/{mine['Id']}", headers=as_a)).json() == mine
        for answer in (
            await http.get(f"/v1.0/requests/{theirs['Id']}", headers=as_a),
            await http.get(f"/v1.0/requests/{theirs['Id']}/detail", headers=as_a),
            await http.delete(f"/v1.0/requests/{theirs['Id']}", headers=as_a),
        ):
            assert answer.status_code == 404 and answer.json()["Error"] == "NotFound"
        assert (await http.get(f"/v1.0/requests/{theirs['Id']}", headers=admin)).status_code == 200

        listed = await http.post("/v1.0/requests/enumerate", headers=as_a, json={})
        rows = listed.json()["Objects"]
        assert mine["Id"] in {row["Id"] for row in rows}
        assert {row["TenantId"] for row in rows} == {a.tenant_id}  # not B's, not anonymous
        # The default credential has every scope but admin.
        refused = await http.post("/v1.0/requests/enumerate", headers=bearer(a.key), json={})
        assert refused.status_code == 403


async def test_delete_removes_row_and_file(settings: Settings, admin_key: str) -> None:
    admin = {"X-API-Key": admin_key}
    async with api_client(create_app(settings)) as http:
        for request_id in ("hist-del", "hist-gone"):
            await http.get("/v1.0/whoami", headers={**admin, "X-Request-ID": request_id})
        entry = await wait_for_entry(http, admin, "hist-del", "/v1.0/whoami")
        created = datetime.fromisoformat(entry["CreatedUtc"].replace("Z", "+00:00"))
        path = detail_path(settings, entry["Id"], created)
        assert path.exists()
        assert (
            await http.delete(f"/v1.0/requests/{entry['Id']}", headers=admin)
        ).status_code == 204
        assert not path.exists()
        assert (await http.get(f"/v1.0/requests/{entry['Id']}", headers=admin)).status_code == 404

        # The row survives a lost detail file; the detail is then not found.
        entry = await wait_for_entry(http, admin, "hist-gone", "/v1.0/whoami")
        created = datetime.fromisoformat(entry["CreatedUtc"].replace("Z", "+00:00"))
        detail_path(settings, entry["Id"], created).unlink()
        assert (await http.get(f"/v1.0/requests/{entry['Id']}", headers=admin)).status_code == 200
        lost = await http.get(f"/v1.0/requests/{entry['Id']}/detail", headers=admin)
        assert lost.status_code == 404


async def test_bodies_over_the_cap_are_stored_truncated(settings: Settings, admin_key: str) -> None:
    admin = {"X-API-Key": admin_key}
    capped = settings.model_copy(update={"request_history_body_cap_bytes": 64})
    text = "".join(str(i % 10) for i in range(500))
    password = "Zq9-unguessable-" * 6
    async with api_client(create_app(capped)) as http:
        await http.post(
            "/v1.0/tenants/enumerate",
            content=text,
            headers={**admin, "Content-Type": "text/plain", "X-Request-ID": "hist-big"},
        )
        await http.post(
            "/api/v1/auth/login",
            json={"password": password, "email": "nobody@example.test"},
            headers={"X-Request-ID": "hist-cut"},
        )
        entry = await wait_for_entry(http, admin, "hist-big", "/v1.0/tenants/enumerate")
        assert entry["RequestBodyLength"] == 500 and entry["StatusCode"] == 400
        detail = (await http.get(f"/v1.0/requests/{entry['Id']}/detail", headers=admin)).json()
        assert detail["RequestBody"] == text[:64]
        assert len(detail["ResponseBody"].encode()) <= 64

        # A JSON body cut inside the password is no JSON any more: still redacted.
        entry = await wait_for_entry(http, admin, "hist-cut", "/api/v1/auth/login")
        on_disk = stored_file(capped, entry)
        assert "[REDACTED]" in on_disk and password[:10] not in on_disk


async def add_aged_rows(settings: Settings, ages: list[int]) -> dict[int, RequestRecord]:
    """Rows (with detail files) created ``age`` days ago, one per age."""
    now = datetime.now(UTC)
    rows = {
        age: RequestRecord(
            id=new_id("rq"),
            request_id=f"age-{age}",
            method="GET",
            path="/aged",
            status_code=200,
            duration_ms=1.0,
            has_detail=True,
            created_at=now - timedelta(days=age, minutes=1),
        )
        for age in ages
    }
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            session.add_all(rows.values())
            await session.commit()
    finally:
        await engine.dispose()
    for row in rows.values():
        path = detail_path(settings, row.id, row.created_at)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"RequestBody": null, "ResponseBody": null}')
    return rows


async def stored_ids(settings: Settings) -> set[str]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            return set((await session.scalars(select(RequestRecord.id))).all())
    finally:
        await engine.dispose()


async def test_the_retention_schedule_purges_old_rows_and_files_in_batches(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    """A Temporal Schedule runs the purge (one per deployment), not a loop in each API."""
    client = temporal_env.client
    prefix = f"t-{uuid.uuid4().hex[:12]}-"
    tuned = settings.model_copy(update={"task_queue_prefix": prefix})
    days = tuned.request_history_retention_days
    resources = WorkerResources.open(tuned)
    try:
        async with AsyncExitStack() as stack:
            for worker in build_workers(
                client, [TaskQueue.WORKFLOWS, TaskQueue.IO], resources, prefix=prefix
            ):
                await stack.enter_async_context(worker)
            # Run directly, in batches of two: five old rows take three batches.
            old = await add_aged_rows(tuned, [days + n for n in range(1, 6)])
            result = await client.execute_workflow(
                HistoryPurgeWorkflow.run,
                HistoryPurgeInput(batch_size=2),
                id=f"{prefix}purge-direct",
                task_queue=queue_name(TaskQueue.WORKFLOWS, prefix),
                result_type=HistoryPurgeResult,
            )
            assert (result.deleted, result.batches) == (5, 3)
            assert not set(r.id for r in old.values()) & await stored_ids(tuned)

            # The schedule: created at worker start (again: idempotent), hourly, no overlap.
            rows = await add_aged_rows(tuned, [days + 3, days - 1, 0])
            await retention.ensure_purge_schedule(client, tuned)
            handle = await retention.ensure_purge_schedule(client, tuned)
            try:
                described = await handle.describe()
                assert described.id == f"{prefix}weft-history-purge"
                assert described.schedule.spec.intervals[0].every == timedelta(hours=1)
                assert described.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
                await handle.trigger()
                for _ in range(300):  # the triggered action is listed within a moment
                    described = await handle.describe()
                    if described.info.recent_actions:
                        break
                    await asyncio.sleep(0.2)
                action = described.info.recent_actions[0].action
                assert isinstance(action, ScheduleActionExecutionStartWorkflow)
                assert action.workflow_id.startswith(f"{prefix}history-purge")
                run = client.get_workflow_handle(action.workflow_id, result_type=HistoryPurgeResult)
                purged = await run.result()
            finally:
                await handle.delete()
    finally:
        await resources.close()
    assert (purged.deleted, purged.batches) == (1, 1)
    kept = await stored_ids(tuned)
    assert rows[days + 3].id not in kept
    assert not detail_path(tuned, rows[days + 3].id, rows[days + 3].created_at).parent.exists()
    assert {rows[days - 1].id, rows[0].id} <= kept
    for age in (days - 1, 0):
        assert detail_path(tuned, rows[age].id, rows[age].created_at).exists()


async def test_the_api_runs_no_purge_loop_of_its_own(settings: Settings) -> None:
    async with api_client(create_app(settings)):
        names = {task.get_name() for task in asyncio.all_tasks()}
    assert "request-history-writer" in names
    assert not [name for name in names if "purge" in name]


async def test_probes_docs_and_head_are_not_recorded(settings: Settings, admin_key: str) -> None:
    admin = {"X-API-Key": admin_key}
    async with api_client(create_app(settings)) as http:
        for path in ("/health", "/api/v1/health", "/v1.0/health", "/", "/docs", "/openapi.json"):
            await http.get(path)
        await http.get("/api/ready")
        await http.head("/v1.0/whoami", headers=admin)
        await http.get("/v1.0/whoami", headers={**admin, "X-Request-ID": "hist-marker"})
        await wait_for_entry(http, admin, "hist-marker", "/v1.0/whoami")
        listed = await http.post("/v1.0/requests/enumerate", headers=admin, json={})
        rows = listed.json()["Objects"]
        assert {row["Path"] for row in rows} <= {"/v1.0/whoami", "/v1.0/requests/enumerate"}
        assert "HEAD" not in {row["Method"] for row in rows}


async def test_nothing_is_recorded_when_disabled(settings: Settings, admin_key: str) -> None:
    app = create_app(settings.model_copy(update={"request_history_enabled": False}))
    async with api_client(app) as http:
        assert app.state.resources.history is None
        await http.get("/v1.0/whoami", headers={"X-API-Key": admin_key})
        listed = await http.post(
            "/v1.0/requests/enumerate", headers={"X-API-Key": admin_key}, json={}
        )
        assert listed.status_code == 200 and listed.json()["TotalRecords"] == 0


async def test_full_queue_drops_and_stop_drains(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        history = RequestHistory(settings, create_sessionmaker(engine), queue_size=2)
        entries = [
            HistoryEntry(f"q{i}", "GET", "/queued", "api_key=zzz&page=2", 200, 1.0)
            for i in range(3)
        ]
        assert [history.record(entry) for entry in entries] == [True, True, False]
        assert history.dropped == 1
        history.start()
        await history.stop()
        assert history.record(entries[2]) is False  # stopped: nothing more is taken
        async with create_sessionmaker(engine)() as session:
            stored = (
                await session.scalars(select(RequestRecord).where(RequestRecord.path == "/queued"))
            ).all()
        assert sorted(row.request_id for row in stored) == ["q0", "q1"]
        assert {row.query for row in stored} == {"api_key=[REDACTED]&page=2"}
    finally:
        await engine.dispose()


async def test_redact() -> None:
    body = {
        "user": {"Password": "p1", "profile": {"name": "Ada"}},
        "items": [{"api_key": "k1"}, {"AccessToken": "t1", "refresh_token": "r1"}],
        "credentials": {"a": "b"},
        "Key": 5,
        "token_type": "bearer",
        "new_password": "p2",
    }
    assert json.loads(redact(json.dumps(body).encode(), "application/json")) == {
        "user": {"Password": "[REDACTED]", "profile": {"name": "Ada"}},
        "items": [
            {"api_key": "[REDACTED]"},
            {"AccessToken": "[REDACTED]", "refresh_token": "[REDACTED]"},
        ],
        "credentials": "[REDACTED]",
        "Key": "[REDACTED]",
        "token_type": "bearer",
        "new_password": "[REDACTED]",
    }
    assert redact(bytes(range(256)), "application/octet-stream") == "[binary body: 256 bytes]"
    assert redact(b"\x89PNG\xff\xfe", "text/plain") == "[binary body: 6 bytes]"
    assert redact(b"--x\r\npassword\r\n", "multipart/form-data; boundary=x").startswith(
        "[multipart body"
    )
    form = b"username=ada&password=hunter2"
    assert redact(form, "application/x-www-form-urlencoded") == "username=ada&password=[REDACTED]"
    assert redact(b"a" * 100, "text/plain", cap=10) == "a" * 10
    cut = b'{"name": "x", "secret": "abcdefgh'
    assert redact(cut, "application/json") == '{"name": "x", "secret": "[REDACTED]"'
    assert redact(b"", "application/json") == ""


async def test_redact_is_linear_in_the_body_length() -> None:
    """Text that defeats both patterns (a run without ``=``, escaped quotes with no
    closing one) is scrubbed in one pass: quadratic searches took most of a minute
    for a 64 KiB body, holding the GIL (the API stood still). No absolute bound: 64
    times the text costs 64 times the time when linear and 4096 times when
    quadratic; the line is drawn at 1024, far from both, so load does not decide it."""
    for unit in (b"a", b'"\\', b'"a": "\\'):

        def seconds(size: int, unit: bytes = unit) -> float:
            body = unit * (size // len(unit))
            began = time.perf_counter()
            for _ in range(3):
                redact(body, "text/plain", cap=size)
            return time.perf_counter() - began

        small, large = seconds(1024), seconds(65536)
        assert large < 1024 * max(small, 1e-4), (unit, small, large)
