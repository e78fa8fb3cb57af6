"""z2's A2A sessions: two agents shake hands, negotiate, and exchange messages.

A session is an ``A2AExchangeWorkflow`` run (``a2a-{session_id}``) plus its row
(``a2a_sessions``: tenant, peers, status, agreed limits, turns, cost). The
source is one of the tenant's active agents; the target is another of them, or
a remote A2A agent whose card the handshake reads through the egress guard
under the tenant rules (a private or loopback address the operator did not
allow is refused with ``EGRESS_DENIED`` before any connection).

Negotiations and messages are updates of the run, which checks them against
the session's limits and refuses what they exceed (``A2ASessionRefused`` with
the run's code); the run writes the row after every change
(``record_session``), so listing reads rows only. Reading one session asks
the run for its transcript while it can answer. Every call is scoped by the
caller's tenant: another tenant's session is not found.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import httpx
from a2a.types import AgentCard
from a2a.utils.errors import A2AError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from engine.a2a.client import BINDINGS, RemoteAgentError, fetch_card, version_of
from engine.a2a.errors import A2ASessionClosed, A2ASessionNotFound, A2ASessionRefused
from engine.a2a.transport import guarded_client
from engine.agents.service import AgentNotFound
from engine.db.connection import transaction
from engine.db.scope import TenantScope
from engine.db.tables import A2ASession, Agent
from engine.identity.principals import Principal
from engine.platform.egress import parse_url
from engine.platform.errors import InvalidInput
from engine.platform.ids import new_id
from engine.platform.runs import RunOptions, is_not_found, start_run
from engine.platform.settings import Settings
from workflows.a2a_exchange import A2AExchangeWorkflow
from workflows.a2a_exchange_payloads import (
    AGENT_CONTENT_TYPES,
    JSON,
    OPEN_STATUSES,
    PROTOCOL_VERSIONS,
    TEXT,
    A2AExchangeInput,
    A2ASessionRecord,
    Content,
    SessionClose,
    SessionLimits,
    SessionMaxima,
    SessionMessage,
    SessionNegotiation,
    SessionPeer,
    SessionReply,
    SessionView,
    common_content_types,
    common_versions,
    default_limits,
    message_size,
)

CARD_TIMEOUT_SECONDS = 15.0
QUERY_TIMEOUT = timedelta(seconds=5)
UPDATE_TIMEOUT = timedelta(seconds=60)
# A message waits for the peer's answer (a model call, or a remote agent's task).
MESSAGE_TIMEOUT = timedelta(minutes=11)
MAX_LISTED = 200
# How a remote card's input modes name content types.
MODE_ALIASES = {"text": TEXT, "json": JSON, "data": JSON}
Listing = Literal["active", "closed", "all"]


def workflow_id_of(session_id: str) -> str:
    return f"a2a-{session_id}"


@dataclass(frozen=True)
class SessionRead:
    """A session: its row, and its run's own account when the run answered."""

    row: A2ASession
    live: SessionView | None


# --- the handshake ---------------------------------------------------------------


async def handshake(
    db: TenantScope,
    client: Client,
    settings: Settings,
    principal: Principal,
    *,
    source_agent_id: str,
    target_agent_id: str | None = None,
    target_agent_url: str | None = None,
    capabilities: list[str] | None = None,
) -> A2ASession:
    """Open a session between the tenant's agent ``source_agent_id`` and a target
    (another of its agents, or the remote agent at ``target_agent_url``), and
    start its run.

    Args:
        capabilities: what the source brings to this session (default: the
            source agent's own capabilities).

    Returns:
        The session's row (status ``handshake``).
    """
    if (target_agent_id is None) == (target_agent_url is None):
        raise InvalidInput(
            "Name the target with target_agent_id or target_agent_url (one of them)",
            details={"field": "target_agent_id"},
        )
    source_row = await _active_agent(db, source_agent_id, "source_agent_id")
    source = _agent_peer(source_row)
    if capabilities is not None:
        source.capabilities = list(dict.fromkeys(capabilities))
    if target_agent_id is not None:
        target = _agent_peer(await _active_agent(db, target_agent_id, "target_agent_id"))
    await db.session.commit()  # no read transaction stays open while a card is read
    if target_agent_url is not None:
        target = await remote_peer(settings, target_agent_url)
    versions = common_versions(source, target)
    if not versions:
        raise InvalidInput(
            "The target speaks no A2A protocol version this server speaks",
            details={"field": "target_agent_url", "supported": list(PROTOCOL_VERSIONS),
                     "offered": target.protocol_versions},
        )  # fmt: skip
    if not common_content_types(source, target):
        raise InvalidInput(
            "The agents have no content type in common",
            details={"field": "target_agent_url", "offered": target.content_types},
        )
    maxima = SessionMaxima()
    limits = default_limits(source, target, maxima)
    session_id = new_id("a2s")
    row = A2ASession(
        id=session_id,
        source_agent_id=source_row.id,
        target_agent_id=target.id,
        target_agent_url=target.url,
        status="handshake",
        protocol_version=limits.protocol_version,
        capabilities=capabilities_of(source, target),
        limits=limits_of(limits, negotiated=False),
        turns=0,
        cost_usd=0.0,
        workflow_id=workflow_id_of(session_id),
        created_by=principal.user_id,
    )
    db.add(row)
    await db.session.commit()
    params = A2AExchangeInput(
        session_id=session_id,
        tenant_id=row.tenant_id,
        started_by=principal.user_id,
        source=source,
        target=target,
        limits=limits,
        maxima=maxima,
    )
    run = RunOptions(
        workflow_id=row.workflow_id,
        kind="a2a",
        tenant_id=row.tenant_id,
        started_by=principal.user_id,
        summary=f"A2A session {source.name or source.id} → {target.name or target.url}",
        once=True,
    )
    try:
        await start_run(client, settings, A2AExchangeWorkflow.run, params, run)
    except Exception:
        row.status = "failed"
        await db.session.commit()
        raise
    return row


