"""Request history for partio's ``/v1.0/requests``: redaction, a background writer, retention.

Recording must never slow down or break a request, so the API only enqueues an
entry; one writer task per process turns entries into rows (in small batches)
and detail files. Bodies are redacted and capped before they reach the disk:
tenant admins read this history, and credentials never belong in it. Retention
is not the API's job: a Temporal Schedule runs ``HistoryPurgeWorkflow``, whose
activity calls ``purge_batch`` (see ``engine.audit.retention``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db.tables import RequestRecord
from engine.platform.ids import new_id
from engine.platform.settings import Settings

log = logging.getLogger("weft.history")

REDACTED = "[REDACTED]"
# Compared without case, "_" or "-": "access_token", "AccessToken" and "access-token" alike.
SENSITIVE_KEYS = frozenset(
    {"password", "secret", "token", "accesstoken", "refreshtoken", "apikey", "key"}
    | {"authorization", "bearertoken", "credentials"}
)
SENSITIVE_SUFFIXES = ("password", "secret")  # new_password, client_secret, ...
_TEXT_TYPES = {"application/json", "application/xml", "application/x-www-form-urlencoded"}
# A string that is no key is consumed whole (the second branch, possessive), so
# the search never restarts inside it: on text such as '"\\"\\"\\"…' each
# restart ran to the end, quadratic in the length.
_JSON_PAIR = re.compile(
    r'"((?:[^"\\]|\\.)*+)"(\s*:\s*)("(?:[^"\\]|\\.)*+(?:"|$)|[^,{}\[\]\s"]*)'
    r'|"(?:[^"\\]|\\.)*+(?:"|\\?$)'
)
# A key starts only where a run of key characters starts (the lookbehind): tried
# at every character of a long run without "=", the search was quadratic, and a
# 64 KiB body held the GIL for most of a minute.
_KEY_VALUE = re.compile(r"(?<![^&=\s\"'?])([^&=\s\"'?]+)=([^&\s]*)")
_RECORD_ID = re.compile(r"^rq_[A-Za-z0-9]+$")


def _sensitive(name: str) -> bool:
    folded = name.lower().replace("_", "").replace("-", "")
    return folded in SENSITIVE_KEYS or folded.endswith(SENSITIVE_SUFFIXES)


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _sensitive(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def redact_query(query: str) -> str:
    """``key=value`` text (a query string, a form) with sensitive values hidden."""

    def hide(match: re.Match[str]) -> str:
        return f"{match[1]}={REDACTED}" if _sensitive(unquote_plus(match[1])) else match[0]

    return _KEY_VALUE.sub(hide, query)


class RedactAccessLog(logging.Filter):
    """Hides sensitive query values (``?token=…``, ``?api_key=…``) in uvicorn's
    access log, whose records carry ``(client, method, path?query, version, status)``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, mark, query = args[2].partition("?")
            if mark:
                record.args = (*args[:2], f"{path}?{redact_query(query)}", *args[3:])
        return True


def _json_key(raw: str) -> str:
    """A JSON string's text as a parser reads it (``pass\\u0077ord`` is ``password``)."""
    try:
        decoded = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return decoded if isinstance(decoded, str) else raw


def _scrub_text(text: str) -> str:
    """Best effort for text that is not whole JSON (cut at the cap, forms, plain text)."""

    def hide(match: re.Match[str]) -> str:
        if match[1] is None:  # a string that is not a key
            return match[0]
        sensitive = _sensitive(match[1]) or _sensitive(_json_key(match[1]))
        return f'"{match[1]}"{match[2]}"{REDACTED}"' if sensitive else match[0]

    return redact_query(_JSON_PAIR.sub(hide, text))


def _parsed_json(body: bytes) -> tuple[bool, Any]:
    """The body as the API's routes parse it (``json.loads`` on the bytes: a
    BOM, UTF-16 and UTF-32 and escaped keys all decoded), or (False, None)."""
    try:
        return True, json.loads(body)
    except (ValueError, RecursionError):
        return False, None


