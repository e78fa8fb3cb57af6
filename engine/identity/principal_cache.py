"""A short-lived, in-process cache of resolved principals.

Authenticating an API key or an access token costs a database round trip (and,
on SQLite, the one writer lock when ``last_used_at`` moves); a client that calls
ten times a second would pay it ten times a second. A resolved principal is
therefore kept for ``Settings.principal_cache_seconds`` (default 5 s), never
past the credential's own expiry.

Revocation stays prompt:
- on the process that made the change, at once: any committed change to a
  user, tenant, API key or sign-in session (revoking, deactivating, a role
  change; bumping ``last_used_at`` is no change) empties the cache, whichever
  code path made it — a SQLAlchemy ``after_commit`` hook, not a list of call
  sites to keep in step;
- on every other process (API workers, replicas), within the cache's lifetime.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from engine.db.tables import ApiKey, AuthSession, Tenant, User

if TYPE_CHECKING:
    from engine.identity.principals import Principal

MAX_ENTRIES = 10_000
_IDENTITY_ROWS = (ApiKey, AuthSession, Tenant, User)
# Columns whose change does not alter what a credential may do.
_BOOKKEEPING = frozenset({"last_used_at", "updated_at"})
_CHANGED_FLAG = "weft_identity_changed"


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    fresh_until: float  # time.monotonic()
    expires_at: datetime | None  # the credential's own end, if it has one


class PrincipalCache:
    """credential digest -> principal, bounded in size and age."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @staticmethod
    def key(credential: str) -> str:
        return hashlib.sha256(credential.encode()).hexdigest()

    def get(self, key: str) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.fresh_until <= time.monotonic() or (
            entry.expires_at is not None and entry.expires_at <= datetime.now(UTC)
        ):
            self._entries.pop(key, None)
            return None
        return entry.principal

    def put(
        self, key: str, principal: Principal, seconds: float, expires_at: datetime | None
    ) -> None:
        if seconds <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()  # rare; cheaper than tracking recency on every hit
        self._entries[key] = _Entry(principal, time.monotonic() + seconds, expires_at)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# One per process: every app, stream and MCP session in it shares what it learnt.
principals = PrincipalCache()


def _changes_identity(obj: Any) -> bool:
    state = inspect(obj)
    return any(attr.key not in _BOOKKEEPING and attr.history.has_changes() for attr in state.attrs)


@event.listens_for(Session, "before_flush")
def _note_identity_changes(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(_CHANGED_FLAG):
        return
    touched = [
        obj
        for obj in (*session.new, *session.dirty, *session.deleted)
        if isinstance(obj, _IDENTITY_ROWS)
    ]
    if any(
        obj in session.new or obj in session.deleted or _changes_identity(obj) for obj in touched
    ):
        session.info[_CHANGED_FLAG] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_identity_changes(state: Any) -> None:
    if (state.is_update or state.is_delete) and any(
        mapper.class_ in _IDENTITY_ROWS for mapper in state.all_mappers
    ):
        state.session.info[_CHANGED_FLAG] = True


@event.listens_for(Session, "after_commit")
def _forget_on_commit(session: Session) -> None:
    if session.info.pop(_CHANGED_FLAG, False):
        principals.clear()


@event.listens_for(Session, "after_rollback")
def _keep_on_rollback(session: Session) -> None:
    session.info.pop(_CHANGED_FLAG, None)
