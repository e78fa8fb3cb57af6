"""Partio's semantic cells: chunk and embed text a client sends, without a file.

The cells wait in blob storage while a ``SemanticCellsWorkflow`` chunks and
embeds them on the workers; the caller waits for the run, and the blobs are
removed whatever happens.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from temporalio.client import Client

from engine.db.scope import TenantScope
from engine.db.tables import EmbeddingEndpoint
from engine.platform.egress import UpstreamUnreachable, check_destination
from engine.platform.errors import InvalidInput, WeftError
from engine.platform.runs import RunFailed, RunOptions, RunTimedOut, execute_run
from engine.platform.settings import Settings
from engine.storage.base import BlobStore, cells_prefix
from workflows.document_payloads import AssembleResult, CellsInput
from workflows.semantic_cells import SemanticCellsWorkflow

MAX_CELLS = 1000
RUN_TIMEOUT = timedelta(minutes=30)


async def process_cells(
    db: TenantScope,
    client: Client,
    store: BlobStore,
    settings: Settings,
    endpoint_id: str,
    cells: list[dict[str, Any]],
    *,
    started_by: str,
) -> list[dict[str, Any]]:
    """Chunk and embed ``cells`` with the endpoint's model; one result per cell."""
    endpoint = await db.get(EmbeddingEndpoint, endpoint_id, what="endpoint")
    if not endpoint.active:
        raise InvalidInput(f"endpoint {endpoint_id} is inactive")
    if not 1 <= len(cells) <= MAX_CELLS:
        raise InvalidInput(f"send 1 to {MAX_CELLS} cells")
    if endpoint.api_format != "Local" and endpoint.endpoint:
        # A forbidden or unresolvable endpoint answers now (400 / 502), not
        # after the embedding activity has been retried for minutes.
        await check_destination(endpoint.endpoint, settings)
    batch_id = uuid.uuid4().hex
    prefix = cells_prefix(endpoint.tenant_id, batch_id)
    key = f"{prefix}/cells.json"
    await store.put_bytes(key, json.dumps(cells).encode())
    params = CellsInput(
        tenant_id=endpoint.tenant_id,
        batch_id=batch_id,
        cells_key=key,
        endpoint_id=None if endpoint.api_format == "Local" else endpoint.id,
        model=endpoint.model,
    )
    run = RunOptions(
        workflow_id=f"cells-{batch_id}",
        kind="semantic_cells",
        tenant_id=endpoint.tenant_id,
        started_by=started_by,
        definition_id=endpoint.id,
        summary=f"Process {len(cells)} semantic cell(s) with {endpoint.model}",
        execution_timeout=RUN_TIMEOUT,
    )
    try:
        result: AssembleResult = await execute_run(
            client, settings, SemanticCellsWorkflow.run, params, run
        )
        answer: list[dict[str, Any]] = json.loads(await store.read_bytes(result.result_key))
    except RunFailed as exc:
        raise _endpoint_failure(exc, endpoint) from exc
    finally:
        await store.delete_prefix(prefix)
    return answer


def _endpoint_failure(exc: RunFailed, endpoint: EmbeddingEndpoint) -> WeftError:
    """The run's failure as the caller should see it: an endpoint that cannot be
    reached (502) or did not answer in time (504) says so, naming the endpoint by
    id and host (never its full URL, which may hold credentials)."""
    reason = exc.details.get("reason")
    parts = urlsplit(endpoint.endpoint or "")
    where = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    details = {**exc.details, "endpoint_id": endpoint.id, "host": where}
    if reason == "ProviderUnavailable":
        return UpstreamUnreachable(
            f"Embedding endpoint {endpoint.id} ({where}) cannot be reached", details=details
        )
    if reason == "ProviderTimeout":
        return RunTimedOut(
            f"Embedding endpoint {endpoint.id} ({where}) did not answer in time",
            details=details,
        )
    return exc
