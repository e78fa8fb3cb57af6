"""Which database errors mean "not now" (answered 503, waited out by activities)
and which mean "this statement is wrong" (a 500, a failed attempt)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from engine.db.connection import create_engine, database_unavailable
from engine.platform.settings import async_database_url
from tests.conftest import free_port, make_settings

pytestmark = pytest.mark.asyncio


async def failure(engine: AsyncEngine, statement: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as raised:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    return raised.value


async def test_a_wrong_statement_is_not_an_outage(database_url: str, tmp_path: Path) -> None:
    engine = create_engine(make_settings(tmp_path, database_url=database_url))
    try:
        assert not database_unavailable(await failure(engine, "SELEC 1"))
        assert not database_unavailable(await failure(engine, "SELECT * FROM no_such_table"))
    finally:
        await engine.dispose()


async def test_a_server_nobody_runs_is_an_outage(tmp_path: Path) -> None:
    url = f"postgresql://weft@127.0.0.1:{free_port()}/weft"
    engine = create_engine(make_settings(tmp_path, database_url=url))
    try:
        assert database_unavailable(await failure(engine, "SELECT 1"))
    finally:
        await engine.dispose()


async def test_a_sqlite_file_locked_past_the_timeout_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    url = async_database_url(make_url(f"sqlite:///{path}").render_as_string())
    engine = create_async_engine(url, connect_args={"timeout": 0.1})
    try:
        assert database_unavailable(await failure(engine, "INSERT INTO t VALUES (1)"))
    finally:
        await engine.dispose()
        holder.close()


async def test_a_stale_sqlite_snapshot_is_an_outage(tmp_path: Path) -> None:
    """sqlite3 reports extended codes: a write from a read transaction another
    connection overtook is SQLITE_BUSY_SNAPSHOT (517), a busy database too."""
    path = tmp_path / "snapshot.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x INTEGER)")
    url = async_database_url(make_url(f"sqlite:///{path}").render_as_string())
    engine = create_async_engine(url, connect_args={"timeout": 0.1, "isolation_level": None})
    try:
        with pytest.raises(DBAPIError) as raised:
            async with engine.connect() as connection:
                await connection.exec_driver_sql("BEGIN")
                await connection.exec_driver_sql("SELECT * FROM t")
                writer.execute("INSERT INTO t VALUES (1)")
                await connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        assert getattr(raised.value.orig, "sqlite_errorcode", None) == 517
        assert database_unavailable(raised.value)
    finally:
        await engine.dispose()
        writer.close()
