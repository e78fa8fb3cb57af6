"""Partio's admin surface as a partio client uses it."""

from __future__ import annotations

import random

import httpx
import pytest
from sqlalchemy import select

from api.app import create_app
from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import EmbeddingEndpoint
from engine.identity import accounts
from engine.platform.settings import Settings
from tests.conftest import api_client, make_tenant

pytestmark = pytest.mark.asyncio
ADMIN_KEY = "partioadmin-" + "k" * 24


@pytest.fixture
async def partio(settings: Settings) -> httpx.AsyncClient:
    app = create_app(settings.model_copy(update={"admin_api_keys": [ADMIN_KEY]}))
    async with api_client(app) as http:
        http.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield http


async def test_health_and_whoami(partio: httpx.AsyncClient, settings: Settings) -> None:
    assert (await partio.get("/v1.0/health")).json()["Version"]
    assert (await partio.get("/v1.0/whoami")).json() == {"Role": "Admin", "TenantName": "Admin"}
    tenant = await make_tenant(settings, "Acme")
    as_user = await partio.get("/v1.0/whoami", headers={"Authorization": f"Bearer {tenant.key}"})
    assert as_user.json() == {"Role": "User", "TenantName": "Acme"}
    anonymous = await partio.get("/v1.0/whoami", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["StatusCode"] == 401


async def test_tenant_lifecycle_creates_defaults(partio: httpx.AsyncClient) -> None:
    created = await partio.put(
        "/v1.0/tenants",
        json={"Name": "My Tenant", "Labels": ["production"], "Tags": {"env": "prod"}},
    )
    assert created.status_code == 201, created.text
    tenant = created.json()
    assert tenant["Id"].startswith("ten_") and tenant["Labels"] == ["production"]
    token = tenant["DefaultCredential"]["BearerToken"]
    assert token.startswith("znt_")
    assert tenant["DefaultEndpoint"]["ApiFormat"] == "Local"
    # The default credential works, for that tenant only.
    whoami = await partio.get("/v1.0/whoami", headers={"Authorization": f"Bearer {token}"})
    assert whoami.json()["TenantName"] == "My Tenant"

    tid = tenant["Id"]
    assert (await partio.head(f"/v1.0/tenants/{tid}")).status_code == 200
    updated = await partio.put(f"/v1.0/tenants/{tid}", json={"Name": "Renamed", "Active": False})
    assert updated.json()["Name"] == "Renamed" and updated.json()["Active"] is False
    assert updated.json()["Tags"] == {"env": "prod"}  # partial update keeps the rest
    assert (await partio.get(f"/v1.0/tenants/{tid}")).json()["Name"] == "Renamed"
    assert (await partio.delete(f"/v1.0/tenants/{tid}")).status_code == 204
    assert (await partio.head(f"/v1.0/tenants/{tid}")).status_code == 404
    missing = await partio.get(f"/v1.0/tenants/{tid}")
    assert missing.status_code == 404 and missing.json()["Error"] == "NotFound"
    # Deleting the tenant deleted its credential too.
    gone = await partio.get("/v1.0/whoami", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401


async def test_bad_bodies_get_partio_400s(partio: httpx.AsyncClient) -> None:
    for body in ({}, {"Name": ""}, {"Name": 5}):
        response = await partio.put("/v1.0/tenants", json=body)
        assert response.status_code == 400, body
        assert set(response.json()) >= {"Error", "Message", "StatusCode", "TimestampUtc"}
    broken = await partio.put(
        "/v1.0/tenants", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    no_tenant = await partio.put("/v1.0/users", json={"Email": "a@b.test", "Password": "12345678"})
    assert no_tenant.status_code == 400 and "TenantId" in no_tenant.json()["Message"]


async def test_users_credentials_endpoints(partio: httpx.AsyncClient, settings: Settings) -> None:
    tenant = await make_tenant(settings, "Acme")
    user = await partio.put(
        "/v1.0/users",
        json={
            "TenantId": tenant.tenant_id,
            "Email": "john@acme.test",
            "Password": "plaintext-password",
            "FirstName": "John",
            "LastName": "Doe",
            "IsAdmin": False,
        },
    )
    assert user.status_code == 200, user.text
    assert user.json()["Password"] is None and user.json()["FirstName"] == "John"
    uid = user.json()["Id"]

    credential = await partio.put(
        "/v1.0/credentials",
        json={"TenantId": tenant.tenant_id, "UserId": uid, "Name": "My API Key"},
    )
    assert credential.status_code == 201
    cred = credential.json()
    assert cred["BearerToken"].startswith("znt_")
    read_back = (await partio.get(f"/v1.0/credentials/{cred['Id']}")).json()
    assert read_back["BearerToken"] is None  # shown once
    off = await partio.put(f"/v1.0/credentials/{cred['Id']}", json={"Active": False})
    assert off.json()["Active"] is False
    refused = await partio.get(
        "/v1.0/whoami", headers={"Authorization": f"Bearer {cred['BearerToken']}"}
    )
    assert refused.status_code == 401

    endpoint = await partio.put(
        "/v1.0/endpoints",
        json={
            "TenantId": tenant.tenant_id,
            "Model": "all-minilm",
            "Endpoint": "http://ollama.weft-test.invalid:11434",
            "ApiFormat": "Ollama",
            "ApiKey": "sk-very-secret",
        },
    )
    assert endpoint.status_code == 201, endpoint.text
    assert endpoint.json()["ApiKey"] == "********"
    bad = await partio.put(
        "/v1.0/endpoints",
        json={"TenantId": tenant.tenant_id, "Model": "m", "Endpoint": "file:///etc/passwd"},
    )
    assert bad.status_code == 400
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            stored = (
                await session.scalars(
                    select(EmbeddingEndpoint.api_key_encrypted).where(
                        EmbeddingEndpoint.id == endpoint.json()["Id"]
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    assert stored and "sk-very-secret" not in stored

    listed = (await partio.post("/v1.0/users/enumerate", json={"NameFilter": "john"})).json()
    assert [u["Email"] for u in listed["Objects"]] == ["john@acme.test"]


async def test_tenant_admins_see_only_their_tenant(
    partio: httpx.AsyncClient, settings: Settings
) -> None:
    a, b = await make_tenant(settings, "A"), await make_tenant(settings, "B")
    login = await partio.post("/api/v1/auth/login", json={"email": a.email, "password": a.password})
    token = login.json()["data"]["access_token"]
    as_a = {"Authorization": f"Bearer {token}"}
    assert (await partio.get(f"/v1.0/endpoints/{a.endpoint_id}", headers=as_a)).status_code == 200
    foreign = await partio.get(f"/v1.0/endpoints/{b.endpoint_id}", headers=as_a)
    assert foreign.status_code == 404
    assert (await partio.head(f"/v1.0/endpoints/{b.endpoint_id}", headers=as_a)).status_code == 404
    assert (
        await partio.delete(f"/v1.0/endpoints/{b.endpoint_id}", headers=as_a)
    ).status_code == 404
    listed = (await partio.post("/v1.0/endpoints/enumerate", json={}, headers=as_a)).json()
    assert {e["TenantId"] for e in listed["Objects"]} == {a.tenant_id}
    sneaky = await partio.put(
        "/v1.0/endpoints",
        headers=as_a,
        json={"TenantId": b.tenant_id, "Model": "m", "ApiFormat": "Local"},
    )
    assert sneaky.json()["TenantId"] == a.tenant_id  # a tenant admin cannot pick a tenant
    tenants = await partio.post("/v1.0/tenants/enumerate", json={}, headers=as_a)
    assert tenants.status_code == 403
    # B's endpoint is still there for B's admin.
    assert (await partio.get(f"/v1.0/endpoints/{b.endpoint_id}")).status_code == 200


async def _many_tenants(settings: Settings, count: int) -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
    rng = random.Random(7)
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            for index in range(count):
                # Repeated names make ties that only the id can break.
                name = f"{rng.choice(words)}-{index % 40:02d}"
                await accounts.create_tenant(
                    session,
                    name,
                    labels=["even"] if index % 2 == 0 else [],
                    tags={"tier": "gold" if index % 5 == 0 else "basic"},
                )
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "order", ["CreatedAscending", "CreatedDescending", "NameAscending", "NameDescending"]
)
async def test_enumerate_pages_through_250_tenants(
    partio: httpx.AsyncClient, settings: Settings, order: str
) -> None:
    await _many_tenants(settings, 250)
    seen: list[dict] = []
    token = None
    pages = 0
    while True:
        page = (
            await partio.post(
                "/v1.0/tenants/enumerate",
                json={"MaxResults": 17, "ContinuationToken": token, "Order": order},
            )
        ).json()
        assert page["TotalRecords"] == 250
        seen += page["Objects"]
        assert page["RecordsRemaining"] == 250 - len(seen)
        pages += 1
        if page["EndOfResults"]:
            assert page["ContinuationToken"] is None
            break
        token = page["ContinuationToken"]
    assert pages == 15
    ids = [tenant["Id"] for tenant in seen]
    assert len(ids) == len(set(ids)) == 250
    key = "Name" if order.startswith("Name") else "CreatedUtc"
    values = [(tenant[key], tenant["Id"]) for tenant in seen]
    assert values == sorted(values, reverse=order.endswith("Descending"))


async def test_enumerate_filters(partio: httpx.AsyncClient, settings: Settings) -> None:
    await _many_tenants(settings, 60)
    even = (
        await partio.post(
            "/v1.0/tenants/enumerate", json={"LabelFilter": "even", "MaxResults": 1000}
        )
    ).json()
    assert even["TotalRecords"] == 30
    gold = (
        await partio.post(
            "/v1.0/tenants/enumerate",
            json={"TagKeyFilter": "tier", "TagValueFilter": "gold", "MaxResults": 7},
        )
    ).json()
    assert gold["TotalRecords"] == 12 and len(gold["Objects"]) == 7
    rest = (
        await partio.post(
            "/v1.0/tenants/enumerate",
            json={
                "TagKeyFilter": "tier",
                "TagValueFilter": "gold",
                "MaxResults": 7,
                "ContinuationToken": gold["ContinuationToken"],
            },
        )
    ).json()
    assert len(rest["Objects"]) == 5 and rest["EndOfResults"]
    assert not {t["Id"] for t in gold["Objects"]} & {t["Id"] for t in rest["Objects"]}
    named = (await partio.post("/v1.0/tenants/enumerate", json={"NameFilter": "ALPHA"})).json()
    assert named["Objects"] and all("alpha" in t["Name"] for t in named["Objects"])
    wrong = await partio.post(
        "/v1.0/tenants/enumerate",
        json={"Order": "NameAscending", "ContinuationToken": gold["ContinuationToken"]},
    )
    assert wrong.status_code == 400
