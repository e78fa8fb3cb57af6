"""Rate limits at the edge, on the in-process limiter and on a real Redis."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from redis.asyncio import Redis

from api.app import create_app
from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.identity import accounts
from engine.platform.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    route_group,
)
from engine.platform.settings import Settings
from tests.conftest import api_client, free_port

pytestmark = pytest.mark.asyncio

WINDOW = 3600  # long, so a test rarely straddles a window edge (and waits when it would)
MISSING = "/api/v1/does-not-exist"  # a 404 is cheap and still counted


async def flush_counters(url: str) -> None:
    redis = Redis.from_url(url)
    try:
        keys = [key async for key in redis.scan_iter("weft:rl:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides selecting the limiter's store."""
    if request.param == "memory":
        return {}
    url = request.getfixturevalue("redis_url")
    await flush_counters(url)
    return {"redis_url": url}


def limited(settings: Settings, overrides: dict[str, Any], **limits: int) -> Settings:
    update = {
        "rate_limits": {**settings.rate_limits, **limits},
        "rate_limit_window_seconds": WINDOW,
    }
    return settings.model_copy(update={**update, **overrides})


async def clear_of_window_edge() -> None:
    left = WINDOW - time.time() % WINDOW
    if left < 5:
        await asyncio.sleep(left + 0.1)


async def tenant_keys(settings: Settings, count: int) -> list[str]:
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            keys = []
            for _ in range(count):
                name = f"rl-{uuid.uuid4().hex[:8]}"
                tenant = await accounts.create_tenant(session, name)
                user = await accounts.create_user(session, tenant, f"o@{name}.test", "pw-123456")
                keys.append((await accounts.create_api_key(session, user, "rl", ["admin"])).secret)
    finally:
        await engine.dispose()
    return keys


def token(settings: Settings, sub: str, secret: str | None = None) -> str:
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": sub,
        "jti": uuid.uuid4().hex,  # so two tokens of one subject differ
        "exp": datetime.now(UTC) + timedelta(minutes=5),
    }
    return jwt.encode(claims, secret or settings.resolved_jwt_secret(), algorithm="HS256")


def remaining(response: httpx.Response) -> int:
    assert response.status_code != 429, response.text
    return int(response.headers["x-ratelimit-remaining"])


def assert_refused(response: httpx.Response, limit: int) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "RATE_LIMIT_EXCEEDED" and error["message"] == "Too many requests"
    assert error["request_id"] == response.headers["x-request-id"]
    details = error["details"]
    assert details["limit"] == limit and 0 < details["retry_after"] <= WINDOW
    assert 0 < int(response.headers["retry-after"]) <= WINDOW
    reset = int(response.headers["x-ratelimit-reset"])
    assert details["reset_at"] == datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert response.headers["x-ratelimit-remaining"] == "0"
    return details


async def test_exactly_the_limit_passes_then_429(settings: Settings, backend: dict) -> None:
    await clear_of_window_edge()
    async with api_client(create_app(limited(settings, backend, default=3))) as http:
        answers = [await http.get(MISSING, headers={"X-API-Key": "znt_one"}) for _ in range(4)]
    for answer, left in zip(answers[:3], (2, 1, 0), strict=True):
        assert answer.status_code == 404
        assert answer.headers["x-ratelimit-limit"] == "3"
        assert answer.headers["x-ratelimit-remaining"] == str(left)
        assert answer.headers["x-ratelimit-window"] == str(WINDOW)
        reset = int(answer.headers["x-ratelimit-reset"])
        assert time.time() < reset <= time.time() + WINDOW + 1
        assert "retry-after" not in answer.headers
    assert_refused(answers[3], 3)
    assert answers[3].headers["x-ratelimit-window"] == str(WINDOW)


async def test_one_tenant_exhausted_leaves_another_untouched(
    settings: Settings, backend: dict
) -> None:
    await clear_of_window_edge()
    key_a, key_b = await tenant_keys(settings, 2)
    async with api_client(create_app(limited(settings, backend, default=2))) as http:
        for _ in range(2):
            await http.get(MISSING, headers={"X-API-Key": key_a})
        assert_refused(await http.get(MISSING, headers={"X-API-Key": key_a}), 2)
        # The same key as a bearer credential is the same principal.
        refused = await http.get(MISSING, headers={"Authorization": f"Bearer {key_a}"})
        assert refused.status_code == 429
        assert remaining(await http.get(MISSING, headers={"X-API-Key": key_b})) == 1


