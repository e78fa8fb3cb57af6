"""Sign-up, sign-in, rotation and sign-out, and every way a token must fail."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from engine.platform.settings import Settings
from tests.conftest import make_tenant

pytestmark = pytest.mark.asyncio


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/v1/users/me", headers=bearer(token))


async def test_register_login_profile_refresh_logout(client: httpx.AsyncClient) -> None:
    registered = await client.post(
        "/api/auth/register",
        json={
            "email": "Ada@Example.test",
            "password": "analytical engine",
            "full_name": "Ada",
            "role": "admin",
        },
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["role"] == "user"  # a sign-up never picks its role
    bare = (
        await client.post(
            "/api/auth/login", json={"email": "ada@example.test", "password": "analytical engine"}
        )
    ).json()
    assert bare["token_type"] == "bearer" and bare["expires_in"] == 900
    assert bare["user"]["email"] == "ada@example.test"

    tokens = await login(client, "ada@example.test", "analytical engine")
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    profile = await me(client, tokens["access_token"])
    assert profile.json()["data"]["full_name"] == "Ada"

    updated = await client.put(
        "/api/v1/users/me",
        headers=bearer(tokens["access_token"]),
        json={"name": "Ada L.", "role": "admin", "tenant_id": "ten_other", "is_admin": True},
    )
    assert updated.status_code == 200
    assert updated.json()["data"]["name"] == "Ada L."
    assert updated.json()["data"]["role"] == "user"
    assert updated.json()["data"]["tenant_id"] == profile.json()["data"]["tenant_id"]

    rotated = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status_code == 200
    fresh = rotated.json()["data"]
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert (await me(client, fresh["access_token"])).status_code == 200

    out = await client.post("/api/v1/auth/logout", headers=bearer(fresh["access_token"]))
    assert out.status_code == 200
    for token in (fresh["access_token"], tokens["access_token"]):
        after = await me(client, token)
        assert after.status_code == 401 and after.json()["error"]["code"] == "UNAUTHORIZED"
    again = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}
    )
    assert again.status_code == 401


async def test_reusing_a_rotated_refresh_token_revokes_the_family(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    tenant = await make_tenant(settings, "acme")
    first = await login(client, tenant.email, tenant.password)
    second = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()["data"]
    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    # The thief replayed; now the legitimate holder's newer tokens are dead too.
    legit = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert legit.status_code == 401
    assert (await me(client, second["access_token"])).status_code == 401
    # Other sessions of the same user are unaffected.
    other = await login(client, tenant.email, tenant.password)
    assert (await me(client, other["access_token"])).status_code == 200


async def test_unknown_user_and_wrong_password_answer_identically(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    tenant = await make_tenant(settings, "acme")
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": tenant.email, "password": "not the password"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@nowhere.test", "password": "whatever1"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
    assert wrong.json()["error"]["details"] == unknown.json()["error"]["details"]


async def _token_variants(settings: Settings, good: str) -> dict[str, str]:
    secret = settings.resolved_jwt_secret()
    claims = jwt.decode(good, secret, algorithms=["HS256"], audience=settings.jwt_audience)
    now = int(time.time())

    def sign(changes: dict, key: str = secret) -> str:
        return jwt.encode({**claims, **changes}, key, algorithm="HS256")

    header, payload, _ = good.split(".")
    none_header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    return {
        "alg none": f"{none_header}.{payload}.",
        "wrong key": sign({}, key="x" * 48),
        "expired": sign({"exp": now - 10, "iat": now - 1000}),
        "wrong audience": sign({"aud": "someone-else"}),
        "wrong issuer": sign({"iss": "evil"}),
        "no expiry": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret),
        "garbage": "not.a.token",
    }


async def test_forged_and_misused_tokens_are_all_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    tenant = await make_tenant(settings, "acme")
    tokens = await login(client, tenant.email, tenant.password)
    for name, token in (await _token_variants(settings, tokens["access_token"])).items():
        response = await me(client, token)
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "UNAUTHORIZED", name
    # A refresh token is not an access token, and the other way round.
    assert (await me(client, tokens["refresh_token"])).status_code == 401
    swapped = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]}
    )
    assert swapped.status_code == 401
    assert (await me(client, tokens["access_token"])).status_code == 200  # the real one works


async def test_api_keys_are_shown_once_scoped_and_revocable(client: httpx.AsyncClient) -> None:
    signup = {"email": "bob@example.test", "password": "correct horse"}
    assert (await client.post("/api/v1/auth/register", json=signup)).status_code == 201
    tokens = await login(client, signup["email"], signup["password"])
    created = await client.post(
        "/api/v1/api-keys",
        headers=bearer(tokens["access_token"]),
        json={
            "name": "automation",
            "scopes": ["files:read", "profile"],
            "expires_at": "2099-12-31T23:59:59Z",
        },
    )
    assert created.status_code == 201, created.text
    key = created.json()["data"]
    assert key["key"].startswith("znt_") and key["last_used"] is None

    profile = await client.get("/api/v1/users/me", headers={"X-API-Key": key["key"]})
    assert profile.status_code == 200
    listed = (await client.get("/api/v1/api-keys", headers=bearer(tokens["access_token"]))).json()
    mine = next(item for item in listed["data"]["api_keys"] if item["id"] == key["id"])
    assert "key" not in mine and mine["last_used"] is not None
    assert key["key"] not in str(listed)

    lacking = await client.post(
        "/api/v1/api-keys",
        headers={"X-API-Key": key["key"]},
        json={"name": "x", "scopes": ["files:read"]},
    )
    assert lacking.status_code == 403 and lacking.json()["error"]["code"] == "FORBIDDEN"
    escalate = await client.post(
        "/api/v1/api-keys",
        headers=bearer(tokens["access_token"]),
        json={"name": "x", "scopes": ["admin"]},
    )
    assert escalate.status_code == 403  # a key cannot have scopes its creator lacks
    bad_scope = await client.post(
        "/api/v1/api-keys",
        headers=bearer(tokens["access_token"]),
        json={"name": "x", "scopes": ["files:everything"]},
    )
    assert bad_scope.status_code == 422

    revoked = await client.delete(
        f"/api/v1/api-keys/{key['id']}", headers=bearer(tokens["access_token"])
    )
    assert revoked.status_code == 204
    after = await client.get("/api/v1/users/me", headers={"X-API-Key": key["key"]})
    assert after.status_code == 401 and after.json()["error"]["code"] == "INVALID_API_KEY"


async def test_expired_api_key_is_invalid(client: httpx.AsyncClient, settings: Settings) -> None:
    from datetime import UTC, datetime, timedelta

    from engine.db.connection import create_engine, create_sessionmaker, transaction
    from engine.identity import accounts

    tenant = await make_tenant(settings, "acme")
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            user = await accounts.find_user(session, tenant.email)
            issued = await accounts.create_api_key(
                session,
                user,
                "old",
                ["profile"],
                expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )
    finally:
        await engine.dispose()
    response = await client.get("/api/v1/users/me", headers={"X-API-Key": issued.secret})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_API_KEY"


async def test_repeated_failed_logins_lock_the_account_not_others(settings: Settings) -> None:
    from api.app import create_app
    from tests.conftest import api_client

    strict = settings.model_copy(
        update={"login_failure_limit": 3, "rate_limits": {**settings.rate_limits, "login": 100}}
    )
    victim, bystander = await make_tenant(settings, "V"), await make_tenant(settings, "B")
    async with api_client(create_app(strict)) as http:
        for _ in range(3):
            wrong = await http.post(
                "/api/v1/auth/login", json={"email": victim.email, "password": "guess-guess"}
            )
            assert wrong.status_code == 401
        locked = await http.post(
            "/api/v1/auth/login", json={"email": victim.email, "password": victim.password}
        )
        other = await http.post(
            "/api/v1/auth/login", json={"email": bystander.email, "password": bystander.password}
        )
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert locked.json()["error"]["details"]["retry_after"] > 0
    assert other.status_code == 200


async def test_principals_are_cached_briefly_and_forgotten_on_any_identity_change(
    tmp_path, database_url: str, temporal_address: str
) -> None:
    """A key is looked up once per cache lifetime; a change made through this
    process (revoking, deactivating) takes effect at once, and one the process
    did not see (another node's, here raw SQL) once the cache lapses."""
    import asyncio

    from sqlalchemy import event, text

    from api.app import create_app
    from engine.db import migrate
    from engine.db.connection import create_engine, create_sessionmaker, transaction
    from tests.conftest import api_client, make_settings

    settings = make_settings(
        tmp_path,
        database_url=database_url,
        temporal_address=temporal_address,
        principal_cache_seconds=1.0,
    )
    await asyncio.to_thread(migrate.upgrade, settings)
    tenant = await make_tenant(settings, "cached")
    app = create_app(settings)
    async with api_client(app) as client:
        key_lookups = 0

        def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            nonlocal key_lookups
            key_lookups += "FROM api_keys" in statement

        engine = app.state.resources.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        headers = {"X-API-Key": tenant.key}
        assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
        first = key_lookups
        for _ in range(4):
            assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
        assert first >= 1 and key_lookups == first  # the next four looked nothing up

        # Another node revokes the key behind this process's back: the cached
        # principal serves until it lapses, then the key is refused.
        other = create_engine(settings)
        try:
            async with transaction(create_sessionmaker(other)) as session:
                await session.execute(
                    text("UPDATE users SET active = :no WHERE tenant_id = :t"),
                    {"no": False, "t": tenant.tenant_id},
                )
        finally:
            await other.dispose()
        deadline = time.monotonic() + 10
        while (await client.get("/api/v1/users/me", headers=headers)).status_code == 200:
            assert time.monotonic() < deadline, "a deactivated user still served after the cache"
            await asyncio.sleep(0.2)
        refused = await client.get("/api/v1/users/me", headers=headers)
        assert refused.json()["error"]["code"] == "ACCOUNT_DISABLED"

        # A second key, revoked through the API of this process: refused at once.
        second = await make_tenant(settings, "revoked-here")
        own = {"X-API-Key": second.key}
        assert (await client.get("/api/v1/users/me", headers=own)).status_code == 200
        listed = await client.get("/api/v1/api-keys", headers=own)
        (key_id,) = [k["id"] for k in listed.json()["data"]["api_keys"]]
        assert (await client.delete(f"/api/v1/api-keys/{key_id}", headers=own)).status_code == 204
        assert (await client.get("/api/v1/users/me", headers=own)).status_code == 401
