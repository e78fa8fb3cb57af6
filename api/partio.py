"""Partio's wire shapes: PascalCase bodies, enumeration requests and results, and
the ``XPublic`` answers of ``/v1.0``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool, StrictInt
from pydantic.alias_generators import to_pascal

from api.schemas.identity import EmailAddress
from engine.db.paging import EnumerationQuery, Order, Page
from engine.db.tables import ApiKey, EmbeddingEndpoint, RequestRecord, Tenant, User

ObjectT = TypeVar("ObjectT")


class PascalModel(BaseModel):
    """Accepts PascalCase (partio) and snake_case field names."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore")


class EnumerationRequest(PascalModel):
    max_results: StrictInt = Field(default=100, ge=1, le=1000)
    continuation_token: str | None = None
    order: Order = Order.CREATED_DESCENDING
    name_filter: str | None = None
    label_filter: str | None = None
    tag_key_filter: str | None = None
    tag_value_filter: str | None = None
    active_filter: StrictBool | None = None

    def to_query(self) -> EnumerationQuery:
        return EnumerationQuery(**self.model_dump())


@overload
def utc(value: datetime) -> str: ...
@overload
def utc(value: datetime | None) -> str | None: ...
def utc(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


class EnumerationResult(PascalModel, Generic[ObjectT]):
    success: bool
    max_results: int
    continuation_token: str | None
    end_of_results: bool
    total_records: int
    records_remaining: int
    objects: list[ObjectT]


def enumeration_result(
    page: Page, max_results: int, objects: list[ObjectT]
) -> EnumerationResult[ObjectT]:
    return EnumerationResult(
        success=True,
        max_results=max_results,
        continuation_token=page.continuation_token,
        end_of_results=page.end_of_results,
        total_records=page.total,
        records_remaining=page.remaining,
        objects=objects,
    )


# --- request bodies ---------------------------------------------------------------


class TenantCreate(PascalModel):
    name: str = Field(min_length=1, max_length=200)
    labels: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class TenantUpdate(PascalModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    labels: list[str] | None = None
    tags: dict[str, str] | None = None
    active: StrictBool | None = None


class UserCreate(PascalModel):
    tenant_id: str | None = None
    email: EmailAddress
    password: str = Field(min_length=8, max_length=1024)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    is_admin: StrictBool = False
    labels: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class UserUpdate(PascalModel):
    email: EmailAddress | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    is_admin: StrictBool | None = None
    active: StrictBool | None = None
    labels: list[str] | None = None
    tags: dict[str, str] | None = None


class CredentialCreate(PascalModel):
    tenant_id: str | None = None
    user_id: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=200)
    labels: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class CredentialUpdate(PascalModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    active: StrictBool | None = None
    labels: list[str] | None = None
    tags: dict[str, str] | None = None


class EndpointCreate(PascalModel):
    tenant_id: str | None = None
    name: str | None = Field(default=None, max_length=200)
    model: str = Field(min_length=1, max_length=200)
    endpoint: str | None = Field(default=None, max_length=2000)
    api_format: str = Field(
        default="Ollama", validation_alias=AliasChoices("ApiFormat", "api_format")
    )
    api_key: str | None = Field(default=None, max_length=2000)
    active: StrictBool = True
    labels: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class EndpointUpdate(PascalModel):
    name: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    endpoint: str | None = Field(default=None, max_length=2000)
    api_format: str | None = None
    api_key: str | None = Field(default=None, max_length=2000)
    active: StrictBool | None = None
    labels: list[str] | None = None
    tags: dict[str, str] | None = None


# --- answers ------------------------------------------------------------------------


class PartioHealthPublic(PascalModel):
    status: Literal["Healthy", "Degraded", "Unhealthy"]
    version: str


class WhoamiPublic(PascalModel):
    role: Literal["Admin", "User"]
    tenant_name: str


class _Labelled(PascalModel):
    labels: list[str]
    tags: dict[str, str]
    created_utc: str
    last_update_utc: str


def _labelled(row: Tenant | User | ApiKey | EmbeddingEndpoint) -> dict[str, Any]:
    return {
        "labels": row.labels or [],
        "tags": row.tags or {},
        "created_utc": utc(row.created_at),
        "last_update_utc": utc(row.updated_at),
    }


class TenantPublic(_Labelled):
    id: str
    name: str
    active: bool

    @classmethod
    def of(cls, tenant: Tenant) -> TenantPublic:
        return cls(id=tenant.id, name=tenant.name, active=tenant.active, **_labelled(tenant))


class PartioUserPublic(_Labelled):
    id: str
    tenant_id: str
    email: str
    password: None  # never returned, but the key is part of partio's shape
    first_name: str | None
    last_name: str | None
    is_admin: bool
    active: bool

    @classmethod
    def of(cls, user: User) -> PartioUserPublic:
        return cls(
            id=user.id,
            tenant_id=user.tenant_id,
            email=user.email,
            password=None,
            first_name=user.first_name,
            last_name=user.last_name,
            is_admin=user.role == "admin",
            active=user.active,
            **_labelled(user),
        )


class CredentialPublic(_Labelled):
    id: str
    tenant_id: str
    user_id: str
    name: str
    bearer_token: str | None  # only in the answer that creates the credential
    active: bool

    @classmethod
    def of(cls, key: ApiKey, bearer_token: str | None = None) -> CredentialPublic:
        return cls(
            id=key.id,
            tenant_id=key.tenant_id,
            user_id=key.user_id,
            name=key.name,
            bearer_token=bearer_token,
            active=key.revoked_at is None,
            **_labelled(key),
        )


class EndpointPublic(_Labelled):
    id: str
    tenant_id: str
    name: str | None
    model: str
    endpoint: str | None
    api_format: str
    api_key: str | None  # "********" when one is set; the key never comes back
    active: bool

    @classmethod
    def of(cls, endpoint: EmbeddingEndpoint) -> EndpointPublic:
        return cls(
            id=endpoint.id,
            tenant_id=endpoint.tenant_id,
            name=endpoint.name,
            model=endpoint.model,
            endpoint=endpoint.endpoint,
            api_format=endpoint.api_format,
            api_key="********" if endpoint.api_key_encrypted else None,
            active=endpoint.active,
            **_labelled(endpoint),
        )


class TenantCreatedPublic(TenantPublic):
    """A new tenant with the defaults made beside it (the credential's only showing)."""

    default_user: PartioUserPublic
    default_credential: CredentialPublic
    default_endpoint: EndpointPublic


class RequestEntryPublic(PascalModel):
    id: str
    tenant_id: str | None
    user_id: str | None
    request_id: str
    method: str
    path: str
    query: str | None
    status_code: int
    duration_ms: float
    client_ip: str | None
    user_agent: str | None
    request_body_length: int
    response_body_length: int
    has_detail: bool
    created_utc: str

    @classmethod
    def of(cls, row: RequestRecord) -> RequestEntryPublic:
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            user_id=row.principal_id,
            request_id=row.request_id,
            method=row.method,
            path=row.path,
            query=row.query,
            status_code=row.status_code,
            duration_ms=row.duration_ms,
            client_ip=row.client_ip,
            user_agent=row.user_agent,
            request_body_length=row.request_body_bytes,
            response_body_length=row.response_body_bytes,
            has_detail=row.has_detail,
            created_utc=utc(row.created_at),
        )


class RequestDetailPublic(PascalModel):
    request_body: str | None
    response_body: str | None


class SemanticChunkPublic(PascalModel):
    text: str
    labels: list[str]
    tags: dict[str, str]
    embeddings: list[float]


class SemanticCellPublic(PascalModel):
    text: str
    chunks: list[SemanticChunkPublic]
