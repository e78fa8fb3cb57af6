"""Database engine and sessions (SQLAlchemy 2, async drivers)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from engine.platform.settings import Settings

SQLITE_POOL_SIZE = 20


def create_engine(settings: Settings) -> AsyncEngine:
    """One engine per process; SQLite gets WAL and foreign keys switched on."""
    url = settings.resolved_database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Connections are kept, not opened per request: each aiosqlite connection
        # is a thread and a file open plus the pragmas below, and the default
        # pool (5 kept) closed the overflow ones after every busy moment.
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, pool_size=SQLITE_POOL_SIZE, max_overflow=40
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


# SQLSTATEs of a server going away or not there yet: connection exceptions
# (class 08), shutdown by an administrator or a crash and "cannot connect now"
# while it starts (57P01-57P03), and no connection slot left (53300).
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_SQLITE_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached now (down, restarting,
    full, or a SQLite file locked past its timeout), so the same work may succeed
    later, as opposed to an error of the statement itself."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # the connection died under the statement
        return True
    cause = exc.orig
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
    if isinstance(cause, sqlite3.OperationalError):
        # sqlite3 reports extended codes (SQLITE_BUSY_SNAPSHOT is 517): the low
        # byte is the primary code.
        return ((getattr(cause, "sqlite_errorcode", 0) or 0) & 0xFF) in _SQLITE_BUSY
    # psycopg raises a connection that fails before the server answers (refused,
    # reset, timed out) as an OperationalError without a SQLSTATE.
    return isinstance(cause, psycopg.OperationalError)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose work commits together or not at all."""
    async with sessions() as session, session.begin():
        yield session
