"""Partio's admin surface: tenants, users, credentials, embedding endpoints, whoami.

Verbs follow partio: PUT creates, GET reads, PUT ``/{id}`` updates, DELETE
deletes, HEAD tells existence, POST ``/enumerate`` pages. Tenants need a global
administrator; the other resources an ``admin`` scope, and a tenant admin sees
only its own tenant (through the caller's TenantScope).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Response
from sqlalchemy.orm import InstrumentedAttribute

from api.deps import Caller, requires
from api.partio import (
    CredentialCreate,
    CredentialPublic,
    CredentialUpdate,
    EndpointCreate,
    EndpointPublic,
    EndpointUpdate,
    EnumerationRequest,
    EnumerationResult,
    PartioUserPublic,
    PascalModel,
    TenantCreate,
    TenantCreatedPublic,
    TenantPublic,
    TenantUpdate,
    UserCreate,
    UserUpdate,
    WhoamiPublic,
    enumeration_result,
)
from engine.db.paging import enumerate_rows
from engine.db.scope import TenantScope
from engine.db.tables import ApiKey, EmbeddingEndpoint, Tenant, User
from engine.identity import accounts
from engine.identity.hashing import hash_password
from engine.identity.principals import USER_SCOPES
from engine.platform.crypto import encrypt_secret
from engine.platform.egress import EgressDenied, parse_base_url, resolve_target
from engine.platform.errors import Forbidden, InvalidInput
from engine.platform.settings import Settings

router = APIRouter(prefix="/v1.0", tags=["partio"])
AdminCaller = Annotated[Caller, requires("admin", across_tenants=True)]
API_FORMATS = ("Ollama", "OpenAI", "Local")


@dataclass(frozen=True)
class Resource:
    """What the shared read/head/delete/enumerate verbs need to know of a type."""

    path: str
    model: Any
    name_column: InstrumentedAttribute[Any]
    public: Callable[[Any], PascalModel]
    # The response models (the generic page is parametrised here, where the type is known).
    public_model: type[PascalModel]
    page_model: type[EnumerationResult[Any]]
    what: str


RESOURCES = [
    Resource(
        "users",
        User,
        User.email,
        PartioUserPublic.of,
        PartioUserPublic,
        EnumerationResult[PartioUserPublic],
        "user",
    ),
    Resource(
        "credentials",
        ApiKey,
        ApiKey.name,
        CredentialPublic.of,
        CredentialPublic,
        EnumerationResult[CredentialPublic],
        "credential",
    ),
    Resource(
        "endpoints",
        EmbeddingEndpoint,
        EmbeddingEndpoint.model,
        EndpointPublic.of,
        EndpointPublic,
        EnumerationResult[EndpointPublic],
        "endpoint",
    ),
]
TENANTS = Resource(
    "tenants",
    Tenant,
    Tenant.name,
    TenantPublic.of,
    TenantPublic,
    EnumerationResult[TenantPublic],
    "tenant",
)


def _superuser(caller: Caller) -> None:
    if not caller.principal.is_superuser:
        raise Forbidden("Managing tenants needs a global administrator")


def _view(caller: Caller, resource: Resource) -> TenantScope:
    """The caller's view of a resource; tenants themselves are for global admins."""
    if resource is TENANTS:
        _superuser(caller)
        return TenantScope(caller.session, None, all_tenants=True)
    return caller.db


def _add_shared_verbs(resource: Resource) -> None:
    async def read(object_id: str, caller: AdminCaller) -> PascalModel:
        row = await _view(caller, resource).get(resource.model, object_id, what=resource.what)
        return resource.public(row)

    async def exists(object_id: str, caller: AdminCaller) -> Response:
        found = await _view(caller, resource).find(resource.model, object_id)
        return Response(status_code=200 if found is not None else 404)

    async def delete(object_id: str, caller: AdminCaller) -> Response:
        row = await _view(caller, resource).get(resource.model, object_id, what=resource.what)
        await caller.session.delete(row)
        await caller.session.commit()
        return Response(status_code=204)

    async def enumerate_(
        body: EnumerationRequest, caller: AdminCaller
    ) -> EnumerationResult[PascalModel]:
        page = await enumerate_rows(
            caller.session,
            _view(caller, resource).select(resource.model),
            model=resource.model,
            name_column=resource.name_column,
            query=body.to_query(),
        )
        objects = [resource.public(row) for row in page.objects]
        return enumeration_result(page, body.max_results, objects)

    name = resource.what
    router.get(
        f"/{resource.path}/{{object_id}}",
        response_model=resource.public_model,
        summary=f"Read a {name}",
    )(read)
    # HEAD answers a status only: no body, so no JSON in the schema.
    router.head(
        f"/{resource.path}/{{object_id}}",
        response_class=Response,
        responses={200: {"description": f"The {name} exists"}, 404: {"description": "Not found"}},
        summary=f"Does a {name} exist",
    )(exists)
    router.delete(f"/{resource.path}/{{object_id}}", status_code=204, summary=f"Delete a {name}")(
        delete
    )
    router.post(
        f"/{resource.path}/enumerate",
        response_model=resource.page_model,
        summary=f"Enumerate {name}s",
    )(enumerate_)


