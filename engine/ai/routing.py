"""Model routing: pick the model that fits a request best, and say why.

Candidates are every chat model the registry knows. A candidate is excluded
when its provider is not among those asked for, its breaker is open, it lacks
a required capability, its context window is too small, or its estimated cost
exceeds ``budget_limit``. The rest are ranked by priority:

- ``cost``: lowest estimated cost (price table × estimated tokens);
- ``performance``: lowest measured latency, penalised by the error rate;
- ``balanced``: cost, latency and quality normalised and weighed together.

Latency and error rates are measured on real calls (``engine.ai.stats``);
an unmeasured model counts with its declared ``avg_latency_ms`` or a neutral
default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from engine.ai.breakers import BreakerState
from engine.ai.chat import ChatOutcome, complete_on, should_fall_back
from engine.ai.providers.base import ChatRequest, ModelNotAvailable
from engine.ai.providers.registry import Resolved
from engine.ai.runtime import CallContext, ModelRuntime
from engine.ai.usage import price_for

Priority = Literal["cost", "performance", "balanced"]
UNMEASURED_LATENCY_MS = 1000.0
MAX_ATTEMPTS = 3  # the best candidate and two alternatives
DEFAULT_QUALITY = 0.7
REASONS = {"cost": "cost_optimized", "performance": "performance_optimized"}
TASK_CAPABILITIES = {
    "code": "code",
    "coding": "code",
    "vision": "vision",
    "image": "vision",
    "reasoning": "reasoning",
    "tools": "tools",
}


def capabilities_for(task_type: str | None, extra: list[str] | None = None) -> tuple[str, ...]:
    wanted = {"text", *(extra or [])}
    if task_type and task_type.lower() in TASK_CAPABILITIES:
        wanted.add(TASK_CAPABILITIES[task_type.lower()])
    return tuple(sorted(wanted))


@dataclass(frozen=True)
class RouteRequest:
    prompt_tokens: int
    max_tokens: int
    priority: Priority = "balanced"
    capabilities: tuple[str, ...] = ("text",)
    budget_limit: float | None = None
    providers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    target: Resolved
    estimated_cost: float
    latency_ms: float
    samples: int
    error_rate: float
    quality: float
    context_window: int | None
    capabilities: tuple[str, ...]

    @property
    def provider(self) -> str:
        return self.target.entry.name

    @property
    def model(self) -> str:
        return self.target.model

    @property
    def confidence(self) -> float:
        """How much measurement backs the choice (0.5 unmeasured, 1.0 at 20+ calls)."""
        return round(0.5 + 0.5 * min(1.0, self.samples / 20), 2)


@dataclass(frozen=True)
class RouteDecision:
    ranked: list[Candidate]
    reason: str
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def chosen(self) -> Candidate:
        return self.ranked[0]


def _normalise(values: list[float]) -> list[float]:
    low, high = min(values), max(values)
    return [0.0 if high == low else (v - low) / (high - low) for v in values]


def rank(candidates: list[Candidate], priority: Priority) -> list[Candidate]:
    if priority == "cost":
        return sorted(candidates, key=lambda c: (c.estimated_cost, c.latency_ms, -c.quality))
    if priority == "performance":
        return sorted(
            candidates,
            key=lambda c: (c.latency_ms * (1 + 4 * c.error_rate), -c.quality, c.estimated_cost),
        )
    costs = _normalise([c.estimated_cost for c in candidates])
    latencies = _normalise([c.latency_ms for c in candidates])
    scores = [
        0.4 * cost + 0.3 * latency + 0.3 * (1 - c.quality) + c.error_rate
        for c, cost, latency in zip(candidates, costs, latencies, strict=True)
    ]
    order = sorted(range(len(candidates)), key=lambda i: (scores[i], candidates[i].estimated_cost))
    return [candidates[i] for i in order]


async def candidates(
    rt: ModelRuntime, request: RouteRequest
) -> tuple[list[Candidate], dict[str, str]]:
    targets = await rt.registry.chat_candidates()
    prices = await rt.registry.price_table()
    stats = await rt.stats.get([f"{t.entry.name}/{t.model}" for t in targets])
    found, excluded = [], {}
    for target in targets:
        name = f"{target.entry.name}/{target.model}"
        spec = target.spec
        capabilities = spec.capabilities if spec else ("text",)
        context = spec.context_window if spec else None
        cost = price_for(target.model, prices).cost(request.prompt_tokens, request.max_tokens)
        if request.providers and target.entry.name not in request.providers:
            excluded[name] = "provider_not_requested"
        elif rt.breakers.state(target.entry.name) is BreakerState.OPEN:
            excluded[name] = "circuit_open"
        elif not set(request.capabilities) <= set(capabilities):
            excluded[name] = "missing_capability"
        elif context is not None and request.prompt_tokens + request.max_tokens > context:
            excluded[name] = "context_too_small"
        elif request.budget_limit is not None and cost > request.budget_limit:
            excluded[name] = "over_budget_limit"
        else:
            stat = stats[name]
            declared = spec.avg_latency_ms if spec else None
            found.append(
                Candidate(
                    target=target,
                    estimated_cost=cost,
                    latency_ms=stat.avg_latency_ms or declared or UNMEASURED_LATENCY_MS,
                    samples=stat.calls,
                    error_rate=stat.error_rate,
                    quality=(spec.quality_score if spec else None) or DEFAULT_QUALITY,
                    context_window=context,
                    capabilities=capabilities,
                )
            )
    return found, excluded


async def choose(rt: ModelRuntime, request: RouteRequest) -> RouteDecision:
    """Rank the models that meet the constraints; ModelNotAvailable when none does."""
    found, excluded = await candidates(rt, request)
    if found:
        return RouteDecision(
            rank(found, request.priority), REASONS.get(request.priority, "balanced"), excluded
        )
    remote = [e for e in await rt.registry.entries() if e.kind != "local"]
    local_allowed = not request.providers or "local" in request.providers
    if not remote and local_allowed:
        # Nothing generative is configured: the local provider answers, and
        # says in its model name that it only quotes.
        local = await rt.registry.resolve(None)
        only = Candidate(local, 0.0, 0.0, 0, 0.0, 0.3, None, ("extractive",))
        return RouteDecision([only], "no_generative_model_configured", excluded)
    raise ModelNotAvailable(
        "No model meets the routing constraints",
        details={"excluded": excluded, "providers": request.providers or None},
    )


@dataclass(frozen=True)
class Routed:
    outcome: ChatOutcome
    decision: RouteDecision
    used: Candidate


async def route_and_complete(
    rt: ModelRuntime,
    ctx: CallContext,
    route: RouteRequest,
    request: ChatRequest,
    *,
    fallback_model: str | None = None,
) -> Routed:
    """Answer on the best candidate; on failure, the next ones, then ``fallback_model``."""
    decision = await choose(rt, route)
    failure: Exception | None = None
    for candidate in decision.ranked[:MAX_ATTEMPTS]:
        try:
            outcome = await complete_on(rt, ctx, candidate.target, request)
        except Exception as exc:
            if not should_fall_back(exc):
                raise
            failure = exc
            continue
        if candidate is not decision.chosen:
            outcome = replace(
                outcome, fallback_from=f"{decision.chosen.provider}/{decision.chosen.model}"
            )
        return Routed(outcome, decision, candidate)
    if fallback_model:
        target = await rt.registry.resolve(fallback_model)
        outcome = await complete_on(rt, ctx, target, request)
        outcome = replace(
            outcome, fallback_from=f"{decision.chosen.provider}/{decision.chosen.model}"
        )
        used = Candidate(
            target, outcome.cost_usd, outcome.latency_ms, 0, 0.0, DEFAULT_QUALITY, None, ()
        )
        return Routed(outcome, decision, used)
    if failure is None:  # no candidate at all; choose() raised before this
        raise ModelNotAvailable("No model meets the routing constraints")
    raise failure
