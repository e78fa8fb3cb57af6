"""z2's A2A sessions: a handshake between two agents, a negotiation of the
session's parameters, messages, and the sessions themselves.

- ``POST /api/v1/a2a/handshake`` opens a session (an ``A2AExchangeWorkflow`` run).
- ``POST /api/v1/a2a/negotiate`` agrees its parameters (the run may refuse: 422).
- ``POST /api/v1/a2a/message`` delivers a message and answers with the reply.
- ``GET /api/v1/a2a/sessions`` lists the tenant's sessions (``?status=``),
  ``GET /api/v1/a2a/sessions/{id}`` reads one with its transcript, and
  ``DELETE /api/v1/a2a/sessions/{id}`` closes it.

Talking to agents needs ``ai:chat`` (the target's model answers at the tenant's
cost); reading sessions needs ``agents:read``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.deps import Caller, TemporalDep, requires
from api.envelope import Envelope, ok
from api.schemas.a2a_sessions import (
    HandshakeRequest,
    MessageReplyPublic,
    MessageRequest,
    NegotiatedPublic,
    NegotiateRequest,
    SessionDetailPublic,
    SessionPublic,
    SessionsPublic,
)
from engine.a2a import sessions
from workflows.a2a_exchange_payloads import SessionMaxima, SessionNegotiation

router = APIRouter(prefix="/api/v1/a2a", tags=["a2a"])

Talker = Annotated[Caller, requires("ai:chat")]
Reader = Annotated[Caller, requires("agents:read")]


@router.post(
    "/handshake",
    status_code=201,
    response_model=Envelope[SessionPublic],
    summary="Open an A2A session between one of your agents and another agent",
)
async def create_handshake(
    request: Request, body: HandshakeRequest, caller: Talker, temporal: TemporalDep
) -> JSONResponse:
    row = await sessions.handshake(
        caller.db,
        temporal,
        caller.settings,
        caller.principal,
        source_agent_id=body.source_agent_id,
        target_agent_id=body.target_agent_id,
        target_agent_url=body.target_agent_url,
        capabilities=body.capabilities,
    )
    return ok(SessionPublic.of(row), request_id=request.state.request_id, status_code=201)


@router.post(
    "/negotiate",
    response_model=Envelope[NegotiatedPublic],
    summary="Agree a session's protocol version, content types and limits",
)
async def negotiate_session(
    request: Request, body: NegotiateRequest, caller: Talker, temporal: TemporalDep
) -> JSONResponse:
    asked = SessionNegotiation.model_validate(body.model_dump(exclude={"session_id"}))
    row, agreed = await sessions.negotiate(caller.db, temporal, body.session_id, asked)
    data = NegotiatedPublic(
        **agreed.model_dump(),
        negotiated=True,
        session_id=row.id,
        status="active" if row.status == "active" else "negotiated",
        maxima=SessionMaxima(),
    )
    return ok(data, request_id=request.state.request_id)


@router.post(
    "/message",
    response_model=Envelope[MessageReplyPublic],
    summary="Send a message to the session's target agent and get its reply",
)
async def send_message(
    request: Request, body: MessageRequest, caller: Talker, temporal: TemporalDep
) -> JSONResponse:
    reply = await sessions.send_message(
        caller.db, temporal, caller.principal, body.session_id, body.content
    )
    data = MessageReplyPublic.model_validate(reply.model_dump())
    return ok(data, request_id=request.state.request_id)


@router.get(
    "/sessions",
    response_model=Envelope[SessionsPublic],
    summary="Your A2A sessions (active ones unless ?status= says otherwise)",
)
async def read_sessions(
    request: Request,
    caller: Reader,
    status: Annotated[sessions.Listing, Query()] = "active",
) -> JSONResponse:
    rows = await sessions.list_sessions(caller.db, status=status)
    data = SessionsPublic(sessions=[SessionPublic.of(row) for row in rows], total=len(rows))
    return ok(data, request_id=request.state.request_id)


@router.get(
    "/sessions/{session_id}",
    response_model=Envelope[SessionDetailPublic],
    summary="An A2A session with its recent transcript",
)
async def read_session(
    request: Request, session_id: str, caller: Reader, temporal: TemporalDep
) -> JSONResponse:
    found = await sessions.read_session(caller.db, temporal, session_id)
    data = SessionDetailPublic.read(found.row, found.live)
    return ok(data, request_id=request.state.request_id)


@router.delete(
    "/sessions/{session_id}",
    response_model=Envelope[SessionDetailPublic],
    summary="Close an A2A session (ends its run)",
)
async def close_session(
    request: Request, session_id: str, caller: Talker, temporal: TemporalDep
) -> JSONResponse:
    closed = await sessions.close_session(caller.db, temporal, session_id)
    data = SessionDetailPublic.read(closed.row, closed.live)
    return ok(data, request_id=request.state.request_id)
