"""Payloads of ``A2AExchangeWorkflow`` (z2's A2A sessions) and of its activity
``record_a2a_session``, and the pure rules both the API and the run apply.

A session joins a source agent (one of the tenant's) to a target: another of
the tenant's agents, or a remote A2A agent reached by its card URL. The
handshake fixes who they are and what each supports (``SessionPeer``); a
negotiation agrees the session's parameters within the server's maxima
(``SessionLimits``, ``SessionMaxima``); each message is one turn.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

# The A2A protocol versions this deployment speaks, preferred first.
PROTOCOL_VERSIONS: tuple[str, ...] = ("1.0", "0.3")
TEXT = "text/plain"
JSON = "application/json"
# What one of the tenant's agents takes: text, or a JSON object (handed over as text).
AGENT_CONTENT_TYPES: tuple[str, ...] = (TEXT, JSON)

SessionStatus = Literal["handshake", "negotiated", "active", "closed", "failed"]
OPEN_STATUSES = frozenset({"handshake", "negotiated", "active"})
PeerKind = Literal["agent", "remote"]
Sender = Literal["source", "target"]
Content = str | dict[str, Any]

# Error types (ApplicationError.type) the run rejects a negotiation or a message with.
SESSION_CLOSED = "A2A_SESSION_CLOSED"
LIMIT_EXCEEDED = "A2A_LIMIT_EXCEEDED"
MESSAGE_TOO_LARGE = "A2A_MESSAGE_TOO_LARGE"
UNSUPPORTED_CONTENT = "UNSUPPORTED_MEDIA_TYPE"
INVALID = "VALIDATION_ERROR"


def content_type_of(content: Content) -> str:
    return TEXT if isinstance(content, str) else JSON


def content_text(content: Content) -> str:
    """The content as the text a model (or a remote agent's text part) reads."""
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False, sort_keys=True)


def message_size(content: Content) -> int:
    """The size a limit counts: the UTF-8 bytes of the text, or of the compact JSON."""
    if isinstance(content, str):
        return len(content.encode())
    return len(json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode())


class SessionPeer(BaseModel):
    """One side of a session as the handshake found it.

    ``kind`` ``agent``: one of the tenant's agents (``id``); ``remote``: a remote
    A2A agent whose card is at ``url``. ``capabilities`` are the agent's
    capabilities (a remote agent's skill ids); ``protocol_versions`` and
    ``content_types`` what it can be spoken to with.
    """

    kind: PeerKind
    id: str | None = None
    url: str | None = None
    name: str = ""
    description: str = ""
    capabilities: list[str] = Field(default_factory=list)
    protocol_versions: list[str] = Field(default_factory=lambda: list(PROTOCOL_VERSIONS))
    content_types: list[str] = Field(default_factory=lambda: list(AGENT_CONTENT_TYPES))


class SessionMaxima(BaseModel):
    """The most a session may agree to (the server's limits)."""

    max_message_size: int = 32_768  # bytes of one message
    max_turns: int = 200
    budget_usd: float = 10.0


class SessionLimits(BaseModel):
    """The session's parameters: the handshake's defaults until a negotiation agrees others."""

    protocol_version: str
    content_types: list[str]
    max_message_size: int
    max_turns: int
    budget_usd: float | None = None  # None: only the server's maximum applies


class SessionNegotiation(BaseModel):
    """The ``negotiate`` update: the parameters asked for (None: keep the current one)."""

    protocol_version: str | None = None
    content_types: list[str] | None = None
    max_message_size: int | None = None
    max_turns: int | None = None
    budget_usd: float | None = None


class SessionMessage(BaseModel):
    """The ``message`` update: what the source agent says to the target."""

    content: Content
    sent_by: str


class SessionClose(BaseModel):
    """The ``close`` update."""

    reason: str = "closed by the caller"