for _resource in (TENANTS, *RESOURCES):
    _add_shared_verbs(_resource)


def _apply(row: Any, changes: dict[str, Any], fields: dict[str, str]) -> None:
    for body_name, column in fields.items():
        if changes.get(body_name) is not None:
            setattr(row, column, changes[body_name])
    row.updated_at = datetime.now(UTC)


# --- tenants ------------------------------------------------------------------------


@router.put(
    "/tenants",
    status_code=201,
    response_model=TenantCreatedPublic,
    summary="Create a tenant with its defaults",
)
async def create_tenant(body: TenantCreate, caller: AdminCaller) -> TenantCreatedPublic:
    _superuser(caller)
    made = await accounts.create_tenant_with_defaults(
        caller.session, body.name, labels=body.labels, tags=body.tags
    )
    await caller.session.commit()
    # The default credential's token exists only in this answer (stored as a hash).
    return TenantCreatedPublic(
        **TenantPublic.of(made.tenant).model_dump(),
        default_user=PartioUserPublic.of(made.user),
        default_credential=CredentialPublic.of(made.credential.record, made.credential.secret),
        default_endpoint=EndpointPublic.of(made.endpoint),
    )


@router.put("/tenants/{object_id}", response_model=TenantPublic, summary="Update a tenant")
async def update_tenant(object_id: str, body: TenantUpdate, caller: AdminCaller) -> TenantPublic:
    tenant = await _view(caller, TENANTS).get(Tenant, object_id, what="tenant")
    _apply(
        tenant,
        body.model_dump(),
        {"name": "name", "labels": "labels", "tags": "tags", "active": "active"},
    )
    await caller.session.commit()
    return TenantPublic.of(tenant)


# --- users ----------------------------------------------------------------------------


# partio documents ``200 OK — UserMaster`` here (201 for tenants, credentials, endpoints).
@router.put("/users", status_code=200, response_model=PartioUserPublic, summary="Create a user")
async def create_user(body: UserCreate, caller: AdminCaller) -> PartioUserPublic:
    tenant = await caller.session.get(Tenant, caller.db.tenant_for_new_row(body.tenant_id))
    if tenant is None:
        raise InvalidInput(f"tenant {body.tenant_id} not found", details={"field": "TenantId"})
    user = await accounts.create_user(
        caller.session,
        tenant,
        body.email,
        body.password,
        role="admin" if body.is_admin else "user",
        first_name=body.first_name,
        last_name=body.last_name,
    )
    user.labels, user.tags = body.labels, body.tags
    await caller.session.commit()
    return PartioUserPublic.of(user)


@router.put("/users/{object_id}", response_model=PartioUserPublic, summary="Update a user")
async def update_user(object_id: str, body: UserUpdate, caller: AdminCaller) -> PartioUserPublic:
    user = await caller.db.get(User, object_id, what="user")
    changes = body.model_dump()
    if body.email is not None:
        changes["email"] = accounts.normalise_email(body.email)
        await accounts.ensure_email_free(caller.session, changes["email"], except_id=user.id)
    if body.password is not None:
        user.password_hash = hash_password(body.password)
    if body.is_admin is not None:
        user.role = "admin" if body.is_admin else "user"
    _apply(
        user,
        changes,
        {
            "email": "email",
            "first_name": "first_name",
            "last_name": "last_name",
            "active": "active",
            "labels": "labels",
            "tags": "tags",
        },
    )
    await caller.session.commit()
    return PartioUserPublic.of(user)


# --- credentials ----------------------------------------------------------------------


@router.put(
    "/credentials",
    status_code=201,
    response_model=CredentialPublic,
    summary="Create a credential (bearer token)",
)
async def create_credential(body: CredentialCreate, caller: AdminCaller) -> CredentialPublic:
    tenant_id = caller.db.tenant_for_new_row(body.tenant_id)
    user = await caller.db.get(User, body.user_id, what="user")
    if user.tenant_id != tenant_id:
        raise InvalidInput("UserId belongs to another tenant", details={"field": "UserId"})
    issued = await accounts.create_api_key(
        caller.session,
        user,
        body.name,
        sorted(USER_SCOPES),
        labels=body.labels,
        tags=body.tags,
        issuer=caller.principal,
    )
    await caller.session.commit()
    return CredentialPublic.of(issued.record, issued.secret)


