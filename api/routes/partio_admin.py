"""Partio's admin surface: tenants, users, credentials, embedding endpoints, whoami.

Verbs follow partio: PUT creates, GET reads, PUT ``/{id}`` updates, DELETE
deletes, HEAD tells existence, POST ``/enumerate`` pages. Tenants need a global
administrator; the other resources an ``admin`` scope, and a tenant admin sees
only its own tenant (through the caller's TenantScope).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Response
from sqlalchemy.orm import InstrumentedAttribute

from api.deps import Caller, requires
from api.partio import (
    CredentialCreate,
    CredentialUpdate,
    EndpointCreate,
    EndpointUpdate,
    EnumerationRequest,
    TenantCreate,
    TenantUpdate,
    UserCreate,
    UserUpdate,
    enumeration_result,
    utc,
)
from engine.db.paging import enumerate_rows
from engine.db.scope import TenantScope
from engine.db.tables import ApiKey, EmbeddingEndpoint, Tenant, User
from engine.identity import accounts
from engine.identity.hashing import hash_password
from engine.identity.principals import USER_SCOPES
from engine.platform.crypto import encrypt_secret
from engine.platform.errors import Forbidden, InvalidInput

router = APIRouter(prefix="/v1.0", tags=["partio"])
AdminCaller = Annotated[Caller, requires("admin", across_tenants=True)]
API_FORMATS = ("Ollama", "OpenAI", "Local")


def _labels_tags(row: Any) -> dict[str, Any]:
    return {
        "Labels": row.labels or [],
        "Tags": row.tags or {},
        "CreatedUtc": utc(row.created_at),
        "LastUpdateUtc": utc(row.updated_at),
    }


def tenant_public(tenant: Tenant) -> dict[str, Any]:
    return {"Id": tenant.id, "Name": tenant.name, "Active": tenant.active, **_labels_tags(tenant)}


def user_public(user: User) -> dict[str, Any]:
    return {
        "Id": user.id,
        "TenantId": user.tenant_id,
        "Email": user.email,
        "Password": None,  # never returned
        "FirstName": user.first_name,
        "LastName": user.last_name,
        "IsAdmin": user.role == "admin",
        "Active": user.active,
        **_labels_tags(user),
    }


def credential_public(key: ApiKey, bearer_token: str | None = None) -> dict[str, Any]:
    return {
        "Id": key.id,
        "TenantId": key.tenant_id,
        "UserId": key.user_id,
        "Name": key.name,
        "BearerToken": bearer_token,  # only in the answer that creates it
        "Active": key.revoked_at is None,
        **_labels_tags(key),
    }


def endpoint_public(endpoint: EmbeddingEndpoint) -> dict[str, Any]:
    return {
        "Id": endpoint.id,
        "TenantId": endpoint.tenant_id,
        "Name": endpoint.name,
        "Model": endpoint.model,
        "Endpoint": endpoint.endpoint,
        "ApiFormat": endpoint.api_format,
        "ApiKey": "********" if endpoint.api_key_encrypted else None,
        "Active": endpoint.active,
        **_labels_tags(endpoint),
    }


@dataclass(frozen=True)
class Resource:
    """What the shared read/head/delete/enumerate verbs need to know of a type."""

    path: str
    model: Any
    name_column: InstrumentedAttribute[Any]
    public: Callable[[Any], dict[str, Any]]
    what: str


RESOURCES = [
    Resource("users", User, User.email, user_public, "user"),
    Resource("credentials", ApiKey, ApiKey.name, credential_public, "credential"),
    Resource("endpoints", EmbeddingEndpoint, EmbeddingEndpoint.model, endpoint_public, "endpoint"),
]
TENANTS = Resource("tenants", Tenant, Tenant.name, tenant_public, "tenant")


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
    async def read(object_id: str, caller: AdminCaller) -> dict[str, Any]:
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

    async def enumerate_(body: EnumerationRequest, caller: AdminCaller) -> dict[str, Any]:
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
    router.get(f"/{resource.path}/{{object_id}}", summary=f"Read a {name}")(read)
    router.head(f"/{resource.path}/{{object_id}}", summary=f"Does a {name} exist")(exists)
    router.delete(f"/{resource.path}/{{object_id}}", status_code=204, summary=f"Delete a {name}")(
        delete
    )
    router.post(f"/{resource.path}/enumerate", summary=f"Enumerate {name}s")(enumerate_)


for _resource in (TENANTS, *RESOURCES):
    _add_shared_verbs(_resource)


def _apply(row: Any, changes: dict[str, Any], fields: dict[str, str]) -> None:
    for body_name, column in fields.items():
        if changes.get(body_name) is not None:
            setattr(row, column, changes[body_name])
    row.updated_at = datetime.now(UTC)


# --- tenants ------------------------------------------------------------------------


@router.put("/tenants", status_code=201, summary="Create a tenant with its defaults")
async def create_tenant(body: TenantCreate, caller: AdminCaller) -> dict[str, Any]:
    _superuser(caller)
    made = await accounts.create_tenant_with_defaults(
        caller.session, body.name, labels=body.labels, tags=body.tags
    )
    await caller.session.commit()
    # The default credential's token exists only in this answer (stored as a hash).
    return {
        **tenant_public(made.tenant),
        "DefaultUser": user_public(made.user),
        "DefaultCredential": credential_public(made.credential.record, made.credential.secret),
        "DefaultEndpoint": endpoint_public(made.endpoint),
    }


@router.put("/tenants/{object_id}", summary="Update a tenant")
async def update_tenant(object_id: str, body: TenantUpdate, caller: AdminCaller) -> dict[str, Any]:
    tenant = await _view(caller, TENANTS).get(Tenant, object_id, what="tenant")
    _apply(
        tenant,
        body.model_dump(),
        {"name": "name", "labels": "labels", "tags": "tags", "active": "active"},
    )
    await caller.session.commit()
    return tenant_public(tenant)


# --- users ----------------------------------------------------------------------------


@router.put("/users", status_code=201, summary="Create a user")
async def create_user(body: UserCreate, caller: AdminCaller) -> dict[str, Any]:
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
    return user_public(user)


@router.put("/users/{object_id}", summary="Update a user")
async def update_user(object_id: str, body: UserUpdate, caller: AdminCaller) -> dict[str, Any]:
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
    return user_public(user)


# --- credentials ----------------------------------------------------------------------


@router.put("/credentials", status_code=201, summary="Create a credential (bearer token)")
async def create_credential(body: CredentialCreate, caller: AdminCaller) -> dict[str, Any]:
    tenant_id = caller.db.tenant_for_new_row(body.tenant_id)
    user = await caller.db.get(User, body.user_id, what="user")
    if user.tenant_id != tenant_id:
        raise InvalidInput("UserId belongs to another tenant", details={"field": "UserId"})
    issued = await accounts.create_api_key(
        caller.session, user, body.name, sorted(USER_SCOPES), labels=body.labels, tags=body.tags
    )
    await caller.session.commit()
    return credential_public(issued.record, issued.secret)


@router.put("/credentials/{object_id}", summary="Update a credential")
async def update_credential(
    object_id: str, body: CredentialUpdate, caller: AdminCaller
) -> dict[str, Any]:
    key = await caller.db.get(ApiKey, object_id, what="credential")
    if body.active is not None:
        key.revoked_at = None if body.active else (key.revoked_at or datetime.now(UTC))
    _apply(
        key,
        body.model_dump(exclude={"active"}),
        {"name": "name", "labels": "labels", "tags": "tags"},
    )
    await caller.session.commit()
    return credential_public(key)


# --- embedding endpoints ----------------------------------------------------------------


def _check_endpoint(api_format: str, url: str | None) -> None:
    if api_format not in API_FORMATS:
        raise InvalidInput(
            f"ApiFormat must be one of {', '.join(API_FORMATS)}", details={"field": "ApiFormat"}
        )
    if api_format == "Local":
        return
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("Endpoint must be an http(s) URL", details={"field": "Endpoint"})


@router.put("/endpoints", status_code=201, summary="Create an embedding endpoint")
async def create_endpoint(body: EndpointCreate, caller: AdminCaller) -> dict[str, Any]:
    tenant_id = caller.db.tenant_for_new_row(body.tenant_id)
    if await caller.session.get(Tenant, tenant_id) is None:
        raise InvalidInput(f"tenant {tenant_id} not found", details={"field": "TenantId"})
    _check_endpoint(body.api_format, body.endpoint)
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
    return endpoint_public(endpoint)


@router.put("/endpoints/{object_id}", summary="Update an embedding endpoint")
async def update_endpoint(
    object_id: str, body: EndpointUpdate, caller: AdminCaller
) -> dict[str, Any]:
    endpoint = await caller.db.get(EmbeddingEndpoint, object_id, what="endpoint")
    api_format = body.api_format or endpoint.api_format
    _check_endpoint(api_format, body.endpoint if body.endpoint is not None else endpoint.endpoint)
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
    return endpoint_public(endpoint)


# --- identity -------------------------------------------------------------------------


@router.get("/whoami", summary="Role and tenant of the caller")
async def read_whoami(
    caller: Annotated[Caller, requires("profile", across_tenants=True)],
) -> dict[str, str]:
    if caller.principal.is_superuser:
        return {"Role": "Admin", "TenantName": "Admin"}
    tenant = await caller.session.get(Tenant, caller.tenant_id)
    return {"Role": "User", "TenantName": tenant.name if tenant else ""}