async def test_route_groups_count_separately(settings: Settings, backend: dict) -> None:
    await clear_of_window_edge()
    (busy,) = await tenant_keys(settings, 1)
    async with api_client(create_app(limited(settings, backend, default=2, login=2))) as http:
        for _ in range(2):
            await http.get(MISSING, headers={"X-API-Key": busy})
        assert (await http.get(MISSING, headers={"X-API-Key": busy})).status_code == 429
        # Login is anonymous: counted by address even when a (live) key is sent.
        logins = [
            await http.post("/api/v1/auth/login", json={}, headers={"X-API-Key": busy})
            for _ in range(3)
        ]
        # Login is counted by client address, not by the exhausted key's bucket.
        assert remaining(await http.get(MISSING)) == 1
    assert [r.status_code for r in logins[:2]] == [422, 422]
    assert [r.headers["x-ratelimit-limit"] for r in logins[:2]] == ["2", "2"]
    assert [r.headers["x-ratelimit-remaining"] for r in logins[:2]] == ["1", "0"]
    assert_refused(logins[2], 2)


async def test_a_valid_jwt_is_counted_by_its_subject(settings: Settings, backend: dict) -> None:
    await clear_of_window_edge()
    subject = f"usr_{uuid.uuid4().hex[:8]}"
    tuned = limited(settings, backend, default=2)
    first, second = token(tuned, subject), token(tuned, subject)
    assert first != second
    async with api_client(create_app(tuned)) as http:
        bearer = [{"Authorization": f"Bearer {t}"} for t in (first, second, first)]
        answers = [await http.get(MISSING, headers=h) for h in bearer]
        other = await http.get(MISSING, headers={"Authorization": f"Bearer {token(tuned, 'x')}"})
        # A forged token is counted by address: it shares the anonymous bucket.
        forged = token(tuned, subject, secret="not-the-secret-" * 3)
        by_address = await http.get(MISSING, headers={"Authorization": f"Bearer {forged}"})
        anonymous = await http.get(MISSING)
    assert [remaining(a) for a in answers[:2]] == [1, 0]
    assert_refused(answers[2], 2)
    assert remaining(other) == 1
    assert (remaining(by_address), remaining(anonymous)) == (1, 0)


async def test_replicas_on_one_redis_share_counts(settings: Settings, redis_url: str) -> None:
    await clear_of_window_edge()
    await flush_counters(redis_url)
    shared = limited(settings, {"redis_url": redis_url}, default=3)
    async with api_client(create_app(shared)) as one, api_client(create_app(shared)) as two:
        assert remaining(await one.get(MISSING, headers={"X-API-Key": "znt_r"})) == 2
        assert remaining(await two.get(MISSING, headers={"X-API-Key": "znt_r"})) == 1
        assert remaining(await one.get(MISSING, headers={"X-API-Key": "znt_r"})) == 0
        assert_refused(await two.get(MISSING, headers={"X-API-Key": "znt_r"}), 3)


async def test_in_process_apps_count_on_their_own(settings: Settings) -> None:
    await clear_of_window_edge()
    alone = limited(settings, {}, default=2)
    async with api_client(create_app(alone)) as one, api_client(create_app(alone)) as two:
        assert remaining(await one.get(MISSING, headers={"X-API-Key": "znt_s"})) == 1
        assert remaining(await two.get(MISSING, headers={"X-API-Key": "znt_s"})) == 1