def _decode(body: bytes) -> str | None:
    """UTF-8 text, allowing a character split by the cap at the end; None if binary."""
    for cut in range(min(4, len(body))):
        with contextlib.suppress(UnicodeDecodeError):
            return body[: len(body) - cut].decode("utf-8")
    return None


def _cap(text: str, cap: int | None) -> str:
    raw = text.encode()
    return (
        raw[:cap].decode("utf-8", errors="ignore") if cap is not None and len(raw) > cap else text
    )


def redact(body: bytes, content_type: str, cap: int | None = None) -> str:
    """A body as it may be stored: credentials replaced, at most ``cap`` bytes.

    JSON has the values of sensitive keys replaced at any depth; text that is
    not whole JSON (a body cut at the cap, a form) gets the same by pattern;
    multipart and binary bodies keep only a marker with their size.
    """
    if not body:
        return ""
    kind = content_type.split(";")[0].strip().lower()
    if kind.startswith("multipart/"):  # may carry form fields such as passwords
        return f"[multipart body: {len(body)} bytes]"
    textual = (
        not kind
        or kind.startswith("text/")
        or kind in _TEXT_TYPES
        or kind.endswith(("+json", "+xml"))
    )
    # Redacted on the parsed object, whatever the declared type: a route reads
    # JSON from bodies sent without one (or with another) too.
    parsed, value = _parsed_json(body)
    if parsed and isinstance(value, dict | list):
        return _cap(json.dumps(_scrub(value), ensure_ascii=False), cap)
    text = _decode(body) if textual else None
    if text is None:
        return f"[binary body: {len(body)} bytes]"
    return _cap(_scrub_text(text.removeprefix("\ufeff")), cap)


@dataclass
class HistoryEntry:
    """What the middleware saw of one request; bodies are raw, already at most the cap."""

    request_id: str
    method: str
    path: str
    query: str
    status_code: int
    duration_ms: float
    client_ip: str | None = None
    user_agent: str | None = None
    tenant_id: str | None = None
    principal_id: str | None = None
    request_body: bytes = b""
    request_content_type: str = ""
    request_body_bytes: int = 0
    response_body: bytes = b""
    response_content_type: str = ""
    response_body_bytes: int = 0
    id: str = field(default_factory=lambda: new_id("rq"))
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def detail_path(settings: Settings, record_id: str, created_at: datetime) -> Path:
    if not _RECORD_ID.match(record_id):  # ids become file names
        raise ValueError(f"not a request history id: {record_id!r}")
    day = created_at.astimezone(UTC).strftime("%Y%m%d")
    return settings.data_dir / "requests" / day / f"{record_id}.json"


# Day directories this process has made (or found): each is made once, not per file.
_DAY_DIRS: set[Path] = set()


