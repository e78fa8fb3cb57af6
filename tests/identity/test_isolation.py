"""Tenant A, with full rights in its own tenant, can neither see nor touch B's rows."""

from __future__ import annotations

import httpx
import pytest

from engine.platform.settings import Settings
from tests.conftest import TenantFixture, make_tenant

pytestmark = pytest.mark.asyncio


async def tenant_admin_token(client: httpx.AsyncClient, tenant: TenantFixture) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": tenant.email, "password": tenant.password}
    )
    return {"Authorization": f"Bearer {response.json()['data']['access_token']}"}


async def b_ids(client: httpx.AsyncClient, b: dict[str, str]) -> dict[str, str]:
    """One id of every resource type B owns."""
    key = await client.post(
        "/api/v1/api-keys", headers=b, json={"name": "b-key", "scopes": ["profile"]}
    )
    users = (await client.post("/v1.0/users/enumerate", headers=b, json={})).json()["Objects"]
    creds = (await client.post("/v1.0/credentials/enumerate", headers=b, json={})).json()
    endpoints = (await client.post("/v1.0/endpoints/enumerate", headers=b, json={})).json()
    return {
        "api-key": key.json()["data"]["id"],
        "users": users[0]["Id"],
        "credentials": creds["Objects"][0]["Id"],
        "endpoints": endpoints["Objects"][0]["Id"],
    }


async def test_other_tenants_ids_answer_404_and_stay_unchanged(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    a_tenant, b_tenant = await make_tenant(settings, "A"), await make_tenant(settings, "B")
    a, b = await tenant_admin_token(client, a_tenant), await tenant_admin_token(client, b_tenant)
    ids = await b_ids(client, b)
    before = {
        kind: (await client.get(f"/v1.0/{kind}/{ids[kind]}", headers=b)).json()
        for kind in ("users", "credentials", "endpoints")
    }

    deleted = await client.delete(f"/api/v1/api-keys/{ids['api-key']}", headers=a)
    assert deleted.status_code == 404 and deleted.json()["error"]["code"] == "NOT_FOUND"
    for kind in ("users", "credentials", "endpoints"):
        url = f"/v1.0/{kind}/{ids[kind]}"
        read = await client.get(url, headers=a)
        assert read.status_code == 404, kind
        assert ids[kind] in read.json()["Message"] and "Email" not in read.text
        assert (await client.head(url, headers=a)).status_code == 404, kind
        changed = await client.put(
            url, headers=a, json={"Name": "pwned", "Active": False, "Model": "pwned"}
        )
        assert changed.status_code == 404, kind
        assert (await client.delete(url, headers=a)).status_code == 404, kind

    listed = (await client.get("/api/v1/api-keys", headers=a)).json()["data"]["api_keys"]
    assert ids["api-key"] not in {key["id"] for key in listed}
    for kind in ("users", "credentials", "endpoints"):
        after = (await client.get(f"/v1.0/{kind}/{ids[kind]}", headers=b)).json()
        assert after == before[kind], kind
    b_keys = (await client.get("/api/v1/api-keys", headers=b)).json()["data"]["api_keys"]
    assert any(k["id"] == ids["api-key"] and not k["revoked"] for k in b_keys)


async def test_privilege_fields_in_bodies_are_ignored(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    a_tenant = await make_tenant(settings, "A")
    b_tenant = await make_tenant(settings, "B")
    a = await tenant_admin_token(client, a_tenant)
    user = await client.put(
        "/v1.0/users",
        headers=a,
        json={"TenantId": b_tenant.tenant_id, "Email": "x@a.test", "Password": "long enough"},
    )
    assert user.status_code == 200 and user.json()["TenantId"] == a_tenant.tenant_id
    whoami = await client.get("/v1.0/whoami", headers=a)
    assert whoami.json() == {"Role": "User", "TenantName": "A"}  # a tenant admin, not global