class SessionEntry(BaseModel):
    """One message of the transcript."""

    message_id: str
    turn: int
    sender: Sender
    content: Content
    at: str  # ISO 8601, the run's clock
    model: str | None = None
    cost_usd: float = 0.0
    tokens_used: int = 0
    state: str | None = None  # a remote agent's task state for its reply


class ExchangeState(BaseModel):
    """What a run hands the next when it continues as new (and what the query shows).

    ``transcript`` holds the most recent entries only; ``dropped`` counts the
    earlier ones no longer held.
    """

    status: SessionStatus = "handshake"
    limits: SessionLimits
    negotiated: bool = False
    turns: int = 0
    cost_usd: float = 0.0
    tokens_used: int = 0
    transcript: list[SessionEntry] = Field(default_factory=list)
    dropped: int = 0
    remote_context_id: str | None = None
    remote_task_id: str | None = None  # a remote task that waits for input
    runs: int = 1  # this run's number (1 + how often the session continued as new)
    closed_reason: str | None = None
    updated_at: str = ""


class A2AExchangeInput(BaseModel):
    """The run's input: the session as the handshake made it.

    ``turns_per_run``: after this many turns a run continues as new (Temporal may
    suggest it sooner); ``transcript_window``: how many recent entries the state
    keeps; ``context_chars``: how much of them the target agent reads each turn;
    ``idle_timeout_seconds``: a session without a message for this long closes.
    ``state`` is the previous run's, when this run continues a session.
    """

    session_id: str
    tenant_id: str
    started_by: str
    source: SessionPeer
    target: SessionPeer
    limits: SessionLimits
    maxima: SessionMaxima = Field(default_factory=SessionMaxima)
    turns_per_run: int = Field(default=50, ge=1)
    transcript_window: int = Field(default=50, ge=2)
    context_chars: int = Field(default=48_000, ge=1)
    idle_timeout_seconds: float = Field(default=7 * 86_400, gt=0)
    state: ExchangeState | None = None


class SessionReply(BaseModel):
    """The ``message`` update's result: the target's reply and where the session stands."""

    session_id: str
    message_id: str
    reply_message_id: str
    reply: str
    turn: int
    cost_usd: float
    tokens_used: int
    model: str | None = None
    state: str | None = None  # a remote agent's task state
    turns: int
    max_turns: int
    total_cost_usd: float
    budget_usd: float | None = None


class SessionView(BaseModel):
    """The session as its run sees it (the ``transcript`` query, the ``close`` result)."""

    session_id: str
    status: SessionStatus
    source: SessionPeer
    target: SessionPeer
    limits: SessionLimits
    maxima: SessionMaxima
    negotiated: bool
    turns: int
    cost_usd: float
    tokens_used: int
    transcript: list[SessionEntry]
    dropped: int
    runs: int
    closed_reason: str | None = None
    updated_at: str


class A2ASessionRecord(BaseModel):
    """Where a session stands, for its row (written after each change)."""

    tenant_id: str
    session_id: str
    status: SessionStatus
    protocol_version: str
    limits: dict[str, Any]
    turns: int
    cost_usd: float


def default_limits(
    source: SessionPeer, target: SessionPeer, maxima: SessionMaxima
) -> SessionLimits:
    """The parameters a session starts with: the first protocol version and every
    content type both sides support, and the server's maxima."""
    versions = common_versions(source, target)
    return SessionLimits(
        protocol_version=versions[0] if versions else PROTOCOL_VERSIONS[0],
        content_types=common_content_types(source, target),
        max_message_size=maxima.max_message_size,
        max_turns=maxima.max_turns,
        budget_usd=None,
    )


def common_versions(source: SessionPeer, target: SessionPeer) -> list[str]:
    both = set(source.protocol_versions) & set(target.protocol_versions)
    return [version for version in PROTOCOL_VERSIONS if version in both]


def common_content_types(source: SessionPeer, target: SessionPeer) -> list[str]:
    return [t for t in source.content_types if t in target.content_types]
