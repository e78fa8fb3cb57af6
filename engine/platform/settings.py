"""The one Settings object.

Every knob is read here, once, from the environment (``WEFT_`` prefix, plus the
conventional unprefixed names ``DATABASE_URL``, ``REDIS_URL``,
``TEMPORAL_ADDRESS`` and ``TEMPORAL_NAMESPACE``) or from a ``.env`` file.
Nothing else in the code base calls ``os.getenv``.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MIN_SECRET_LENGTH = 32
DEFAULT_RATE_LIMITS: dict[str, int] = {
    "login": 5,
    "refresh": 10,
    "mcp": 100,
    "ai_chat": 20,
    "ai_embeddings": 50,
    "workflow_execute": 20,
    # Requests per client address answered 401 despite carrying a credential:
    # past this, that address is refused for the window (key and token guessing).
    "auth_failures": 30,
    "default": 1000,
}
JWT_SECRET_FILE = "jwt_secret"
ENCRYPTION_KEY_FILE = "encryption_key"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SettingsError(Exception):
    """Settings that cannot be used; the message is one line, fit for a terminal."""


def _alias(name: str) -> AliasChoices:
    return AliasChoices(f"WEFT_{name}", name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WEFT_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    # --- runtime -----------------------------------------------------------
    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path(".weft")
    log_level: str = "INFO"

    # --- storage -------------------------------------------------------------
    database_url: str = Field(default="", validation_alias=_alias("DATABASE_URL"))
    redis_url: str | None = Field(default=None, validation_alias=_alias("REDIS_URL"))

    # --- Temporal ------------------------------------------------------------
    temporal_address: str | None = Field(default=None, validation_alias=_alias("TEMPORAL_ADDRESS"))
    temporal_namespace: str = Field(
        default="default", validation_alias=_alias("TEMPORAL_NAMESPACE")
    )
    temporal_dev_port: int = Field(default=7233, ge=1, le=65535)
    task_queue_prefix: str = Field(default="", max_length=40, pattern=r"^[A-Za-z0-9._-]*$")
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)

    # --- HTTP API ------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64)  # `weft api` processes on the port
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_request_bytes: int = Field(default=1_048_576, gt=0)
    max_upload_bytes: int = Field(default=104_857_600, gt=0)
    # Caps on one document's processing: past any of them the run fails at once
    # with DOCUMENT_TOO_LARGE (a few KB of PDF can name thousands of pages).
    max_document_pages: int = Field(default=2_000, gt=0)
    max_document_chunks: int = Field(default=20_000, gt=0)
    max_document_chars: int = Field(default=20_000_000, gt=0)
    # Reverse proxies whose X-Forwarded-For/-Proto `weft api` believes (addresses or
    # CIDRs, comma-separated; "*" for any). Empty: the client is the connection's
    # peer, whatever a request claims (rate limits and request history use it).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The address clients reach the API at (``https://api.example.com``): absolute
    # URLs in answers and events (file ``url``) start with it. Unset: the request's
    # own base URL (events raised outside a request then carry the path only).
    public_base_url: str | None = None

    # --- security ------------------------------------------------------------
    jwt_secret: str | None = Field(default=None, repr=False)
    # Keys that encrypt the secrets kept in the database (provider and endpoint API
    # keys, webhook secrets, push tokens): the first encrypts, every one decrypts.
    # Rotate by putting a new key first, running `weft admin rotate-secrets`, then
    # dropping the old one. Each is a Fernet key or a passphrase of 32+ characters.
    # Unset in development: one is generated in the data directory and kept.
    encryption_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    jwt_issuer: str = "weftworks"
    jwt_audience: str = "weftworks-api"
    access_token_ttl_seconds: int = Field(default=900, gt=0)
    refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    allow_registration: bool = True
    # How long a resolved API key or token is trusted without a database look
    # (0: never). A change on this process takes effect at once regardless.
    principal_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # Partio-style global admin keys (``Authorization: Bearer <key>``); comma-separated.
    admin_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)

    # --- rate limits (requests per window, per route group and principal) -----
    rate_limits_enabled: bool = True
    rate_limit_window_seconds: int = Field(default=60, gt=0)
    rate_limits: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    # What limited routes do when REDIS_URL is set but Redis is down:
    # "memory" counts in-process instead; "fail_closed" answers 503.
    rate_limit_redis_failure: Literal["memory", "fail_closed"] = "memory"
    login_failure_limit: int = Field(default=5, gt=0)
    login_failure_window_seconds: int = Field(default=900, gt=0)

    # --- models ----------------------------------------------------------------
    # Providers from settings (more can be added at run time through the API):
    # {"ollama": {"kind": "ollama", "base_url": "http://127.0.0.1:11434"}, ...}
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    default_chat_model: str | None = None
    default_embedding_model: str = "all-MiniLM-L6-v2"
    # The local model embeds concurrent requests (several documents at once) in
    # shared passes of up to this many texts, gathered for at most this long.
    embedding_batch_size: int = Field(default=128, ge=1, le=1024)
    embedding_batch_wait_ms: float = Field(default=5.0, ge=0, le=1000)
    # RAG passages scoring below this (cosine similarity) are not relevant enough
    # to answer from; a query may ask for its own ``min_score``.
    rag_min_score: float = Field(default=0.2, ge=-1, le=1)
    # US dollars per 1,000 tokens: {"gpt-4o": {"input": 0.0025, "output": 0.01}}
    model_prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    provider_timeout_seconds: float = Field(default=60.0, gt=0)
    provider_max_response_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # Per-provider circuit breakers, chat limits and the response cache.
    model_breaker_failure_threshold: int = Field(default=3, gt=0)
    model_breaker_recovery_seconds: float = Field(default=30.0, gt=0)
    model_max_tokens: int = Field(default=32_768, gt=0)
    model_cache_ttl_seconds: int = Field(default=3600, gt=0)
    model_cache_max_entries: int = Field(default=10_000, gt=0)  # in-process cache only

    # --- blob storage ------------------------------------------------------------
    blob_store: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None  # e.g. http://minio:9000; None for AWS
    s3_bucket: str = "weftworks"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = Field(default=None, repr=False)

    # --- vector index --------------------------------------------------------------
    # "database": exact search over vectors in the SQL database (embedded default);
    # "qdrant": a Qdrant server at WEFT_QDRANT_URL (or embedded under the data dir).
    vector_index: Literal["database", "qdrant"] = "database"
    qdrant_url: str | None = None
    # "database" index: from this many vectors of one (tenant, model), an HNSW
    # graph (usearch) answers searches instead of the exact scan.
    vector_ann_threshold: int = Field(default=50_000, ge=0)

    # --- egress guard (every outbound URL a user or admin configures) ------------
    egress_allow_loopback: bool = True
    egress_allow_private: bool = False
    egress_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # URLs a tenant supplies (api_call steps, webhooks, remote agents) never reach
    # loopback, private or link-local addresses, whatever the operator's rules
    # above, unless listed here: "host", "address", "CIDR", or with a port,
    # "127.0.0.1:18931" / "[::1]:8080" / "hooks.internal:443" (that port only).
    tenant_egress_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- e-mail (pipeline email steps) --------------------------------------------
    # Without an SMTP host, messages are kept in the e-mail outbox (readable through
    # the API) instead of being sent; they are never silently dropped.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool = True
    smtp_from: str = "weftworks@localhost"

    # --- events, webhooks and streams ----------------------------------------------
    # Delivery attempts of one event to one webhook: when each is due, in seconds
    # after the event (about a day in all), each wait stretched by up to
    # ``webhook_retry_jitter``.
    webhook_retry_schedule_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    )
    webhook_retry_jitter: float = Field(default=0.2, ge=0, le=1)
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    webhook_max_response_bytes: int = Field(default=65_536, gt=0)
    # A webhook whose deliveries of this many events in a row all failed is disabled.
    webhook_disable_after_failures: int = Field(default=10, gt=0)
    # The dispatcher's activity watches the outbox for event_watch_seconds,
    # looking for new events every event_check_seconds (one indexed query), so
    # events cost Temporal nothing each. Between watches (only in histories from
    # before watching) it waits for a ring or event_poll_seconds. Streams without
    # Redis read new events from the database every event_stream_poll_seconds.
    event_watch_seconds: float = Field(default=60.0, gt=0, le=90)
    event_check_seconds: float = Field(default=0.25, gt=0)
    event_poll_seconds: float = Field(default=5.0, gt=0)
    event_stream_poll_seconds: float = Field(default=0.25, gt=0)
    # A process rings the doorbell (a signal-with-start that makes sure the
    # dispatcher runs) at most this often; rings meanwhile share the next one.
    event_wake_interval_seconds: float = Field(default=30.0, ge=0)
    # Inbound callbacks: how long a callback URL stays valid. (A signed request's
    # timestamp may be at most five minutes off, the Standard Webhooks tolerance.)
    callback_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)

    # --- request history (partio /v1.0/requests) --------------------------------
    request_history_enabled: bool = True
    request_history_body_cap_bytes: int = Field(default=65_536, ge=0)
    request_history_retention_days: int = Field(default=7, gt=0)

    # --- observability -------------------------------------------------------------
    # "json": one JSON object a line (timestamp, level, logger, message, request_id,
    # tenant_id, workflow_id, activity); "text": the plain lines of old.
    log_format: Literal["text", "json"] = "text"
    # /metrics answers an admin credential, or this bearer token (for scrapers).
    metrics_token: str | None = Field(default=None, repr=False)
    # host:port where a worker process serves the Temporal SDK's Prometheus metrics.
    worker_metrics_address: str | None = Field(default=None, pattern=r"^\S+:\d{1,5}$")
    # Trace API -> workflow -> activity with OpenTelemetry (needs the `otel` extra).
    otel_tracing: bool = False
    # The Temporal Web UI that run links in responses point at; unset: the dev
    # server's UI in development, no links in production. "" turns links off.
    temporal_ui_url: str | None = None

    @field_validator(
        "cors_origins",
        "encryption_keys",
        "trusted_proxies",
        "admin_api_keys",
        "egress_allowed_hosts",
        "tenant_egress_allowed_hosts",
        "webhook_retry_schedule_seconds",
        mode="before",
    )
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("webhook_retry_schedule_seconds")
    @classmethod
    def _check_schedule(cls, value: list[float]) -> list[float]:
        if not value or value[0] < 0 or any(b < a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("a retry schedule is one or more growing offsets in seconds from 0")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _merge_rate_limits(cls, value: dict[str, int]) -> dict[str, int]:
        """``WEFT_RATE_LIMITS='{"login": 3}'`` overrides one group, keeping the rest."""
        unknown = set(value) - set(DEFAULT_RATE_LIMITS)
        if unknown:
            raise ValueError(
                f"unknown rate limit group(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(DEFAULT_RATE_LIMITS)}"
            )
        if any(limit <= 0 for limit in value.values()):
            raise ValueError("rate limits must be positive")
        return {**DEFAULT_RATE_LIMITS, **value}

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL (expected sqlite:///path or postgresql://...)"
            ) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r} (use sqlite or postgresql)"
            )
        return value

    @model_validator(mode="after")
    def _production_needs_a_secret(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            if not self.jwt_secret or len(self.jwt_secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"WEFT_JWT_SECRET must be set to at least {MIN_SECRET_LENGTH} characters "
                    "in production"
                )
            if not self.database_url:
                raise ValueError("DATABASE_URL must be set in production")
            if not self.encryption_keys:
                raise ValueError(
                    "WEFT_ENCRYPTION_KEYS must be set in production (the key that "
                    "encrypts stored secrets; see README, Configuration)"
                )
        if any(len(key) < MIN_SECRET_LENGTH for key in self.encryption_keys):
            raise ValueError(
                f"each of WEFT_ENCRYPTION_KEYS needs at least {MIN_SECRET_LENGTH} characters"
            )
        return self

    # --- derived values ------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        """The URL the code connects with (async drivers), defaulting to SQLite."""
        return async_database_url(self.database_url or f"sqlite:///{self.data_dir / 'weft.db'}")

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_dev_port}"

    @property
    def resolved_temporal_ui_url(self) -> str | None:
        """The Web UI base that run links point at, or None for no links."""
        if self.temporal_ui_url is not None:
            return self.temporal_ui_url.rstrip("/") or None
        if self.env is Environment.DEVELOPMENT:
            return f"http://127.0.0.1:{self.temporal_ui_port}"
        return None

    @property
    def manages_temporal(self) -> bool:
        """True when `weft dev` must start the Temporal dev server itself."""
        return self.temporal_address is None

    def resolved_jwt_secret(self) -> str:
        """The JWT signing secret; in development it is generated once and kept."""
        return self.jwt_secret or self._kept_secret(JWT_SECRET_FILE)

    def resolved_encryption_keys(self) -> list[str]:
        """The keys of secrets at rest; in development one is generated once and kept."""
        return self.encryption_keys or [self._kept_secret(ENCRYPTION_KEY_FILE)]

    def _kept_secret(self, name: str) -> str:
        path = self.data_dir / name
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        path.write_text(secret)
        path.chmod(0o600)
        return secret


def async_database_url(url: str) -> str:
    """Pick the async driver for a plain sqlite/postgresql URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sync_database_url(url: str) -> str:
    """The same database through a synchronous driver (for Alembic)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    driver = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}[backend]
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, turning validation failures into a one-line SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["loc"]:
                message = f"{_env_name(str(error['loc'][0]))}: {message}"
            problems.append(message)
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None


def _env_name(location: str) -> str:
    """The environment variable a user would set for a field (as named in errors)."""
    field = location.lower().removeprefix("weft_")
    info = Settings.model_fields.get(field)
    if info is not None and info.validation_alias is not None:
        return field.upper()  # documented under its conventional, unprefixed name
    return f"WEFT_{field.upper()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide Settings (tests build their own and pass them in)."""
    return load_settings()
