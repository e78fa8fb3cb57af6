"""Pipeline schedules end to end: Temporal Schedules on the dev server, a real worker,
and the API; every tick is an ordinary execution in the index."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.pipelines.cron import check_cron
from engine.platform.errors import InvalidInput
from engine.platform.settings import Settings
from tests.api.test_response_schemas import Schemas
from tests.conftest import DocStack, make_tenant, worker_stack

T = TypeVar("T")

GREETER = {
    "name": "Greeter",
    "steps": [
        {"id": "greet", "type": "transform", "config": {"output": "Hello {{name}}"}},
        {"id": "shout", "type": "transform", "dependencies": ["greet"],
         "config": {"output": "{{steps.greet.output | upper}}"}},
    ],
}  # fmt: skip


@pytest.fixture
async def stack(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[DocStack]:
    async with worker_stack(settings, temporal_env, "schedules") as api:
        yield api


async def eventually(probe: Callable[[], Awaitable[T | None]], seconds: float = 30) -> T:
    """Poll ``probe`` until it answers something (listing is eventually consistent)."""
    for _ in range(int(seconds * 10)):
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing after {seconds} s")


async def create_workflow(api: DocStack) -> str:
    response = await api.http.post("/api/workflows", json=GREETER, headers=api.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def executions_of(api: DocStack, workflow_id: str) -> list[dict[str, Any]]:
    response = await api.http.get(
        "/api/v1/executions",
        params={"workflow_id": workflow_id, "limit": 100},
        headers=api.headers,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["executions"])


async def schedule(api: DocStack, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await api.http.post("/api/v1/schedules", json=body, headers=headers or api.headers)


async def test_an_interval_schedule_starts_executions_until_paused_or_deleted(
    stack: DocStack,
) -> None:
    workflow_id = await create_workflow(stack)
    created = await schedule(
        stack,
        {"workflow_id": workflow_id, "interval_seconds": 2, "input_data": {"name": "Ada"},
         "note": "every two seconds"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    sched = created.json()["data"]
    schedule_id = sched["id"]
    assert sched["interval_seconds"] == 2 and sched["cron"] is None
    assert sched["paused"] is False and sched["note"] == "every two seconds"
    assert sched["temporal_schedule_id"] == f"sched-{schedule_id}"
    assert sched["next_run_at"] is not None and len(sched["next_run_times"]) >= 2

    async def completed_runs(at_least: int) -> list[dict[str, Any]] | None:
        done = [e for e in await executions_of(stack, workflow_id) if e["status"] == "completed"]
        return done if len(done) >= at_least else None

    done = await eventually(lambda: completed_runs(2))
    assert {e["output_data"]["shout"] for e in done} == {"HELLO ADA"}
    assert all(e["input_data"] == {"name": "Ada"} for e in done)

    read = await stack.http.get(f"/api/v1/schedules/{schedule_id}", headers=stack.headers)
    assert read.status_code == 200, read.text
    runs = read.json()["data"]["recent_runs"]
    assert read.json()["data"]["total_runs"] >= 2
    # Every tick is one execution, linked from the schedule's recent runs.
    linked = {run["execution_id"] for run in runs if run["execution_id"]}
    assert {e["id"] for e in done} <= linked
    assert linked <= {e["id"] for e in await executions_of(stack, workflow_id)}

    async def listed() -> list[dict[str, Any]] | None:
        response = await stack.http.get("/api/v1/schedules", headers=stack.headers)
        assert response.status_code == 200, response.text
        return [s for s in response.json()["data"]["schedules"] if s["id"] == schedule_id]

    (item,) = await eventually(listed)
    assert item["workflow_id"] == workflow_id and item["next_run_at"] is not None

    paused = await stack.http.post(
        f"/api/v1/schedules/{schedule_id}/pause", json={"note": "maintenance"},
        headers=stack.headers,
    )  # fmt: skip
    assert paused.status_code == 200, paused.text
    assert paused.json()["data"]["paused"] is True
    assert paused.json()["data"]["note"] == "maintenance"
    assert paused.json()["data"]["next_run_at"] is None
    await asyncio.sleep(1.5)  # a tick that was starting as the pause arrived
    before = len(await executions_of(stack, workflow_id))
    await asyncio.sleep(5)
    assert len(await executions_of(stack, workflow_id)) == before

    resumed = await stack.http.post(
        f"/api/v1/schedules/{schedule_id}/resume", headers=stack.headers
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["data"]["paused"] is False
    await eventually(lambda: completed_runs(before + 1))

    deleted = await stack.http.delete(f"/api/v1/schedules/{schedule_id}", headers=stack.headers)
    assert deleted.status_code == 204
    gone = await stack.http.get(f"/api/v1/schedules/{schedule_id}", headers=stack.headers)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "NOT_FOUND"
    await asyncio.sleep(1.5)
    after = len(await executions_of(stack, workflow_id))
    await asyncio.sleep(4)
    assert len(await executions_of(stack, workflow_id)) == after


async def test_a_schedule_whose_workflow_was_deleted_pauses_itself(stack: DocStack) -> None:
    workflow_id = await create_workflow(stack)
    created = await schedule(
        stack,
        {"workflow_id": workflow_id, "interval_seconds": 1, "input_data": {"name": "C"},
         "paused": True},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    path = f"/api/v1/schedules/{created.json()['data']['id']}"
    deleted = await stack.http.delete(f"/api/workflows/{workflow_id}", headers=stack.headers)
    assert deleted.status_code == 204
    resumed = await stack.http.post(f"{path}/resume", headers=stack.headers)
    assert resumed.status_code == 200 and resumed.json()["data"]["paused"] is False

    async def paused() -> dict[str, Any] | None:
        body = (await stack.http.get(path, headers=stack.headers)).json()["data"]
        return body if body["paused"] else None

    state = await eventually(paused)
    # The failed tick started nothing; Temporal says why it paused the schedule.
    assert state["note"] and state["recent_runs"][0]["execution_id"] is None
    assert await executions_of(stack, workflow_id) == []
    assert (await stack.http.delete(path, headers=stack.headers)).status_code == 204


async def test_another_tenant_can_neither_see_nor_change_a_schedule(stack: DocStack) -> None:
    workflow_id = await create_workflow(stack)
    created = await schedule(
        stack, {"workflow_id": workflow_id, "cron": "0 9 * * mon-fri", "input_data": {"name": "B"}}
    )
    assert created.status_code == 201, created.text
    schedule_id = created.json()["data"]["id"]
    assert created.json()["data"]["cron"] == "0 9 * * mon-fri"
    other = await make_tenant(stack.settings, "intruder")
    theirs = {"X-API-Key": other.key}

    path = f"/api/v1/schedules/{schedule_id}"
    for method, url in (
        ("GET", path), ("POST", f"{path}/pause"), ("POST", f"{path}/resume"), ("DELETE", path),
    ):  # fmt: skip
        response = await stack.http.request(method, url, headers=theirs)
        assert response.status_code == 404, (method, url, response.text)
    listing = await stack.http.get("/api/v1/schedules", headers=theirs)
    assert listing.status_code == 200
    assert listing.json()["data"]["schedules"] == [] and listing.json()["data"]["total"] == 0
    # Nor can they schedule the first tenant's workflow.
    stolen = await schedule(
        stack, {"workflow_id": workflow_id, "interval_seconds": 60}, **{"X-API-Key": other.key}
    )
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "WORKFLOW_NOT_FOUND"

    # The owner still sees it, unpaused; every answer fits its declared schema.
    mine = await stack.http.get(path, headers=stack.headers)
    assert mine.status_code == 200 and mine.json()["data"]["paused"] is False
    paused = await stack.http.post(f"{path}/pause", headers=stack.headers)
    listing = await eventually(lambda: listed_for(stack, stack.headers))
    schemas = Schemas(create_app(stack.settings))
    for method, template, status, body in (
        ("POST", "/api/v1/schedules", 201, created.json()),
        ("GET", "/api/v1/schedules/{schedule_id}", 200, mine.json()),
        ("POST", "/api/v1/schedules/{schedule_id}/pause", 200, paused.json()),
        ("GET", "/api/v1/schedules", 200, listing),
    ):
        assert schemas.errors(method, template, status, body) == [], (method, template)
    assert (await stack.http.delete(path, headers=stack.headers)).status_code == 204


async def listed_for(stack: DocStack, headers: dict[str, str]) -> dict[str, Any] | None:
    body = (await stack.http.get("/api/v1/schedules", headers=headers)).json()
    return dict(body) if body["data"]["schedules"] else None


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "cron", "minute 61 is not in 0-59"),
        ({"cron": "every day"}, "cron", "has 2"),
        ({"cron": "0 9 * * fun"}, "cron", "unknown value 'fun'"),
        ({"cron": "@fortnightly"}, "cron", "unknown shorthand"),
        ({"cron": "0 0 1 1 * 2001"}, "cron", "would never run"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "cron", "unknown time zone"),
        ({"cron": "0 9 * * *", "interval_seconds": 60}, "cron", "exactly one"),
        ({}, "cron", "exactly one"),
        ({"interval_seconds": 0}, "interval_seconds", "greater than or equal to 1"),
        ({"interval_seconds": 60, "priority": "asap"}, "priority", "priority must be one of"),
        ({"interval_seconds": 60, "input_data": {}}, None, "neither input_data"),
    ],
)
async def test_invalid_schedules_are_refused_with_a_clear_422(
    stack: DocStack, body: dict[str, Any], field: str | None, words: str
) -> None:
    workflow_id = await create_workflow(stack)
    full = {"workflow_id": workflow_id, "input_data": {"name": "x"}, **body}
    response = await schedule(stack, full)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert words in error["message"] + str(error["details"]), error
    if field is not None:
        assert error["details"]["field"] == field, error
    listing = await stack.http.get("/api/v1/schedules", headers=stack.headers)
    assert listing.json()["data"]["total"] == 0  # nothing half-created


async def test_an_unknown_workflow_or_schedule_is_not_found(stack: DocStack) -> None:
    missing = await schedule(stack, {"workflow_id": "wf_nope", "interval_seconds": 60})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "WORKFLOW_NOT_FOUND"
    for schedule_id in ("sch_" + "0" * 24, "../etc", "sched-x"):
        read = await stack.http.get(f"/api/v1/schedules/{schedule_id}", headers=stack.headers)
        assert read.status_code == 404, schedule_id


@pytest.mark.parametrize(
    "cron",
    ["0 9 * * mon-fri", "*/15 * * * *", "0 0 1 JAN *", "5/10 * * * *", "1-5/2 * * * *",
     "30 0 0 * * * *", "0 0 1 1 * 2099", "@daily", "@every 90m/5m", "@every 1h30m",
     "CRON_TZ=Europe/Berlin 0 9 * * *", "0 9 * * * # weekday mornings", "0 0 * * Sunday"],
)  # fmt: skip
def test_well_formed_cron_strings_pass_the_check(cron: str) -> None:
    assert check_cron(cron) == cron.strip()


@pytest.mark.parametrize(
    ("cron", "issue"),
    [
        ("", "this one has 0"),
        ("* * *", "this one has 3"),
        ("0 24 * * *", "hour 24 is not in 0-23"),
        ("0 0 0 * *", "day of month 0 is not in 1-31"),
        ("0 0 * 13 *", "month 13 is not in 1-12"),
        ("0 0 * * 8", "day of week 8 is not in 0-7"),
        ("0 0 1 1 * 1999", "year 1999 is not in 2000-2100"),
        ("5-1 * * * *", "ends before it starts"),
        ("*/0 * * * *", "step of 1 or more"),
        ("0 0 ,1 * *", "malformed part ''"),
        ("0 0 ? * *", "malformed part '?'"),
        ("@every 2", "unknown shorthand"),
    ],
)
def test_malformed_cron_strings_say_what_is_wrong(cron: str, issue: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_cron(cron)
    assert issue in caught.value.message
    assert caught.value.details["field"] == "cron"
