"""The response cache (sutazai ``/cache/*``), seen per tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import Caller, requires
from api.envelope import Envelope, ok
from api.model_deps import ModelsDep, call_context
from api.routes.chat import SimpleChatBody
from api.schemas.chat import CacheWarmPublic, ErrorEventPublic, WarmedPublic, WarmFailedPublic
from api.schemas.models import CacheClearedPublic, CacheKeysPublic, CacheStatsPublic
from engine.ai.chat import complete
from engine.platform.errors import WeftError

router = APIRouter(prefix="/api/v1/cache", tags=["cache"])
PATTERN = Field(default="*", min_length=1, max_length=300)


class ClearBody(BaseModel):
    pattern: str = PATTERN


class WarmBody(BaseModel):
    """Requests to answer now (at temperature 0) so later identical ones hit the cache."""

    requests: list[SimpleChatBody] = Field(min_length=1, max_length=50)


@router.get(
    "/stats",
    response_model=Envelope[CacheStatsPublic],
    summary="Hit rate, hits, misses, memory, keys and TTL",
)
async def read_cache_stats(
    request: Request, caller: Annotated[Caller, requires("models:read")], models: ModelsDep
) -> JSONResponse:
    data = await models.cache.stats(caller.tenant_id)
    return ok(CacheStatsPublic.model_validate(data), request_id=request.state.request_id)


@router.get(
    "/keys",
    response_model=Envelope[CacheKeysPublic],
    summary="Cached keys (public form chat:{model}:{digest})",
)
async def read_cache_keys(
    request: Request,
    caller: Annotated[Caller, requires("models:read")],
    models: ModelsDep,
    pattern: Annotated[str, Query(min_length=1, max_length=300)] = "*",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    keys = await models.cache.keys(caller.tenant_id, pattern, limit)
    data = CacheKeysPublic.model_validate({"keys": keys, "count": len(keys)})
    return ok(data, request_id=request.state.request_id)


@router.post(
    "/clear",
    response_model=Envelope[CacheClearedPublic],
    summary="Remove cached answers matching a pattern",
)
async def create_cache_clear(
    request: Request,
    caller: Annotated[Caller, requires("models:write")],
    models: ModelsDep,
    body: ClearBody | None = None,
) -> JSONResponse:
    pattern = body.pattern if body else "*"
    cleared = await models.cache.clear(caller.tenant_id, pattern)
    data = CacheClearedPublic(cleared=cleared, pattern=pattern)
    return ok(data, request_id=request.state.request_id)


@router.post(
    "/warm",
    response_model=Envelope[CacheWarmPublic],
    summary="Answer requests now so identical ones are served from cache",
)
async def create_cache_warm(
    request: Request,
    caller: Annotated[Caller, requires("ai:chat")],
    models: ModelsDep,
    body: WarmBody,
) -> JSONResponse:
    ctx = call_context(request, caller, kind="warm")
    results: list[WarmedPublic | WarmFailedPublic] = []
    for index, item in enumerate(body.requests):
        chat = item.chat_request().model_copy(update={"temperature": 0.0})
        try:
            outcome = await complete(models, ctx, chat)
        except WeftError as exc:
            results.append(
                WarmFailedPublic(index=index, warmed=False, error=ErrorEventPublic.of(exc))
            )
            continue
        results.append(WarmedPublic(index=index, warmed=True, already_cached=outcome.cached))
    warmed = sum(1 for r in results if r.warmed)
    return ok(CacheWarmPublic(results=results, warmed=warmed), request_id=ctx.request_id)
