"""Workflow templates through the real app and a real worker: every shipped template
instantiates and runs to completion on the embedded default (the local extractive
provider, the e-mail outbox, approvals by the API), customizations reach the
stored steps, and usage is counted per tenant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.ai.providers.local import EXTRACTIVE_MODEL
from engine.platform.settings import Settings
from tests.conftest import DocStack, make_tenant, worker_stack
from tests.pipelines.support import SQLITE_ONLY, assert_declared, emails, execute, finish

pytestmark = pytest.mark.asyncio

# What each input variable of a template gets when the test runs it.
INPUTS = {
    "ticket_content": "Our checkout page fails for every customer and we are losing money. "
    "Please treat this as urgent.",
    "document_title": "Kettle inventory",
    "document_text": "The Zorblat company holds 7,300 copper kettles. Stock is counted monthly.",
    "topic": "copper kettles",
    "notes": "Copper conducts heat well. Copper kettles need polishing. They cost more.",
    "customer_name": "Ada",
    "feedback": "Great service, but delivery was slow.",
}


AUTERITY_FIELDS = {"id", "name", "description", "category", "featured", "steps",
                   "preview_image", "usage_count", "rating", "created_at"}  # fmt: skip


def input_for(names: list[str]) -> dict[str, Any]:
    return {n: f"{n.replace('_', '.')}@example.com" if n.endswith("email") else INPUTS[n]
            for n in names}  # fmt: skip


@pytest.fixture
async def stack(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[DocStack]:
    async with worker_stack(settings, temporal_env, "templates") as api:
        yield api


async def listing(
    api: DocStack, headers: dict[str, str] | None = None, **params: Any
) -> list[dict[str, Any]]:
    response = await api.http.get("/api/templates", params=params, headers=headers or api.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["templates"])


async def instantiate(
    api: DocStack, template_id: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await api.http.post(
        f"/api/templates/{template_id}/instantiate", json=body or {}, headers=api.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def run_template(api: DocStack, template: dict[str, Any]) -> dict[str, Any]:
    workflow = await instantiate(api, template["id"], {"name": f"My {template['name']}"})
    assert workflow["name"] == f"My {template['name']}"
    assert [s["id"] for s in workflow["steps"]] == [
        f"step-{n}" for n in range(1, len(template["steps"]) + 1)
    ]
    execution_id = await execute(api, workflow["id"], input_for(template["input_variables"]))
    return await finish(api, execution_id)


async def test_every_template_instantiates_and_runs_to_completion(stack: DocStack) -> None:
    templates = await listing(stack)
    assert len(templates) >= 3
    assert all(t["usage_count"] == 0 for t in templates)

    done = await asyncio.gather(*(run_template(stack, t) for t in templates))

    for template, execution in zip(templates, done, strict=True):
        assert execution["status"] == "completed", (template["id"], execution)
        statuses = {r["status"] for r in execution["results"].values()}
        assert statuses <= {"completed", "skipped"}, (template["id"], execution["results"])
        for step_id, result in execution["results"].items():
            if result["type"] == "ai_prompt":
                assert result["model"] == EXTRACTIVE_MODEL, (template["id"], step_id)
                assert result["output"], (template["id"], step_id)
    by_id = dict(zip([t["id"] for t in templates], done, strict=True))
    triage = by_id["support-ticket-triage"]["results"]
    # One branch of the urgency condition ran; the other was skipped.
    assert {triage["step-3"]["status"], triage["step-4"]["status"]} == {"completed", "skipped"}
    review = by_id["document-summary-review"]["results"]
    assert review["step-2"]["approval"]["approved"] is True
    assert review["step-3"]["output"]
    article = by_id["research-write-validate"]["results"]["step-4"]["output"]
    assert article["topic"] == "copper kettles" and article["article"] and article["review"]
    sent = await emails(stack.settings, stack.tenant.tenant_id)
    subjects = {mail.subject for mail in sent}
    assert "Summary: Kettle inventory" in subjects and "Feedback from Ada" in subjects
    assert all(t["usage_count"] == 1 for t in await listing(stack))


@SQLITE_ONLY
async def test_templates_are_listed_with_auterity_fields_and_filtered(stack: DocStack) -> None:
    templates = await listing(stack)
    ids = {t["id"] for t in templates}
    assert {"support-ticket-triage", "document-summary-review", "research-write-validate"} <= ids
    for template in templates:
        assert set(template) >= AUTERITY_FIELDS
        assert template["created_at"].endswith("Z") and template["preview_image"].startswith("/")
        assert all("id" not in step for step in template["steps"])  # step-N by position
    triage = next(t for t in templates if t["id"] == "support-ticket-triage")
    assert [s["type"] for s in triage["steps"]] == ["ai_prompt", "condition", "email", "transform"]
    assert triage["input_variables"] == ["customer_email", "ticket_content", "escalation_email"]

    featured = await listing(stack, featured="true")
    assert featured and all(t["featured"] for t in featured)
    assert {t["id"] for t in await listing(stack, featured="false")} == ids - {
        t["id"] for t in featured
    }
    service = await listing(stack, category="customer_service")
    assert service and all(t["category"] == "customer_service" for t in service)
    assert await listing(stack, category="no-such-category") == []

    v1 = await stack.http.get("/api/v1/templates", headers=stack.headers)
    auterity = await stack.http.get("/api/templates", headers=stack.headers)
    assert_declared(stack, v1, auterity)
    assert v1.status_code == 200 and v1.json()["success"] is True
    assert [t["id"] for t in v1.json()["data"]["templates"]] == [t["id"] for t in templates]


@SQLITE_ONLY
async def test_customizations_change_the_stored_steps(stack: DocStack) -> None:
    customizations = {
        "step-1": {"config": {"model": "gpt-4", "max_tokens": None}},
        "step-3": {"name": "Page the on-call", "config": {"subject": "URGENT: {{customer_email}}"}},
    }
    created = await stack.http.post(
        "/api/v1/templates/support-ticket-triage/instantiate",
        json={"name": "Triage", "customizations": customizations},
        headers=stack.headers,
    )
    assert created.status_code == 201, created.text
    workflow = created.json()["data"]
    assert_declared(stack, created)

    stored = await stack.http.get(f"/api/workflows/{workflow['id']}", headers=stack.headers)
    assert stored.status_code == 200
    steps = {step["id"]: step for step in stored.json()["steps"]}
    assert steps == {step["id"]: step for step in workflow["steps"]}
    first = steps["step-1"]["config"]
    assert first["model"] == "gpt-4" and "max_tokens" not in first
    assert first["prompt"].startswith("Categorize this support ticket")  # kept
    assert steps["step-3"]["name"] == "Page the on-call"
    assert steps["step-3"]["config"]["subject"] == "URGENT: {{customer_email}}"
    assert steps["step-3"]["config"]["to"] == "{{escalation_email}}"
    assert steps["step-3"]["dependencies"] == ["step-2"]
    assert stored.json()["category"] == "customer_service"

    # Without customizations the template's own config is stored.
    plain = await instantiate(stack, "support-ticket-triage")
    assert plain["name"] == "Customer Support Triage"
    assert "model" not in plain["steps"][0]["config"]
    counted = {t["id"]: t["usage_count"] for t in await listing(stack)}
    assert counted["support-ticket-triage"] == 2 and counted["document-summary-review"] == 0


@SQLITE_ONLY
async def test_bad_customizations_unknown_templates_and_other_tenants(stack: DocStack) -> None:
    path = "/api/templates/support-ticket-triage/instantiate"
    for customizations, reason in (
        ({"step-9": {"config": {"model": "gpt-4"}}}, "UNKNOWN_STEP"),
        ({"step-1": {"id": "renamed"}}, "INVALID_CUSTOMIZATION"),
        ({"step-1": {"config": {"prompt": None}}}, "MISSING_CONFIG"),
    ):
        refused = await stack.http.post(
            path, json={"customizations": customizations}, headers=stack.headers
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"]["reason"] == reason
    for prefix in ("/api", "/api/v1"):
        missing = await stack.http.post(
            f"{prefix}/templates/no-such-template/instantiate", json={}, headers=stack.headers
        )
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    listed = await stack.http.get("/api/workflows", headers=stack.headers)
    assert listed.json()["total"] == 0  # nothing was stored by the refused calls

    mine = await instantiate(stack, "document-summary-review")
    other = await make_tenant(stack.settings, "other")
    theirs = {"X-API-Key": other.key}
    counted = {t["id"]: t["usage_count"] for t in await listing(stack, headers=theirs)}
    assert counted["document-summary-review"] == 0
    seen = await stack.http.get(f"/api/workflows/{mine['id']}", headers=theirs)
    assert seen.status_code == 404