async def remote_peer(settings: Settings, url: str) -> SessionPeer:
    """The remote agent whose card is at ``url`` (or whose base URL it is), read
    through the egress guard under the tenant rules."""
    parse_url(url)  # EgressDenied for what is not an http(s) URL, before anything
    http, transport = guarded_client(settings, tenant=True, timeout_seconds=CARD_TIMEOUT_SECONDS)
    try:
        async with http:
            card = await fetch_card(http, url)
    except (A2AError, httpx.HTTPError) as exc:
        if transport.refused is not None:
            raise transport.refused from None
        raise RemoteAgentError(
            f"The remote agent's card could not be read: {exc}", details={"url": url}
        ) from None
    return peer_of_card(url, card)


def peer_of_card(url: str, card: AgentCard) -> SessionPeer:
    offered = [i for i in card.supported_interfaces if i.protocol_binding in BINDINGS]
    versions = {version_of(i.protocol_version or "0.3") for i in offered}
    modes = [MODE_ALIASES.get(mode, mode) for mode in card.default_input_modes]
    return SessionPeer(
        kind="remote",
        url=url,
        name=card.name,
        description=card.description,
        capabilities=[skill.id for skill in card.skills],
        protocol_versions=[v for v in PROTOCOL_VERSIONS if v in versions],
        content_types=list(dict.fromkeys(modes)) or [TEXT],
    )


async def _active_agent(db: TenantScope, agent_id: str, field: str) -> Agent:
    row = await db.find(Agent, agent_id)
    if row is None:
        raise AgentNotFound(f"Agent {agent_id} not found", details={"field": field})
    if row.status != "active":
        raise InvalidInput(
            f"Agent {agent_id} is {row.status}, not active", details={"field": field}
        )
    return row


def _agent_peer(row: Agent) -> SessionPeer:
    return SessionPeer(
        kind="agent",
        id=row.id,
        name=row.name,
        description=row.description,
        capabilities=list(row.capabilities or []),
        protocol_versions=list(PROTOCOL_VERSIONS),
        content_types=list(AGENT_CONTENT_TYPES),
    )


def capabilities_of(source: SessionPeer, target: SessionPeer) -> dict[str, Any]:
    """The row's ``capabilities``: each side's, what they share, and the peers."""
    return {
        "source": source.capabilities,
        "target": target.capabilities,
        "shared": [c for c in source.capabilities if c in target.capabilities],
        "protocol_versions": common_versions(source, target),
        "content_types": common_content_types(source, target),
        "peers": {
            "source": source.model_dump(mode="json"),
            "target": target.model_dump(mode="json"),
        },
    }


def limits_of(limits: SessionLimits, *, negotiated: bool) -> dict[str, Any]:
    return {**limits.model_dump(mode="json"), "negotiated": negotiated}


# --- negotiating and talking ---------------------------------------------------


async def negotiate(
    db: TenantScope, client: Client, session_id: str, asked: SessionNegotiation
) -> tuple[A2ASession, SessionLimits]:
    """Agree the session's parameters (the run refuses what it cannot agree to)."""
    row = await _open_row(db, session_id)
    handle = client.get_workflow_handle_for(A2AExchangeWorkflow.run, row.workflow_id)
    with _refusals(session_id):
        agreed = await handle.execute_update(
            A2AExchangeWorkflow.negotiate, asked, rpc_timeout=UPDATE_TIMEOUT
        )
    return row, agreed