@router.put(
    "/credentials/{object_id}", response_model=CredentialPublic, summary="Update a credential"
)
async def update_credential(
    object_id: str, body: CredentialUpdate, caller: AdminCaller
) -> CredentialPublic:
    key = await caller.db.get(ApiKey, object_id, what="credential")
    if body.active:
        key.revoked_at = None  # its children stay revoked
    elif body.active is not None:
        await accounts.revoke_api_key(caller.session, key)
    _apply(
        key,
        body.model_dump(exclude={"active"}),
        {"name": "name", "labels": "labels", "tags": "tags"},
    )
    await caller.session.commit()
    return CredentialPublic.of(key)


# --- embedding endpoints ----------------------------------------------------------------


async def _check_endpoint(settings: Settings, api_format: str, url: str | None) -> None:
    """A known format, and a URL the tenant egress rules let us call: a
    loopback, private or metadata address is refused when it is saved (and
    again at every call, as DNS may change)."""
    if api_format not in API_FORMATS:
        raise InvalidInput(
            f"ApiFormat must be one of {', '.join(API_FORMATS)}", details={"field": "ApiFormat"}
        )
    if api_format == "Local":
        return
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("Endpoint must be an http(s) URL", details={"field": "Endpoint"})
    try:
        parse_base_url(url or "")
        # A name that does not resolve now is accepted: it is checked at every call.
        with contextlib.suppress(httpx.ConnectError):
            await resolve_target(url or "", settings, tenant=True)
    except EgressDenied as exc:
        raise InvalidInput(exc.message, details={"field": "Endpoint", **exc.details}) from None


@router.put(
    "/endpoints",
    status_code=201,
    response_model=EndpointPublic,
    summary="Create an embedding endpoint",
)
async def create_endpoint(body: EndpointCreate, caller: AdminCaller) -> EndpointPublic:
    tenant_id = caller.db.tenant_for_new_row(body.tenant_id)
    if await caller.session.get(Tenant, tenant_id) is None:
        raise InvalidInput(f"tenant {tenant_id} not found", details={"field": "TenantId"})
    await _check_endpoint(caller.settings, body.api_format, body.endpoint)
    endpoint = EmbeddingEndpoint(
        tenant_id=tenant_id,
        name=body.name,
        model=body.model,
        endpoint=body.endpoint,
        api_format=body.api_format,
        api_key_encrypted=encrypt_secret(caller.settings, body.api_key) if body.api_key else None,
        active=body.active,
        labels=body.labels,
        tags=body.tags,
    )
    caller.session.add(endpoint)
    await caller.session.commit()
    return EndpointPublic.of(endpoint)


@router.put(
    "/endpoints/{object_id}",
    response_model=EndpointPublic,
    summary="Update an embedding endpoint",
)
async def update_endpoint(
    object_id: str, body: EndpointUpdate, caller: AdminCaller
) -> EndpointPublic:
    endpoint = await caller.db.get(EmbeddingEndpoint, object_id, what="endpoint")
    api_format = body.api_format or endpoint.api_format
    await _check_endpoint(
        caller.settings,
        api_format,
        body.endpoint if body.endpoint is not None else endpoint.endpoint,
    )
    if body.api_key is not None:
        endpoint.api_key_encrypted = encrypt_secret(caller.settings, body.api_key) or None
    _apply(
        endpoint,
        body.model_dump(exclude={"api_key"}),
        {
            "name": "name",
            "model": "model",
            "endpoint": "endpoint",
            "api_format": "api_format",
            "active": "active",
            "labels": "labels",
            "tags": "tags",
        },
    )
    await caller.session.commit()
    return EndpointPublic.of(endpoint)


# --- identity -------------------------------------------------------------------------


@router.get("/whoami", response_model=WhoamiPublic, summary="Role and tenant of the caller")
async def read_whoami(
    caller: Annotated[Caller, requires("profile", across_tenants=True)],
) -> WhoamiPublic:
    if caller.principal.is_superuser:
        return WhoamiPublic(role="Admin", tenant_name="Admin")
    tenant = await caller.session.get(Tenant, caller.tenant_id)
    return WhoamiPublic(role="User", tenant_name=tenant.name if tenant else "")
