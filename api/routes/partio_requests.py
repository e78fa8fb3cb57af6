"""Partio's request history: read, read the bodies, delete, enumerate.

An ``admin`` scope is needed. A global administrator sees every tenant's
requests (and the unauthenticated ones); a tenant admin sees only its own
tenant's, through the caller's TenantScope, so another tenant's request is
simply not found.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Response

from api.deps import Caller, requires
from api.partio import (
    EnumerationRequest,
    EnumerationResult,
    RequestDetailPublic,
    RequestEntryPublic,
    enumeration_result,
)
from engine.audit.request_history import delete_record, read_detail
from engine.db.paging import enumerate_rows
from engine.db.tables import RequestRecord
from engine.platform.errors import NotFound

router = APIRouter(prefix="/v1.0", tags=["partio"])
AdminCaller = Annotated[Caller, requires("admin", across_tenants=True)]


@router.get(
    "/requests/{object_id}",
    response_model=RequestEntryPublic,
    summary="Read a request history entry",
)
async def read_request(object_id: str, caller: AdminCaller) -> RequestEntryPublic:
    return RequestEntryPublic.of(await caller.db.get(RequestRecord, object_id, what="request"))


@router.get(
    "/requests/{object_id}/detail",
    response_model=RequestDetailPublic,
    summary="Read the bodies of a request",
)
async def read_request_detail(object_id: str, caller: AdminCaller) -> RequestDetailPublic:
    row = await caller.db.get(RequestRecord, object_id, what="request")
    detail = await read_detail(caller.settings, row)
    if detail is None:
        raise NotFound(f"request {object_id} has no stored detail")
    return RequestDetailPublic(
        request_body=detail.get("RequestBody"), response_body=detail.get("ResponseBody")
    )


@router.delete("/requests/{object_id}", status_code=204, summary="Delete a request entry")
async def delete_request(object_id: str, caller: AdminCaller) -> Response:
    row = await caller.db.get(RequestRecord, object_id, what="request")
    await delete_record(caller.session, caller.settings, row)
    return Response(status_code=204)


@router.post(
    "/requests/enumerate",
    response_model=EnumerationResult[RequestEntryPublic],
    summary="Enumerate request history",
)
async def enumerate_requests(
    body: EnumerationRequest, caller: AdminCaller
) -> EnumerationResult[RequestEntryPublic]:
    # Requests have no labels or tags: those filters do not apply and are ignored.
    query = replace(body.to_query(), label_filter=None, tag_key_filter=None, tag_value_filter=None)
    page = await enumerate_rows(
        caller.session,
        caller.db.select(RequestRecord),
        model=RequestRecord,
        name_column=RequestRecord.path,
        query=query,
    )
    objects = [RequestEntryPublic.of(row) for row in page.objects]
    return enumeration_result(page, body.max_results, objects)
