"""z2's MCP sessions: a named context a client works in, with the count of the
tool calls made in it. A session belongs to the user (of its tenant) who made
it; anyone else is told it does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.db.scope import TenantScope
from engine.db.tables import McpSession
from engine.identity.principals import Principal
from engine.platform.errors import NotFound

MAX_SESSIONS_LISTED = 200


class SessionNotFound(NotFound):
    code = "SESSION_NOT_FOUND"


async def create_session(
    db: TenantScope, principal: Principal, *, name: str | None, context: dict[str, Any]
) -> McpSession:
    row = McpSession(
        user_id=principal.user_id, name=name, status="active", context=context, tools_used=0
    )
    db.add(row)
    await db.session.commit()
    await db.session.refresh(row)
    return row


async def list_sessions(
    db: TenantScope, principal: Principal, *, status: str | None = "active"
) -> list[McpSession]:
    """The caller's sessions, the most recently used first."""
    query = db.select(McpSession).where(McpSession.user_id == principal.user_id)
    if status:
        query = query.where(McpSession.status == status)
    query = query.order_by(McpSession.created_at.desc(), McpSession.id).limit(MAX_SESSIONS_LISTED)
    rows = list(await db.session.scalars(query))
    rows.sort(key=lambda row: row.last_active_at or row.created_at, reverse=True)
    return rows


async def get_session(db: TenantScope, principal: Principal, session_id: str) -> McpSession:
    row = await db.find(McpSession, session_id)
    if row is None or row.user_id != principal.user_id:
        raise SessionNotFound(f"MCP session {session_id} not found")
    if row.status != "active":
        raise SessionNotFound(f"MCP session {session_id} is {row.status}")
    return row


async def count_use(db: TenantScope, row: McpSession, when: datetime) -> None:
    """One more tool call made in ``row``."""
    row.tools_used = (row.tools_used or 0) + 1
    row.last_active_at = when
    await db.session.commit()
