"""Prometheus metrics of this process (``prometheus-client``'s default registry).

The API serves them at ``/metrics``; the series are per process (several API
processes each expose their own, and Prometheus sums them). Labels are bounded:
route templates (never raw paths), methods, statuses, rate-limit groups, and
the provider, model and kind of a model call (never tenant or user ids).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.exposition import choose_encoder

UNMATCHED_ROUTE = "unmatched"  # 404s and refusals before routing: one label, not every path
_MAX_LABEL = 100

HTTP_REQUESTS = Counter(
    "weft_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "weft_http_request_duration_seconds",
    "Time from request to the end of the response, by route template and method",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMITED = Counter(
    "weft_rate_limited_requests",
    "Requests refused with 429 (rate limits and lockouts), by rate-limit group",
    ["group"],
)
MODEL_CALLS = Counter(
    "weft_model_calls",
    "Model calls recorded in the usage ledger, by provider, model, kind and outcome",
    ["provider", "model", "kind", "outcome"],
)
MODEL_TOKENS = Counter(
    "weft_model_tokens",
    "Tokens of recorded model calls (direction: prompt or completion)",
    ["provider", "model", "kind", "direction"],
)
MODEL_COST = Counter(
    "weft_model_cost_usd",
    "Cost in US dollars of recorded model calls",
    ["provider", "model", "kind"],
)


def _label(value: str | None) -> str:
    return (value or "unknown")[:_MAX_LABEL]


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def observe_model_call(
    *,
    provider: str | None,
    model: str | None,
    kind: str,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost_usd: float = 0.0,
    success: bool = True,
    cached: bool = False,
) -> None:
    labels = (_label(provider), _label(model), _label(kind))
    outcome = "error" if not success else "cached" if cached else "ok"
    MODEL_CALLS.labels(*labels, outcome).inc()
    if prompt_tokens > 0:
        MODEL_TOKENS.labels(*labels, "prompt").inc(prompt_tokens)
    if completion_tokens > 0:
        MODEL_TOKENS.labels(*labels, "completion").inc(completion_tokens)
    if cost_usd > 0:
        MODEL_COST.labels(*labels).inc(cost_usd)


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The registry in the text format the scraper asked for, and its content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(REGISTRY), content_type


@dataclass(frozen=True)
class HttpSummary:
    """What sutazai's ``performance_metrics`` shows, from the counters above."""

    total_requests: int
    error_requests: int  # 5xx
    avg_response_time_ms: float
    p95_response_time_ms: float


def http_summary() -> HttpSummary:
    total = errors = 0
    seconds = 0.0
    observed = 0.0
    buckets: dict[float, float] = {}
    for metric in HTTP_REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                total += int(sample.value)
                if sample.labels.get("status", "").startswith("5"):
                    errors += int(sample.value)
    for metric in HTTP_LATENCY.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                seconds += sample.value
            elif sample.name.endswith("_count"):
                observed += sample.value
            elif sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return HttpSummary(
        total_requests=total,
        error_requests=errors,
        avg_response_time_ms=round(seconds / observed * 1000, 3) if observed else 0.0,
        p95_response_time_ms=_quantile_ms(buckets, observed, 0.95),
    )


def _quantile_ms(buckets: dict[float, float], count: float, q: float) -> float:
    """The upper bound of the bucket holding the q-quantile (Prometheus-style estimate)."""
    if not count:
        return 0.0
    target = q * count
    finite = sorted(bound for bound in buckets if bound != float("inf"))
    for bound in finite:
        if buckets[bound] >= target:
            return round(bound * 1000, 3)
    return round(finite[-1] * 1000, 3) if finite else 0.0


@dataclass(frozen=True)
class ModelSummary:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


def _total(counter: Counter, **match: str) -> float:
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
        and all(sample.labels.get(key) == value for key, value in match.items())
    )


def model_summary() -> ModelSummary:
    """This process's recorded model calls, all providers and models together."""
    return ModelSummary(
        calls=int(_total(MODEL_CALLS)),
        prompt_tokens=int(_total(MODEL_TOKENS, direction="prompt")),
        completion_tokens=int(_total(MODEL_TOKENS, direction="completion")),
        cost_usd=round(_total(MODEL_COST), 6),
    )


def rate_limited_total() -> int:
    return int(_total(RATE_LIMITED))
