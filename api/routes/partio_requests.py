"""Partio's request history: read, read the bodies, delete, enumerate.

An ``admin`` scope is needed. A global administrator sees every tenant's
requests (and the unauthenticated ones); a tenant admin sees only its own
tenant's, through the caller's TenantScope, so another tenant's request is
simply not found.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Response

from api.deps import Caller, requires
from api.partio import EnumerationRequest, enumeration_result, utc
from engine.audit.request_history import delete_record, read_detail
from engine.db.paging import enumerate_rows
from engine.db.tables import RequestRecord
from engine.platform.errors import NotFound

router = APIRouter(prefix="/v1.0", tags=["partio"])
AdminCaller = Annotated[Caller, requires("admin", across_tenants=True)]


def entry_public(row: RequestRecord) -> dict[str, Any]:
    return {
        "Id": row.id,
        "TenantId": row.tenant_id,
        "UserId": row.principal_id,
        "RequestId": row.request_id,
        "Method": row.method,
        "Path": row.path,
        "Query": row.query,
        "StatusCode": row.status_code,
        "DurationMs": row.duration_ms,
        "ClientIp": row.client_ip,
        "UserAgent": row.user_agent,
        "RequestBodyLength": row.request_body_bytes,
        "ResponseBodyLength": row.response_body_bytes,
        "HasDetail": row.has_detail,
        "CreatedUtc": utc(row.created_at),
    }


@router.get("/requests/{object_id}", summary="Read a request history entry")
async def read_request(object_id: str, caller: AdminCaller) -> dict[str, Any]:
    return entry_public(await caller.db.get(RequestRecord, object_id, what="request"))


@router.get("/requests/{object_id}/detail", summary="Read the bodies of a request")
async def read_request_detail(object_id: str, caller: AdminCaller) -> dict[str, Any]:
    row = await caller.db.get(RequestRecord, object_id, what="request")
    detail = await read_detail(caller.settings, row)
    if detail is None:
        raise NotFound(f"request {object_id} has no stored detail")
    return {"RequestBody": detail.get("RequestBody"), "ResponseBody": detail.get("ResponseBody")}


@router.delete("/requests/{object_id}", status_code=204, summary="Delete a request entry")
async def delete_request(object_id: str, caller: AdminCaller) -> Response:
    row = await caller.db.get(RequestRecord, object_id, what="request")
    await delete_record(caller.session, caller.settings, row)
    return Response(status_code=204)


@router.post("/requests/enumerate", summary="Enumerate request history")
async def enumerate_requests(body: EnumerationRequest, caller: AdminCaller) -> dict[str, Any]:
    # Requests have no labels or tags: those filters do not apply and are ignored.
    query = replace(body.to_query(), label_filter=None, tag_key_filter=None, tag_value_filter=None)
    page = await enumerate_rows(
        caller.session,
        caller.db.select(RequestRecord),
        model=RequestRecord,
        name_column=RequestRecord.path,
        query=query,
    )
    objects = [entry_public(row) for row in page.objects]
    return enumeration_result(page, body.max_results, objects)
