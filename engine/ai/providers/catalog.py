"""What is declared about a model: capabilities, context, prices, quality.

A provider's ``models`` list (settings or database) holds plain names or
objects in z2's shape: ``{"id", "name", "capabilities", "context_window",
"cost_per_1k_input", "cost_per_1k_output", "quality_score", "avg_latency_ms",
"type": "chat" | "embedding"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from engine.ai.providers.local import DIMENSIONS, EXTRACTIVE_MODEL, LOCAL_EMBEDDING_MODEL
from engine.platform.errors import InvalidInput

ModelKind = Literal["chat", "embedding"]


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    provider: str
    name: str | None = None
    kind: ModelKind = "chat"
    capabilities: tuple[str, ...] = ("text",)
    context_window: int | None = None
    cost_per_1k_input: float | None = None
    cost_per_1k_output: float | None = None
    quality_score: float | None = None
    avg_latency_ms: float | None = None
    dimensions: int | None = None

    @classmethod
    def parse(cls, raw: str | dict[str, Any], provider: str) -> ModelSpec:
        if isinstance(raw, str):
            return cls(id=raw, provider=provider)
        if not isinstance(raw, dict) or not (raw.get("id") or raw.get("name")):
            raise InvalidInput(
                f"Provider {provider}: every model needs an id", details={"field": "models"}
            )
        kind = str(raw.get("type") or raw.get("kind") or "chat")
        if kind not in ("chat", "embedding"):
            raise InvalidInput(
                f"Provider {provider}: model type must be chat or embedding",
                details={"field": "models"},
            )
        try:
            return cls(
                id=str(raw.get("id") or raw.get("name")),
                provider=provider,
                name=raw.get("name"),
                kind="embedding" if kind == "embedding" else "chat",
                capabilities=tuple(str(c) for c in raw.get("capabilities") or ("text",)),
                context_window=int(raw["context_window"]) if raw.get("context_window") else None,
                cost_per_1k_input=_number(raw.get("cost_per_1k_input", raw.get("input"))),
                cost_per_1k_output=_number(raw.get("cost_per_1k_output", raw.get("output"))),
                quality_score=_number(raw.get("quality_score")),
                avg_latency_ms=_number(raw.get("avg_latency_ms")),
                dimensions=int(raw["dimensions"]) if raw.get("dimensions") else None,
            )
        except (TypeError, ValueError):
            raise InvalidInput(
                f"Provider {provider}: a model has a non-numeric field",
                details={"field": "models"},
            ) from None

    def as_config(self) -> dict[str, Any]:
        """The stored form (database ``models`` column)."""
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": self.kind,
            "capabilities": list(self.capabilities),
            "context_window": self.context_window,
            "cost_per_1k_input": self.cost_per_1k_input,
            "cost_per_1k_output": self.cost_per_1k_output,
            "quality_score": self.quality_score,
            "avg_latency_ms": self.avg_latency_ms,
            "dimensions": self.dimensions,
        }
        return {key: value for key, value in data.items() if value is not None}


def discovered_spec(name: str, provider: str) -> ModelSpec:
    """What we assume of a model a provider lists but nobody declared: a chat
    model, unless its name says it embeds (``nomic-embed-text``, ``bge-m3`` ...)."""
    lowered = name.lower()
    if any(mark in lowered for mark in ("embed", "bge-", "minilm", "e5-")):
        return ModelSpec(id=name, provider=provider, kind="embedding", capabilities=("embedding",))
    return ModelSpec(id=name, provider=provider)


def parse_specs(raw: list[Any], provider: str) -> tuple[ModelSpec, ...]:
    if not isinstance(raw, list):
        raise InvalidInput(
            f"Provider {provider}: models must be a list", details={"field": "models"}
        )
    return tuple(ModelSpec.parse(item, provider) for item in raw)


def local_specs() -> tuple[ModelSpec, ...]:
    return (
        ModelSpec(
            id=EXTRACTIVE_MODEL,
            provider="local",
            name="Extractive answers (not a generative model)",
            capabilities=("extractive",),
            cost_per_1k_input=0.0,
            cost_per_1k_output=0.0,
            quality_score=0.3,
        ),
        ModelSpec(
            id=LOCAL_EMBEDDING_MODEL,
            provider="local",
            name="all-MiniLM-L6-v2 (shipped)",
            kind="embedding",
            capabilities=("embedding",),
            context_window=256,
            cost_per_1k_input=0.0,
            cost_per_1k_output=0.0,
            dimensions=DIMENSIONS,
        ),
    )