async def send_message(
    db: TenantScope, client: Client, principal: Principal, session_id: str, content: Content
) -> SessionReply:
    """Deliver one message of the source agent to the target; its reply."""
    row = await _open_row(db, session_id)
    maxima = SessionMaxima()
    size = message_size(content)
    if size > maxima.max_message_size:  # over any session's limit: not worth a round trip
        raise A2ASessionRefused(
            "A2A_MESSAGE_TOO_LARGE",
            f"the message has {size} bytes; the server allows {maxima.max_message_size}",
            details={"limit": "max_message_size", "max_message_size": maxima.max_message_size,
                     "size": size},
        )  # fmt: skip
    handle = client.get_workflow_handle_for(A2AExchangeWorkflow.run, row.workflow_id)
    with _refusals(session_id):
        return await handle.execute_update(
            A2AExchangeWorkflow.message,
            SessionMessage(content=content, sent_by=principal.user_id),
            rpc_timeout=MESSAGE_TIMEOUT,
        )


async def close_session(
    db: TenantScope, client: Client, session_id: str, *, reason: str = "closed by the caller"
) -> SessionRead:
    """End the session's run (after a message in flight). Closing a closed session
    changes nothing."""
    row = await session_row(db, session_id)
    await db.session.commit()
    if row.status not in OPEN_STATUSES:
        return SessionRead(row, None)
    handle = client.get_workflow_handle_for(A2AExchangeWorkflow.run, row.workflow_id)
    live: SessionView | None = None
    try:
        live = await handle.execute_update(
            A2AExchangeWorkflow.close, SessionClose(reason=reason), rpc_timeout=MESSAGE_TIMEOUT
        )
    except RPCError as exc:
        if not is_not_found(exc):
            raise
    # The run wrote the row; a run Temporal no longer knows cannot, so it is closed here.
    await db.session.refresh(row)
    if row.status in OPEN_STATUSES:
        row.status = "closed"
        await db.session.commit()
    return SessionRead(row, live)


@contextmanager
def _refusals(session_id: str) -> Iterator[None]:
    """A refusal of the run becomes the engine's error with the run's code."""
    try:
        yield
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError):
            first = cause.details[0] if cause.details else None
            details = first if isinstance(first, dict) else {}
            raise A2ASessionRefused(
                cause.type or "A2A_MESSAGE_FAILED", cause.message, details=details
            ) from None
        raise A2ASessionRefused("A2A_MESSAGE_FAILED", str(cause or exc)) from None
    except RPCError as exc:
        if is_not_found(exc):
            raise A2ASessionClosed(f"A2A session {session_id} has ended") from None
        raise


# --- reading -------------------------------------------------------------------


async def session_row(db: TenantScope, session_id: str) -> A2ASession:
    row = await db.find(A2ASession, session_id)
    if row is None:
        raise A2ASessionNotFound(f"A2A session {session_id} not found")
    return row


async def _open_row(db: TenantScope, session_id: str) -> A2ASession:
    row = await session_row(db, session_id)
    # End the read transaction: the run writes this row while the caller waits.
    await db.session.commit()
    if row.status not in OPEN_STATUSES:
        raise A2ASessionClosed(
            f"A2A session {session_id} is {row.status}", details={"status": row.status}
        )
    return row


async def list_sessions(db: TenantScope, *, status: Listing = "active") -> list[A2ASession]:
    """The tenant's sessions as last recorded, newest first (``active``: not ended)."""
    query = db.select(A2ASession)
    if status == "active":
        query = query.where(A2ASession.status.in_(sorted(OPEN_STATUSES)))
    elif status == "closed":
        query = query.where(A2ASession.status.not_in(sorted(OPEN_STATUSES)))
    query = query.order_by(A2ASession.created_at.desc(), A2ASession.id.desc()).limit(MAX_LISTED)
    return list(await db.session.scalars(query))


async def read_session(db: TenantScope, client: Client, session_id: str) -> SessionRead:
    """The session's row and, while its run can answer, its transcript."""
    row = await session_row(db, session_id)
    await db.session.commit()
    handle = client.get_workflow_handle_for(A2AExchangeWorkflow.run, row.workflow_id)
    try:
        live = await handle.query(A2AExchangeWorkflow.transcript, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError):
        live = None
    return SessionRead(row, live)


# --- the run's record ------------------------------------------------------------


async def record_session(
    sessions: async_sessionmaker[AsyncSession], record: A2ASessionRecord
) -> None:
    """Write where the session stands to its row. Idempotent, and never backwards:
    an ended session stays ended, and a record with fewer turns than the row is
    one that arrived late."""
    async with transaction(sessions) as session:
        row = await session.get(A2ASession, record.session_id)
        if row is None or row.tenant_id != record.tenant_id:
            return
        if row.status not in OPEN_STATUSES and record.status in OPEN_STATUSES:
            return
        if record.turns < row.turns:
            return
        row.status = record.status
        row.turns = record.turns
        row.cost_usd = record.cost_usd
        row.protocol_version = record.protocol_version
        row.limits = dict(record.limits)
