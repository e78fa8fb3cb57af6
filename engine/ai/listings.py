"""What the model listings of the contract show, built from the registry,
live provider listings, measured stats, breakers and the ledger."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from engine.ai.providers.base import ModelInfo
from engine.ai.providers.catalog import ModelSpec, discovered_spec
from engine.ai.providers.ollama import OllamaProvider
from engine.ai.providers.registry import ProviderEntry
from engine.ai.runtime import ModelRuntime
from engine.ai.stats import ModelStat
from engine.ai.usage import price_for
from engine.db.tables import UsageRecord
from engine.platform.errors import InvalidInput, WeftError


async def provider_models(
    rt: ModelRuntime, entry: ProviderEntry
) -> list[tuple[ModelSpec, ModelInfo | None]]:
    """Declared models first, then what the provider lists itself."""
    listed = await rt.registry.discovered(entry) if entry.kind != "local" else []
    if entry.kind == "local":
        listed = await entry.client.list_models()
    by_name = {info.name: info for info in listed}
    pairs: list[tuple[ModelSpec, ModelInfo | None]] = [
        (spec, by_name.pop(spec.id, None)) for spec in entry.models
    ]
    for info in by_name.values():
        pairs.append((discovered_spec(info.name, entry.name), info))
    return pairs


def provider_status(rt: ModelRuntime, entry: ProviderEntry) -> str:
    if rt.breakers.state(entry.name).value == "open":
        return "circuit_open"
    if entry.name in rt.registry.listing_errors:
        return "unhealthy"
    return "healthy"


PROVIDER_CHECK_SECONDS = 2.0


async def provider_health(rt: ModelRuntime) -> list[dict[str, Any]]:
    """Every configured provider (the local one included) with its state, for
    ``/health``: name, kind, source, status, breaker and the last failure's code.

    Remote providers are asked at most once per the registry's discovery cache
    (a failure is remembered as long), each bounded by a short timeout; no base
    URL or key is part of the answer.
    """
    try:
        entries = await asyncio.wait_for(rt.registry.entries(), PROVIDER_CHECK_SECONDS)
    except (TimeoutError, SQLAlchemyError, OSError):
        # The database is down (health says so): the providers from settings still count.
        entries = rt.registry.configured_entries()
    remote = [entry for entry in entries if entry.kind != "local"]
    await asyncio.gather(*(rt.registry.checked(entry, PROVIDER_CHECK_SECONDS) for entry in remote))
    return [
        {
            "name": entry.name,
            "kind": entry.kind,
            "source": entry.source,
            "status": provider_status(rt, entry),
            "circuit_breaker": rt.breakers.state(entry.name).value,
            "error": rt.registry.listing_errors.get(entry.name),
        }
        for entry in entries
    ]


def _model_public(
    spec: ModelSpec, info: ModelInfo | None, stat: ModelStat, prices: dict[str, dict[str, float]]
) -> dict[str, Any]:
    price = price_for(spec.id, prices)
    return {
        "id": spec.id,
        "name": spec.name or spec.id,
        "type": spec.kind,
        "capabilities": list(spec.capabilities),
        "context_window": spec.context_window,
        "cost_per_1k_input": price.input_per_1k,
        "cost_per_1k_output": price.output_per_1k,
        "quality_score": spec.quality_score,
        "avg_latency_ms": stat.avg_latency_ms or spec.avg_latency_ms,
        "error_rate": round(stat.error_rate, 4),
        "size": info.size if info else None,
        "modified_at": info.modified_at if info else None,
        "digest": info.digest if info else None,
    }


async def _last_used(rt: ModelRuntime, tenant_id: str) -> dict[str, str]:
    async with rt.sessions() as session:
        rows = (
            await session.execute(
                select(UsageRecord.model, func.max(UsageRecord.created_at))
                .where(UsageRecord.tenant_id == tenant_id)
                .group_by(UsageRecord.model)
            )
        ).all()
    return {model: when.isoformat() for model, when in rows if when is not None}


async def catalog(rt: ModelRuntime, tenant_id: str) -> dict[str, Any]:
    """``GET /api/v1/models``: z2's providers list plus sutazai's models and default."""
    prices = await rt.registry.price_table()
    last_used = await _last_used(rt, tenant_id)
    providers, models = [], []
    for entry in await rt.registry.entries():
        pairs = await provider_models(rt, entry)
        stats = await rt.stats.get([f"{entry.name}/{spec.id}" for spec, _ in pairs])
        public = [
            _model_public(spec, info, stats[f"{entry.name}/{spec.id}"], prices)
            for spec, info in pairs
        ]
        providers.append(
            {
                "name": entry.name,
                "kind": entry.kind,
                "source": entry.source,
                "status": provider_status(rt, entry),
                "circuit_breaker": rt.breakers.state(entry.name).value,
                "models": public,
            }
        )
        models += [
            {
                "name": item["id"],
                "provider": entry.name,
                "type": item["type"],
                "size": item["size"],
                "modified_at": item["modified_at"],
                "digest": item["digest"],
                "status": "available" if provider_status(rt, entry) == "healthy" else "unavailable",
                "last_used": last_used.get(item["id"]),
            }
            for item in public
        ]
    try:
        default = await rt.registry.default_chat_model()
    except WeftError:
        default = None
    return {"providers": providers, "models": models, "default_model": default}


async def installed(rt: ModelRuntime) -> list[dict[str, Any]]:
    """zentoria ``GET /ai/models``: what each provider has (name, size, digest)."""
    found = []
    for entry in await rt.registry.entries():
        for spec, info in await provider_models(rt, entry):
            found.append(
                {
                    "name": spec.id,
                    "provider": entry.name,
                    "type": spec.kind,
                    "size": info.size if info else None,
                    "modified_at": info.modified_at if info else None,
                    "digest": info.digest if info else None,
                    "details": info.details if info else {},
                }
            )
    return found


async def model_info(rt: ModelRuntime, model: str) -> dict[str, Any]:
    """sutazai ``/models/{model}/info``: the provider's own details plus ours."""
    target = await rt.registry.resolve(model)
    entry = target.entry
    details: dict[str, Any] = {}
    show = getattr(entry.client, "show", None)
    if show is not None:
        details = await show(target.model)
    spec = target.spec or ModelSpec(id=target.model, provider=entry.name)
    stat = (await rt.stats.get([f"{entry.name}/{target.model}"]))[f"{entry.name}/{target.model}"]
    # Size, date and digest as the provider lists them (its cached listing).
    listed = {info.name: info for _, info in await provider_models(rt, entry) if info}
    info = listed.get(target.model) or listed.get(f"{target.model}:latest")
    public = _model_public(spec, info, stat, await rt.registry.price_table())
    return {
        **public,
        "name": target.model,
        "provider": entry.name,
        "provider_kind": entry.kind,
        "circuit_breaker": rt.breakers.state(entry.name).value,
        "calls_measured": stat.calls,
        "details": details,
    }


async def delete_model(rt: ModelRuntime, model: str) -> dict[str, Any]:
    target = await rt.registry.resolve(model)
    if not isinstance(target.entry.client, OllamaProvider):
        raise InvalidInput(
            f"Provider {target.entry.name} ({target.entry.kind}) cannot delete models",
            details={"provider": target.entry.name},
        )
    await target.entry.client.delete(target.model)
    rt.registry.invalidate()
    return {"name": target.model, "provider": target.entry.name, "deleted": True}


def pull_target_error(entry: ProviderEntry) -> InvalidInput | None:
    if entry.kind != "ollama":
        return InvalidInput(
            f"Provider {entry.name} ({entry.kind}) cannot pull models; only Ollama can",
            details={"provider": entry.name},
        )
    return None
