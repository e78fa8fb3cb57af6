"""Partio's wire shapes: PascalCase bodies, enumeration requests and results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_pascal

from engine.db.paging import EnumerationQuery, Order, Page


class PascalModel(BaseModel):
    """Accepts PascalCase (partio) and snake_case field names."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore")


class EnumerationRequest(PascalModel):
    max_results: int = Field(default=100, ge=1, le=1000)
    continuation_token: str | None = None
    order: Order = Order.CREATED_DESCENDING
    name_filter: str | None = None
    label_filter: str | None = None
    tag_key_filter: str | None = None
    tag_value_filter: str | None = None
    active_filter: bool | None = None

    def to_query(self) -> EnumerationQuery:
        return EnumerationQuery(**self.model_dump())


def utc(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def enumeration_result(
    page: Page, max_results: int, objects: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "Success": True,
        "MaxResults": max_results,
        "ContinuationToken": page.continuation_token,
        "EndOfResults": page.end_of_results,
        "TotalRecords": page.total,
        "RecordsRemaining": page.remaining,
        "Objects": objects,
    }


# --- request bodies ---------------------------------------------------------------


class TenantCreate(PascalModel):
    name: str = Field(min_length=1, max_length=200)
    labels: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class TenantUpdate(PascalModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    labels: list[str] | None = None
    tags: dict[str, str] | None = None
    active: bool | None = None


class UserCreate(PascalModel):
    tenant_id: str | None = None
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=8, max_length=1024)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    is_admin: bool = False
    labels: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class UserUpdate(PascalModel):
    email: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    is_admin: bool | None = None
    active: bool | None = None
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
    active: bool | None = None
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
    active: bool = True
    labels: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class EndpointUpdate(PascalModel):
    name: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    endpoint: str | None = Field(default=None, max_length=2000)
    api_format: str | None = None
    api_key: str | None = Field(default=None, max_length=2000)
    active: bool | None = None
    labels: list[str] | None = None
    tags: dict[str, str] | None = None