async def test_redis_down_in_memory_mode_still_limits(settings: Settings) -> None:
    await clear_of_window_edge()
    down = {"redis_url": f"redis://127.0.0.1:{free_port()}/0", "rate_limit_redis_failure": "memory"}
    async with api_client(create_app(limited(settings, down, default=2))) as http:
        answers = [await http.get(MISSING, headers={"X-API-Key": "znt_d"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [404, 404, 429]
    assert [remaining(a) for a in answers[:2]] == [1, 0]
    assert_refused(answers[2], 2)


async def test_redis_down_fail_closed_answers_503(settings: Settings) -> None:
    down = {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    closed = limited(settings, {**down, "rate_limit_redis_failure": "fail_closed"})
    async with api_client(create_app(closed)) as http:
        answers = [await http.get(MISSING, headers={"X-API-Key": "znt_c"}) for _ in range(2)]
        partio = await http.get("/v1.0/tenants")
        probe = await http.get("/api/ready")
    for answer in answers:
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "SERVICE_UNAVAILABLE"
        assert error["request_id"] == answer.headers["x-request-id"]
    assert partio.status_code == 503 and partio.json()["StatusCode"] == 503
    assert probe.status_code == 200  # probes pass, so an outage does not restart replicas


async def test_partio_paths_get_partio_errors_and_cors_headers_survive(
    settings: Settings, backend: dict
) -> None:
    await clear_of_window_edge()
    tuned = limited(settings, {**backend, "cors_origins": ["http://ui.test"]}, default=1)
    origin = {"Origin": "http://ui.test"}
    async with api_client(create_app(tuned)) as http:
        await http.get("/v1.0/nothing", headers=origin)
        refused = await http.get("/v1.0/nothing", headers=origin)
    assert refused.status_code == 429
    body = refused.json()
    assert body["StatusCode"] == 429 and body["Error"] == "TooManyRequests"
    assert refused.headers["access-control-allow-origin"] == "http://ui.test"
    assert "retry-after" in refused.headers["access-control-expose-headers"].lower()


async def test_disabled_limits_count_nothing(settings: Settings) -> None:
    off = limited(settings, {"rate_limits_enabled": False}, default=1)
    async with api_client(create_app(off)) as http:
        answers = [await http.get(MISSING) for _ in range(3)]
    assert [a.status_code for a in answers] == [404, 404, 404]
    assert "x-ratelimit-limit" not in answers[0].headers


@pytest.mark.parametrize(
    ("method", "path", "group"),
    [
        ("POST", "/api/v1/auth/login", "login"),
        ("POST", "/api/auth/login/", "login"),
        ("GET", "/api/v1/auth/login", "default"),
        ("POST", "/api/v1/auth/refresh", "refresh"),
        ("POST", "/api/auth/refresh", "refresh"),
        ("GET", "/api/v1/mcp/files", "mcp"),
        ("POST", "/api/v1/mcp/command", "mcp"),
        ("GET", "/api/v1/mcpx", "default"),
        ("POST", "/api/v1/ai/chat", "ai_chat"),
        ("POST", "/api/ai/chat", "ai_chat"),
        ("POST", "/api/v1/chat", "ai_chat"),
        ("POST", "/api/v1/chat/stream", "ai_chat"),
        ("POST", "/api/v1/chat/batch", "ai_chat"),
        ("POST", "/api/v1/ai/embeddings", "ai_embeddings"),
        ("POST", "/api/v1/workflows/wf_1/execute", "workflow_execute"),
        ("POST", "/api/workflows/wf_1/execute", "workflow_execute"),
        ("GET", "/api/v1/workflows/wf_1/execute", "default"),
        ("POST", "/api/v1/workflows/a/b/execute", "default"),
        ("GET", "/health", "default"),
        ("PUT", "/v1.0/tenants", "default"),
    ],
)
async def test_route_groups(method: str, path: str, group: str) -> None:
    assert route_group(method, path) == group


async def test_memory_limiter_is_exact_under_concurrency_and_bounded() -> None:
    await clear_of_window_edge()
    limiter = MemoryRateLimiter(max_keys=50)
    assert (await limiter.peek("k", 10, WINDOW)).remaining == 10  # a peek counts nothing
    decisions = await asyncio.gather(*(limiter.hit("k", 10, WINDOW) for _ in range(40)))
    assert sum(d.allowed for d in decisions) == 10
    # Ten in this window: one more fits once it has ended.
    assert abs(decisions[-1].retry_after - math.ceil(WINDOW - time.time() % WINDOW)) <= 1
    assert not (await limiter.peek("k", 10, WINDOW)).allowed
    for n in range(200):  # bounded: the oldest counters are dropped past the cap
        await limiter.hit(f"ip:{n}", 10, 5)
    assert len(limiter) <= 50


async def test_redis_limiter_is_exact_under_concurrency(redis_url: str) -> None:
    await clear_of_window_edge()
    await flush_counters(redis_url)
    redis = Redis.from_url(redis_url)
    try:
        limiter = RedisRateLimiter(redis)
        assert (await limiter.peek("c", 10, WINDOW)).allowed
        decisions = await asyncio.gather(*(limiter.hit("c", 10, WINDOW) for _ in range(40)))
        assert sum(d.allowed for d in decisions) == 10
        assert not (await limiter.peek("c", 10, WINDOW)).allowed
        # The window's counter expires on its own (it lives two windows).
        (counter,) = [key async for key in redis.scan_iter("weft:rl:*/c/*")]
        assert 0 < await redis.ttl(counter) <= 2 * WINDOW
    finally:
        await redis.aclose()


async def test_guessing_credentials_locks_out_the_address_not_others(
    settings: Settings, backend: dict[str, Any]
) -> None:
    """Unknown keys cost a database lookup each: past the limit, the address is refused."""
    await clear_of_window_edge()
    (good,) = await tenant_keys(settings, 1)
    app = create_app(limited(settings, backend, auth_failures=3))

    def client_from(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 4000))
        return httpx.AsyncClient(transport=transport, base_url="http://weft.test")

    async with (
        app.router.lifespan_context(app),
        client_from("198.51.100.7") as guesser,
        client_from("198.51.100.8") as other,
    ):
        for attempt in range(3):
            wrong = await guesser.get("/api/v1/users/me", headers={"X-API-Key": f"znt_{attempt}"})
            assert wrong.status_code == 401
        refused = await guesser.get("/api/v1/users/me", headers={"X-API-Key": "znt_next"})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert int(refused.headers["retry-after"]) > 0
        fine = await other.get("/api/v1/users/me", headers={"X-API-Key": good})
        assert fine.status_code == 200


async def test_each_seed_reads_the_refusal_under_its_own_code(settings: Settings) -> None:
    """zentoria says RATE_LIMIT_EXCEEDED; auterity (/api) and z2's own paths RATE_LIMITED."""
    keys = await tenant_keys(settings, 3)  # one bucket each
    app = create_app(limited(settings, {}, default=1))
    async with api_client(app) as http:
        await clear_of_window_edge()
        for key, (path, code) in zip(keys, [
            ("/api/v1/users/me", "RATE_LIMIT_EXCEEDED"),
            ("/api/workflows", "RATE_LIMITED"),
            ("/api/v1/agents", "RATE_LIMITED"),
        ], strict=True):  # fmt: skip
            headers = {"X-API-Key": key}
            assert (await http.get(path, headers=headers)).status_code == 200
            refused = await http.get(path, headers=headers)
            assert refused.status_code == 429, refused.text
            error = refused.json()["error"]
            assert error["code"] == code, (path, error)
            assert error["details"].get("code", code) == "RATE_LIMIT_EXCEEDED"


@pytest.fixture(params=["memory", "redis"])
async def bare_limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    """The limiter itself, on each store."""
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    url = request.getfixturevalue("redis_url")
    await flush_counters(url)
    redis = Redis.from_url(url)
    try:
        yield RedisRateLimiter(redis)
    finally:
        await redis.aclose()


async def test_a_burst_either_side_of_a_window_edge_is_not_twice_the_limit(
    bare_limiter: RateLimiter,
) -> None:
    """N just before a window edge and N just after: a fixed window let all 2N through."""
    limit, window = 10, 2
    key = f"edge:{uuid.uuid4().hex[:8]}"
    left = window - time.time() % window
    await asyncio.sleep(left + window - 0.4 if left < 0.4 else left - 0.4)
    before = [await bare_limiter.hit(key, limit, window) for _ in range(limit)]
    await asyncio.sleep(window - time.time() % window + 0.05)  # just past the edge
    after = [await bare_limiter.hit(key, limit, window) for _ in range(limit)]
    assert all(d.allowed for d in before)
    assert sum(d.allowed for d in after) <= 1, [d.allowed for d in after]
    refused = after[-1]
    assert not refused.allowed and refused.remaining == 0
    assert 0 < refused.retry_after <= 2 * window
    assert refused.reset_at >= time.time()