def _create_private(path: Path) -> int:
    """A descriptor of ``path``, created 0600 in one call (bodies may hold
    personal data); its day directory is made when missing (or purged)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    if path.parent in _DAY_DIRS:
        with contextlib.suppress(FileNotFoundError):
            return os.open(path, flags, 0o600)
    path.parent.mkdir(parents=True, exist_ok=True)
    _DAY_DIRS.add(path.parent)
    return os.open(path, flags, 0o600)


def _write_details(settings: Settings, entries: list[HistoryEntry]) -> set[str]:
    """Detail files for the entries that have a body; returns their ids."""
    cap = settings.request_history_body_cap_bytes
    written = set()
    for entry in entries:
        request = redact(entry.request_body, entry.request_content_type, cap)
        response = redact(entry.response_body, entry.response_content_type, cap)
        if not (request or response):
            continue
        path = detail_path(settings, entry.id, entry.created_at)
        detail = {"RequestBody": request or None, "ResponseBody": response or None}
        with os.fdopen(_create_private(path), "wb") as file:
            file.write(json.dumps(detail).encode())
        written.add(entry.id)
    return written


# Copied from an entry into its row as they are (the query is redacted first);
# values wider than their column are cut.
_ROW_FIELDS = [f.name for f in fields(HistoryEntry) if f.name in RequestRecord.__table__.c]
_ROW_FIELDS.remove("query")
_WIDTHS = {"request_id": 128, "method": 10, "path": 2000, "client_ip": 64, "user_agent": 400}


def _row(entry: HistoryEntry, has_detail: bool) -> dict[str, Any]:
    """The ``request_history`` row of ``entry``, as INSERT values."""
    values = {name: getattr(entry, name) for name in _ROW_FIELDS}
    for name, width in _WIDTHS.items():
        values[name] = values[name][:width] if values[name] else values[name]
    query = redact_query(entry.query)[:2000] or None
    return {**values, "query": query, "has_detail": has_detail}


def _purge_files(settings: Settings, cutoff: datetime) -> None:
    """Day directories wholly older than the cutoff (files live at most a day longer)."""
    root = settings.data_dir / "requests"
    if not root.is_dir():
        return
    for day in root.iterdir():
        try:
            date = datetime.strptime(day.name, "%Y%m%d").replace(tzinfo=UTC).date()
        except ValueError:
            continue
        if date < cutoff.date():
            shutil.rmtree(day, ignore_errors=True)


async def purge_batch(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    as_of: datetime,
    batch_size: int,
) -> tuple[int, datetime]:
    """Remove at most ``batch_size`` rows (oldest first) older than the retention
    counted back from ``as_of``, and the detail-file days wholly older than it.

    Returns:
        The rows removed and the cutoff.
    """
    cutoff = as_of - timedelta(days=settings.request_history_retention_days)
    async with sessions() as session:
        expired = (
            select(RequestRecord.id)
            .where(RequestRecord.created_at < cutoff)
            .order_by(RequestRecord.created_at)
            .limit(batch_size)
        )
        ids = list((await session.scalars(expired)).all())
        if ids:
            await session.execute(delete(RequestRecord).where(RequestRecord.id.in_(ids)))
            await session.commit()
    await asyncio.to_thread(_purge_files, settings, cutoff)
    return len(ids), cutoff


class RequestHistory:
    """One per API process: a bounded queue and a batching writer."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        queue_size: int = 1000,
        batch_size: int = 50,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self._queue: asyncio.Queue[HistoryEntry] = asyncio.Queue(queue_size)
        self._batch_size = batch_size
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.dropped = 0  # entries refused because the queue was full or closed
        self.failed = 0  # entries lost to a database or disk error

    def record(self, entry: HistoryEntry) -> bool:
        """Enqueue without waiting; a full queue drops the entry (the request matters more)."""
        if not self._closed and not self._queue.full():
            self._queue.put_nowait(entry)
            return True
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("request history: %d entries dropped (queue full)", self.dropped)
        return False

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._write_loop(), name="request-history-writer")]

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Refuse new entries, write those queued (up to ``drain_seconds``), end the tasks."""
        self._closed = True
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_seconds)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.write(batch)
            except Exception:
                self.failed += len(batch)
                log.exception("request history: %d entries not written", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def write(self, batch: list[HistoryEntry]) -> None:
        """Detail files first, so a row never claims a file that is not there (a file
        whose row failed is left to the retention purge)."""
        written = await asyncio.to_thread(_write_details, self.settings, batch)
        async with self._sessions() as session:
            rows = [_row(entry, entry.id in written) for entry in batch]
            await session.execute(insert(RequestRecord), rows)
            await session.commit()


async def read_detail(settings: Settings, record: RequestRecord) -> dict[str, Any] | None:
    """The stored bodies of a record, or None when it has none (or the file is gone)."""
    if not record.has_detail:
        return None
    path = detail_path(settings, record.id, record.created_at)
    try:
        loaded: dict[str, Any] = json.loads(await asyncio.to_thread(path.read_text))
    except (FileNotFoundError, ValueError):
        return None
    return loaded


async def delete_record(session: AsyncSession, settings: Settings, record: RequestRecord) -> None:
    """The row, then its detail file (a missing file is fine)."""
    path = detail_path(settings, record.id, record.created_at)
    await session.delete(record)
    await session.commit()
    await asyncio.to_thread(path.unlink, missing_ok=True)
