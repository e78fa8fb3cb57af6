"""Temporal SDK telemetry: the workers' Prometheus endpoint and optional tracing.

- ``WEFT_WORKER_METRICS_ADDRESS`` (``host:port``): the worker process's Temporal
  runtime serves the SDK's own metrics (``temporal_…`` series: task slots,
  poll latencies, activity and workflow task outcomes) at
  ``http://host:port/metrics``. The runtime is made once per process and handed
  to ``temporal.connect``, so it is in place before the first connection.
- ``WEFT_OTEL_TRACING``: spans for workflow starts, signals, queries, workflow
  and activity executions (``temporalio.contrib.opentelemetry``), propagated
  API -> workflow -> activity through Temporal headers. Needs the ``otel``
  extra (``opentelemetry-sdk``); without it the setting is reported and ignored.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import cache

from temporalio.client import Interceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from engine.platform.settings import Settings

log = logging.getLogger("weft.telemetry")


@cache
def _metrics_runtime(address: str) -> Runtime:
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


def worker_runtime(settings: Settings) -> Runtime | None:
    """The Temporal runtime that serves SDK metrics at ``worker_metrics_address``
    (one per process and address: the port is bound when it is made)."""
    if not settings.worker_metrics_address:
        return None
    runtime = _metrics_runtime(settings.worker_metrics_address)
    log.info("Temporal SDK metrics at http://%s/metrics", settings.worker_metrics_address)
    return runtime


def tracing_available() -> bool:
    return importlib.util.find_spec("opentelemetry.sdk") is not None


@cache
def _install_tracer_provider() -> None:
    """A global SDK tracer provider, exporting over OTLP when that exporter is installed
    (its endpoint from the standard ``OTEL_EXPORTER_OTLP_*`` variables)."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # the embedding application configured its own
    provider = TracerProvider(resource=Resource.create({"service.name": "weftworks"}))
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.info("OpenTelemetry tracing on, no OTLP exporter installed: spans stay in-process")
    else:
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def client_interceptors(settings: Settings) -> list[Interceptor]:
    """Interceptors for every Temporal client (and so every worker built on one)."""
    if not settings.otel_tracing:
        return []
    if not tracing_available():
        log.warning(
            "WEFT_OTEL_TRACING is on but opentelemetry-sdk is not installed "
            "(pip install 'weftworks[otel]'); tracing is off"
        )
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    _install_tracer_provider()
    return [TracingInterceptor()]
