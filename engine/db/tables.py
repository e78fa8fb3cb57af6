"""SQLAlchemy models. Every row a user owns carries ``tenant_id``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from engine.platform.ids import new_id


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Tenant(Timestamped, Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ten"))
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    labels: Mapped[list[str]] = mapped_column(default=list)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)


class User(Timestamped, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("email"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("usr"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    full_name: Mapped[str | None] = mapped_column(String(200))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20), default="user")
    # Global administrator (all tenants, the partio admin surface); not a tenant role.
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    labels: Mapped[list[str]] = mapped_column(default=list)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_key_hash", "key_hash", unique=True),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    labels: Mapped[list[str]] = mapped_column(default=list)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    # the key that created this one (None for keys made by a signed-in user):
    # revoking a key revokes every key it created, and theirs
    parent_key_id: Mapped[str | None] = mapped_column(String(40), index=True)


class AuthSession(Base):
    """One login: the family of refresh tokens that descend from it."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ses"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_reason: Mapped[str | None] = mapped_column(String(40))


class RefreshToken(Base):
    """A refresh token's id (``jti``); the token itself is a signed JWT, never stored."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rt"))
    session_id: Mapped[str] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class EmbeddingEndpoint(Timestamped, Base):
    """A tenant's embedding provider (partio ``/v1.0/endpoints``)."""

    __tablename__ = "embedding_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ep"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str | None] = mapped_column(String(2000))
    api_format: Mapped[str] = mapped_column(String(40))
    api_key_encrypted: Mapped[str | None] = mapped_column(String(2000))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    labels: Mapped[list[str]] = mapped_column(default=list)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RequestRecord(Base):
    """One API request, for partio's request history (bodies live in the data dir)."""

    __tablename__ = "request_history"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rq"))
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    principal_id: Mapped[str | None] = mapped_column(String(40))
    request_id: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2000))
    query: Mapped[str | None] = mapped_column(String(2000))
    status_code: Mapped[int] = mapped_column()
    duration_ms: Mapped[float] = mapped_column()
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    request_body_bytes: Mapped[int] = mapped_column(default=0)
    response_body_bytes: Mapped[int] = mapped_column(default=0)
    has_detail: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class File(Timestamped, Base):
    """An uploaded file; its bytes live in blob storage under ``blob_key``."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("file"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str | None] = mapped_column(String(200), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="uploaded")
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(String(1000))
    pages: Mapped[int | None] = mapped_column()
    chunks: Mapped[int | None] = mapped_column()
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    # What the last processing run found (its result outlives Temporal's retention).
    ocr_pages: Mapped[int | None] = mapped_column()
    ocr_excerpt: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    uploaded_by: Mapped[str | None] = mapped_column(String(40))
    processed_at: Mapped[datetime | None] = mapped_column()


class Chunk(Base):
    """A piece of a file's text; ``(file_id, chunk_index)`` names it across re-runs."""

    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("file_id", "chunk_index"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("chk"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    chunk_index: Mapped[int] = mapped_column()
    page: Mapped[int | None] = mapped_column()
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChunkVector(Base):
    """One embedding of a chunk by one model (float32 bytes)."""

    __tablename__ = "chunk_vectors"
    __table_args__ = (Index("ix_chunk_vectors_tenant_model", "tenant_id", "model"),)

    chunk_id: Mapped[str] = mapped_column(
        ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str | None] = mapped_column(String(200))
    dim: Mapped[int] = mapped_column()
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class IndexGeneration(Base):
    """Bumped with every change to a (tenant, model) index, so readers know to reload."""

    __tablename__ = "index_generations"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageRecord(Base):
    """One model call: the ledger behind usage, costs and budgets."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("use"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))  # chat, embedding, rag, agent, route, test
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    latency_ms: Mapped[float] = mapped_column(default=0.0)
    cost_usd: Mapped[float] = mapped_column(default=0.0)
    success: Mapped[bool] = mapped_column(Boolean, default=True)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(60))
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(128))
    # Idempotency: an activity retried after recording does not count twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantBudget(Timestamped, Base):
    __tablename__ = "tenant_budgets"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    monthly_limit_usd: Mapped[float] = mapped_column()
    hard_limit: Mapped[bool] = mapped_column(Boolean, default=True)


class ModelProvider(Timestamped, Base):
    """An LLM/embedding provider configured at run time (z2's providers list).

    Deployment-wide, like settings: managed by global administrators only.
    """

    __tablename__ = "model_providers"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("prov"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # ollama, openai, local
    base_url: Mapped[str | None] = mapped_column(String(2000))
    api_key_encrypted: Mapped[str | None] = mapped_column(String(2000))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    priority: Mapped[int] = mapped_column(default=100)
    # [{"id", "name", "capabilities", "context_window", "cost_per_1k_input", ...}]
    models: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Event(Base):
    """The outbox of engine events (file.uploaded, workflow.completed, …).

    Written in the same transaction as the change it reports, so an event exists
    exactly when its change does; webhook delivery reads from here.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_tenant_created", "tenant_id", "created_at"),
        Index("ix_events_tenant_subject_seq", "tenant_id", "subject", "seq"),
        # What the dispatcher has sequenced but not yet handed to webhooks and streams.
        Index(
            "ix_events_undispatched",
            "seq",
            sqlite_where=text("dispatched_at IS NULL"),
            postgresql_where=text("dispatched_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("evt"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(60))
    # What the event is about (an execution or file id): one run's stream filters on it.
    subject: Mapped[str | None] = mapped_column(String(120))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Idempotency for events emitted by activities that may run twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The stream position, given by the one dispatcher in commit order (so a
    # reader resuming after position N misses nothing), and when it was handed on.
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    dispatched_at: Mapped[datetime | None] = mapped_column()


class Webhook(Timestamped, Base):
    """A tenant's subscription: events of these types are POSTed, signed, to ``url``."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("whk"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(default=list)
    description: Mapped[str | None] = mapped_column(String(500))
    # Encrypted at rest: signing needs the secret itself.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | disabled
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str | None] = mapped_column(String(40))


class WebhookDelivery(Base):
    """One attempt to deliver one event to one webhook (the delivery log)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at"),
        UniqueConstraint("webhook_id", "event_id", "attempt"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("dlv"))
    tenant_id: Mapped[str] = mapped_column(String(40))
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(60))
    attempt: Mapped[int] = mapped_column()
    # delivered | retrying | failed | gone (410) | skipped (webhook no longer active)
    status: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(String(500))
    latency_ms: Mapped[int | None] = mapped_column()
    next_retry_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Callback(Base):
    """A one-time URL an external system calls to wake a waiting workflow.

    The token in the URL is stored hashed; the signing secret is encrypted.
    """

    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("cbk"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    workflow_id: Mapped[str] = mapped_column(String(200))
    signal: Mapped[str] = mapped_column(String(100))
    # Idempotency: one callback per (workflow, key), e.g. an execution's step.
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="waiting")  # waiting | received
    received_message_id: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Timestamped, Base):
    """An LLM agent (z2 and sutazai): a role, a system prompt and model preferences."""

    __tablename__ = "agents"
    __table_args__ = (Index("ix_agents_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("agt"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))  # researcher, writer, coder, analyst, validator
    description: Mapped[str] = mapped_column(Text, default="")
    capabilities: Mapped[list[str]] = mapped_column(default=list)
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    # model_preferences {primary, fallback}, temperature, max_tokens, tools, memory_size
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_by: Mapped[str | None] = mapped_column(String(40))


class PipelineDefinitionRow(Timestamped, Base):
    """A stored workflow definition. ``definition`` is the normalised DAG that runs;
    ``source`` and ``raw`` keep the shape the client sent (z2 ``graph`` or auterity
    ``steps``), so each seed reads back what it wrote. Deleting is soft."""

    __tablename__ = "pipeline_definitions"
    __table_args__ = (Index("ix_pipeline_definitions_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("wf"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="active")
    source: Mapped[str] = mapped_column(String(20))  # graph, steps, code, template
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[str | None] = mapped_column(String(40))
    deleted_at: Mapped[datetime | None] = mapped_column()


class Execution(Timestamped, Base):
    """The index of pipeline executions (listing, analytics, reading after Temporal's
    retention); Temporal holds the truth while a run is open."""

    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_executions_tenant_created", "tenant_id", "created_at"),
        Index("ix_executions_definition", "definition_id"),
        Index("ix_executions_tenant_subject", "tenant_id", "data_subject_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("exe"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    definition_id: Mapped[str | None] = mapped_column(String(40))
    workflow_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), default="pipeline")  # pipeline, task
    status: Mapped[str] = mapped_column(String(20), default="running")
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    input_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    total_steps: Mapped[int] = mapped_column(default=0)
    scheduled_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    tokens_used: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[float] = mapped_column(default=0.0)
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(String(2000))
    # Per-step results once the run is over: status, output, error, tokens, cost.
    results: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(String(40))
    # z2 consent: whose data a run that declares data categories processes, and
    # those categories (a revoked consent stops the subject's runs that touch them).
    data_subject_id: Mapped[str | None] = mapped_column(String(40))
    data_categories: Mapped[list[str] | None] = mapped_column()


class EmailMessage(Base):
    """An e-mail a pipeline step sent: delivered over SMTP when configured, and kept
    here either way (``status`` ``sent`` or ``stored``), so it is never silently lost."""

    __tablename__ = "email_outbox"
    __table_args__ = (Index("ix_email_outbox_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mail"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    execution_id: Mapped[str | None] = mapped_column(String(40))
    step_id: Mapped[str | None] = mapped_column(String(100))
    to: Mapped[list[str]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="stored")  # stored, sent, failed
    error: Mapped[str | None] = mapped_column(String(1000))
    # One message per (execution, step), however often the activity runs.
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class A2ATask(Timestamped, Base):
    """An A2A task served here: the index row of its ``A2ATaskWorkflow`` (the
    workflow holds the live state; this row lists tasks and survives restarts)."""

    __tablename__ = "a2a_tasks"
    __table_args__ = (
        Index("ix_a2a_tasks_tenant_created", "tenant_id", "created_at"),
        Index("ix_a2a_tasks_tenant_context", "tenant_id", "context_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    context_id: Mapped[str] = mapped_column(String(64))
    # What answers it: one of the tenant's agents, or a published pipeline.
    target_kind: Mapped[str] = mapped_column(String(20))  # agent | pipeline
    target_id: Mapped[str] = mapped_column(String(40))
    # submitted | working | input-required | completed | failed | canceled | rejected
    state: Mapped[str] = mapped_column(String(30), default="submitted")
    workflow_id: Mapped[str] = mapped_column(String(200))
    # The task as A2A shows it (status message, artifacts, history) at its last change.
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(String(40))


class A2APushConfig(Timestamped, Base):
    """Where to push a task's updates (delivered like webhooks, signed)."""

    __tablename__ = "a2a_push_configs"
    __table_args__ = (Index("ix_a2a_push_configs_task", "task_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(ForeignKey("a2a_tasks.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    # The client's token, sent back on each push; encrypted at rest.
    token_encrypted: Mapped[str | None] = mapped_column(Text)
    authentication: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The webhook that carries the pushes (its secret signs them).
    webhook_id: Mapped[str | None] = mapped_column(String(40))


class A2ASession(Timestamped, Base):
    """A z2 A2A session between two agents (``A2AExchangeWorkflow`` ``a2a-{id}``)."""

    __tablename__ = "a2a_sessions"
    __table_args__ = (Index("ix_a2a_sessions_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("a2s"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source_agent_id: Mapped[str] = mapped_column(String(40))
    target_agent_id: Mapped[str | None] = mapped_column(String(40))
    target_agent_url: Mapped[str | None] = mapped_column(String(2048))
    # handshake | negotiated | active | closed | failed
    status: Mapped[str] = mapped_column(String(20), default="handshake")
    protocol_version: Mapped[str | None] = mapped_column(String(20))
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    turns: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[float] = mapped_column(default=0.0)
    workflow_id: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(String(40))


class McpSession(Timestamped, Base):
    """A z2 MCP session: a named context a client works in."""

    __tablename__ = "mcp_sessions"
    __table_args__ = (Index("ix_mcp_sessions_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mcs"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | closed
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tools_used: Mapped[int] = mapped_column(default=0)
    last_active_at: Mapped[datetime | None] = mapped_column()


class Command(Timestamped, Base):
    """A zentoria natural-language command (``CommandWorkflow`` ``cmd-{id}``)."""

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("cmd"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(40))
    command: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    intent: Mapped[str | None] = mapped_column(String(60))
    entities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # processing | completed | failed
    status: Mapped[str] = mapped_column(String(20), default="processing")
    interpreted_by: Mapped[str | None] = mapped_column(String(200))  # a model, or "rules"
    workflow_id: Mapped[str | None] = mapped_column(String(200))  # the run it started
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column()


class Consent(Timestamped, Base):
    """z2 consent: a request to process categories of a user's data, and its answer."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_tenant_user", "tenant_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("cns"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(40))  # whose data
    request_type: Mapped[str] = mapped_column(String(60))
    description: Mapped[str | None] = mapped_column(Text)
    data_categories: Mapped[list[str]] = mapped_column(default=list)
    purpose: Mapped[str] = mapped_column(String(200))
    retention_period: Mapped[str | None] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|granted|revoked
    requested_by: Mapped[str | None] = mapped_column(String(40))
    granted_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
