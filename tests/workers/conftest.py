"""Activity tests: the real implementations, called directly, with no Temporal server.

``ActivityEnvironment`` gives an activity its context (info, heartbeats,
cancellation). Around it is a real worker's world in ``tmp_path``: a migrated
SQLite database with a tenant, and a local blob store.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from engine.db import migrate
from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.db.tables import File
from engine.platform.settings import Settings
from engine.storage.base import file_key
from engine.storage.local import LocalBlobStore
from engine.vectors.database import DatabaseVectorIndex
from tests.conftest import make_settings, make_tenant
from workers.activities.documents import DocumentActivities
from workflows.document_payloads import DocumentRef


@dataclass
class Workspace:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    store: LocalBlobStore
    tenant_id: str
    documents: DocumentActivities

    async def add_file(self, data: bytes, filename: str, mime_type: str) -> DocumentRef:
        """A file as an upload leaves it: its bytes in the store, its row in the database."""
        file_id = f"file_{uuid.uuid4().hex[:12]}"
        key = file_key(self.tenant_id, file_id)
        await self.store.put_bytes(key, data)
        async with transaction(self.sessions) as session:
            session.add(
                File(
                    id=file_id,
                    tenant_id=self.tenant_id,
                    filename=filename,
                    mime_type=mime_type,
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    blob_key=key,
                )
            )
        return DocumentRef(tenant_id=self.tenant_id, file_id=file_id)


def sqlite_settings(folder: Path) -> Settings:
    return make_settings(folder, database_url=f"sqlite:///{folder / 'weft.db'}")


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, made once: each test starts from a copy of it."""
    folder = tmp_path_factory.mktemp("migrated")
    migrate.upgrade(sqlite_settings(folder))
    return folder / "weft.db"


@pytest.fixture
async def workspace(tmp_path: Path, migrated_database: Path) -> AsyncIterator[Workspace]:
    settings = sqlite_settings(tmp_path)
    shutil.copyfile(migrated_database, tmp_path / "weft.db")
    tenant = await make_tenant(settings, "workers")
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    store = LocalBlobStore(settings.data_dir / "blobs")
    try:
        async with httpx.AsyncClient() as http:
            documents = DocumentActivities(settings, sessions, store, DatabaseVectorIndex(), http)
            yield Workspace(settings, sessions, store, tenant.tenant_id, documents)
    finally:
        await engine.dispose()


@pytest.fixture
def activity_env() -> ActivityEnvironment:
    return ActivityEnvironment()


@pytest.fixture
def heartbeats(activity_env: ActivityEnvironment) -> list[tuple[object, ...]]:
    """The details of every heartbeat the activity run in ``activity_env`` sends."""
    sent: list[tuple[object, ...]] = []
    activity_env.on_heartbeat = lambda *details: sent.append(details)
    return sent
