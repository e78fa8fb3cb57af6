"""z2's A2A sessions as the API shows them (``/api/v1/a2a/handshake``, ``negotiate``,
``message``, ``sessions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from engine.db.tables import A2ASession
from workflows.a2a_exchange_payloads import (
    SessionEntry,
    SessionLimits,
    SessionMaxima,
    SessionPeer,
    SessionReply,
    SessionView,
)

Label = Annotated[str, StringConstraints(min_length=1, max_length=100)]
SessionId = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class HandshakeRequest(BaseModel):
    """Open a session: the source is one of your agents; the target another of
    them (``target_agent_id``) or a remote A2A agent (``target_agent_url``: its
    card's URL or its base URL)."""

    # Exactly one target (``_one_target``), as the schema says.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": [key], "properties": {key: {"type": "string"}}}
                for key in ("target_agent_id", "target_agent_url")
            ]
        }
    )

    source_agent_id: SessionId
    target_agent_id: SessionId | None = None
    target_agent_url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None
    capabilities: list[Label] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _one_target(self) -> HandshakeRequest:
        if (self.target_agent_id is None) == (self.target_agent_url is None):
            raise ValueError("give target_agent_id or target_agent_url (one of them)")
        return self


class NegotiateRequest(BaseModel):
    """The parameters asked for; those left out keep their current value."""

    session_id: SessionId
    protocol_version: Annotated[str, StringConstraints(max_length=20)] | None = None
    content_types: list[Label] | None = Field(default=None, min_length=1, max_length=20)
    max_message_size: StrictInt | None = Field(default=None, gt=0)
    max_turns: StrictInt | None = Field(default=None, gt=0)
    budget_usd: StrictFloat | None = Field(default=None, gt=0)


class MessageRequest(BaseModel):
    """One message of the source agent: text, or a JSON object."""

    session_id: SessionId
    content: Annotated[str, Field(min_length=1)] | Annotated[dict[str, Any], Field(min_length=1)]

    @field_validator("content")
    @classmethod
    def _not_empty(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        if not value:
            raise ValueError("a message needs content")
        return value


class CapabilitiesPublic(BaseModel):
    source: list[str]
    target: list[str]
    shared: list[str]
    protocol_versions: list[str]
    content_types: list[str]


class LimitsPublic(SessionLimits):
    negotiated: bool = False


class SessionPublic(BaseModel):
    """A session as its row records it."""

    session_id: str
    status: str
    workflow_id: str
    source_agent: SessionPeer
    target_agent: SessionPeer
    capabilities: CapabilitiesPublic
    protocol_version: str | None
    limits: LimitsPublic
    turns: int
    cost_usd: float
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: A2ASession) -> SessionPublic:
        caps = dict(row.capabilities or {})
        peers = caps.get("peers") or {}
        source = peers.get("source") or {"kind": "agent", "id": row.source_agent_id}
        target = peers.get("target") or (
            {"kind": "agent", "id": row.target_agent_id}
            if row.target_agent_id
            else {"kind": "remote", "url": row.target_agent_url}
        )
        return cls(
            session_id=row.id,
            status=row.status,
            workflow_id=row.workflow_id,
            source_agent=SessionPeer.model_validate(source),
            target_agent=SessionPeer.model_validate(target),
            capabilities=CapabilitiesPublic(
                source=list(caps.get("source") or []),
                target=list(caps.get("target") or []),
                shared=list(caps.get("shared") or []),
                protocol_versions=list(caps.get("protocol_versions") or []),
                content_types=list(caps.get("content_types") or []),
            ),
            protocol_version=row.protocol_version,
            limits=LimitsPublic.model_validate(row.limits),
            turns=row.turns,
            cost_usd=row.cost_usd,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class SessionsPublic(BaseModel):
    sessions: list[SessionPublic]
    total: int


class SessionDetailPublic(SessionPublic):
    """A session with its recent transcript. While its run answers (``live``), the
    run's account wins over the row's."""

    live: bool
    tokens_used: int | None = None
    transcript: list[SessionEntry] = Field(default_factory=list)
    transcript_dropped: int = 0
    runs: int | None = None
    closed_reason: str | None = None
    maxima: SessionMaxima | None = None

    @classmethod
    def read(cls, row: A2ASession, live: SessionView | None) -> SessionDetailPublic:
        base = SessionPublic.of(row).model_dump()
        if live is None:
            return cls(**base, live=False)
        base.update(
            status=live.status,
            protocol_version=live.limits.protocol_version,
            limits=LimitsPublic(**live.limits.model_dump(), negotiated=live.negotiated),
            turns=live.turns,
            cost_usd=live.cost_usd,
        )
        return cls(
            **base,
            live=True,
            tokens_used=live.tokens_used,
            transcript=live.transcript,
            transcript_dropped=live.dropped,
            runs=live.runs,
            closed_reason=live.closed_reason,
            maxima=live.maxima,
        )


class NegotiatedPublic(LimitsPublic):
    """The parameters both sides now hold to (``maxima``: the server's)."""

    session_id: str
    status: str
    maxima: SessionMaxima


class MessageReplyPublic(SessionReply):
    """The target's reply to one message, and where the session stands."""
