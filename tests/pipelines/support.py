"""Helpers the pipeline API tests share: create, execute, poll and approve
through the real app (a ``DocStack`` from ``tests.conftest.worker_stack``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.app import create_app
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import EmailMessage
from engine.platform.settings import Settings
from tests.api.test_response_schemas import Schemas
from tests.conftest import DocStack

# Most tests run on SQLite only; one per module also runs on PostgreSQL.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FINISHED = ("completed", "failed", "cancelled", "timed_out")

# auterity's "Complete Workflow Creation Example", verbatim.
ONBOARDING: dict[str, Any] = {
    "name": "Customer Onboarding Automation",
    "description": "Automated workflow for new customer onboarding",
    "category": "customer_service",
    "steps": [
        {
            "id": "welcome-email",
            "type": "email",
            "name": "Send Welcome Email",
            "config": {
                "template": "welcome-template",
                "to": "{{customer_email}}",
                "subject": "Welcome to Auterity!",
            },
            "position": {"x": 100, "y": 100},
        },
        {
            "id": "setup-account",
            "type": "api_call",
            "name": "Setup Customer Account",
            "config": {
                "url": "https://api.crm.com/customers",
                "method": "POST",
                "headers": {"Authorization": "Bearer crm-token"},
                "body": {
                    "email": "{{customer_email}}",
                    "name": "{{customer_name}}",
                    "source": "auterity_onboarding",
                },
            },
            "position": {"x": 300, "y": 100},
            "dependencies": ["welcome-email"],
        },
        {
            "id": "ai-personalization",
            "type": "ai_prompt",
            "name": "Generate Personalized Content",
            "config": {
                "prompt": "Create personalized content for {{customer_name}} based on their "
                "industry: {{customer_industry}}",
                "model": "gpt-4",
                "max_tokens": 300,
            },
            "position": {"x": 500, "y": 100},
            "dependencies": ["setup-account"],
        },
    ],
}


async def create_workflow(
    api: DocStack, body: dict[str, Any], headers: dict[str, str] | None = None
) -> str:
    response = await api.http.post("/api/workflows", json=body, headers=headers or api.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def execute(api: DocStack, workflow_id: str, input_data: dict[str, Any]) -> str:
    response = await api.http.post(
        f"/api/workflows/{workflow_id}/execute",
        json={"input_data": input_data},
        headers=api.headers,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["execution_id"])


async def read_execution(api: DocStack, execution_id: str) -> dict[str, Any]:
    response = await api.http.get(f"/api/executions/{execution_id}", headers=api.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def finish(
    api: DocStack, execution_id: str, *, approve: bool = True, seconds: float = 120
) -> dict[str, Any]:
    """Poll until the execution ends, approving each step that waits for a person."""
    for _ in range(int(seconds * 10)):
        body = await read_execution(api, execution_id)
        if body["status"] in FINISHED:
            return body
        waiting = [s for s, r in body["results"].items() if r["status"] == "waiting_approval"]
        for step_id in waiting if approve else ():
            decided = await api.http.post(
                f"/api/v1/executions/{execution_id}/approvals/{step_id}",
                json={"approved": True},
                headers=api.headers,
            )
            assert decided.status_code == 200, decided.text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{execution_id} did not finish: {body}")


async def until_step(api: DocStack, execution_id: str, step_id: str, status: str) -> None:
    for _ in range(600):
        body = await read_execution(api, execution_id)
        if body["results"].get(step_id, {}).get("status") == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{execution_id}: step {step_id} never reached {status}")


async def emails(settings: Settings, tenant_id: str) -> list[EmailMessage]:
    """The tenant's e-mail outbox (kept even with no SMTP server configured)."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.scalars(
                select(EmailMessage).where(EmailMessage.tenant_id == tenant_id)
            )
            return list(rows)
    finally:
        await engine.dispose()


def assert_declared(api: DocStack, *responses: httpx.Response) -> None:
    """Each answer is exactly what /openapi.json declares for its route (closed objects)."""
    schemas = Schemas(create_app(api.settings))
    for response in responses:
        method, path = response.request.method, response.request.url.path
        template = schemas.operation(method, path)
        errors = schemas.errors(method, template, response.status_code, response.json())
        assert not errors, f"{method} {template} drifted from its schema:\n" + "\n".join(errors)
