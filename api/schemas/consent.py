"""z2 consent as the API takes and shows it (``/api/v1/consent/…``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from engine.db.tables import Consent
from engine.events.catalog import iso

CategoryName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
]


class ConsentRequestIn(BaseModel):
    """z2's body verbatim, and optionally the data subject (a user of the tenant;
    default: the caller)."""

    request_type: str = Field(min_length=1, max_length=60)
    description: str | None = Field(default=None, max_length=10_000)
    data_categories: list[CategoryName] = Field(min_length=1, max_length=50)
    purpose: str = Field(min_length=1, max_length=200)
    retention_period: str | None = Field(default=None, max_length=60)
    user_id: str | None = Field(default=None, min_length=1, max_length=40)


class ConsentDecisionIn(BaseModel):
    consent_id: str = Field(min_length=1, max_length=40)


class ConsentPublic(BaseModel):
    id: str
    consent_id: str  # the same id, under z2's name
    user_id: str  # the data subject
    request_type: str
    description: str | None
    data_categories: list[str]
    purpose: str
    retention_period: str | None
    status: str  # pending | granted | revoked
    requested_by: str | None
    granted_at: str | None
    revoked_at: str | None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, row: Consent) -> ConsentPublic:
        return cls(
            id=row.id,
            consent_id=row.id,
            user_id=row.user_id,
            request_type=row.request_type,
            description=row.description,
            data_categories=list(row.data_categories),
            purpose=row.purpose,
            retention_period=row.retention_period,
            status=row.status,
            requested_by=row.requested_by,
            granted_at=iso(row.granted_at) if row.granted_at else None,
            revoked_at=iso(row.revoked_at) if row.revoked_at else None,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
        )


class ConsentStatusPublic(BaseModel):
    """A user's consents, and the categories their granted ones cover."""

    user_id: str
    consents: list[ConsentPublic]
    total: int
    granted_categories: list[str]


class ConsentRevokedPublic(ConsentPublic):
    # The running executions of the data subject that this revoke stopped.
    stopped_executions: list[str]
