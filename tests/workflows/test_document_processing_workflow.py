"""DocumentProcessingWorkflow's own logic: batching, progress, failures and retries.

Fake activities stand in for extraction, chunking, embedding and indexing, so
these tests watch what the workflow asks for and what it reports.
"""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from engine.documents.chunking import ChunkingConfig
from tests.workflows.fakes import FakeActivities, Hold, serve
from workflows.activities import Activity
from workflows.document_payloads import DocumentRef, EmbeddingSpec, ExtractInput, FinishInput
from workflows.document_processing import (
    DocumentProcessingInput,
    DocumentProcessingResult,
    DocumentProcessingWorkflow,
    DocumentProgress,
)

pytestmark = pytest.mark.asyncio

TENANT = "ten_test"


def document(file_id: str = "file_1", **fields: object) -> DocumentProcessingInput:
    return DocumentProcessingInput(tenant_id=TENANT, file_id=file_id, **fields)


async def process(
    env: WorkflowEnvironment, fakes: FakeActivities, prefix: str, params: DocumentProcessingInput
) -> DocumentProcessingResult:
    async with serve(env.client, fakes, prefix) as queue:
        return await env.client.execute_workflow(
            DocumentProcessingWorkflow.run,
            params,
            id=f"doc-{params.file_id}-{prefix}",
            task_queue=queue,
        )


async def test_a_long_document_is_extracted_in_page_batches_and_embedded_in_chunk_batches(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities(pages=45, chunks=300, scanned=[3, 30])
    chunking = ChunkingConfig(fixed_token_count=200, overlap_count=20)  # not the default

    result = await process(skipping_env, fakes, prefix, document(chunking=chunking))

    extracts: list[ExtractInput] = fakes.called(Activity.EXTRACT_TEXT)
    assert [(e.first_page, e.last_page) for e in extracts] == [(1, 20), (21, 40), (41, 60)]
    # Only the first batch may be the whole document, so only it is asked to chunk.
    assert [e.chunking for e in extracts] == [chunking, None, None]
    [chunk] = fakes.called(Activity.CHUNK_TEXT)
    assert chunk.pages_keys == [
        f"work/{TENANT}/file_1/pages/00001.json",
        f"work/{TENANT}/file_1/pages/00021.json",
        f"work/{TENANT}/file_1/pages/00041.json",
    ]
    assert chunk.chunking == chunking
    embeds = fakes.called(Activity.EMBED_CHUNKS)
    assert [(e.start, e.end) for e in embeds] == [(0, 128), (128, 256), (256, 300)]
    assert {e.chunks_key for e in embeds} == {f"work/{TENANT}/file_1/chunks.json"}
    [index] = fakes.called(Activity.INDEX_CHUNKS)
    assert index.vectors_keys == [
        f"work/{TENANT}/file_1/vectors/{start:06d}.npy" for start in (0, 128, 256)
    ]
    # Success is recorded in the index transaction, not by a separate finish.
    assert index.finish is not None
    assert (index.finish.ok, index.finish.pages, index.finish.chunks) == (True, 45, 300)
    assert index.finish.model == "all-MiniLM-L6-v2"
    assert fakes.called(Activity.FINISH_DOCUMENT) == []
    assert result == DocumentProcessingResult(
        file_id="file_1",
        pages=45,
        chunks=300,
        ocr_pages=2,
        ocr_text="text from page 1",
        embedding_id="emb_file_1",
        model="all-MiniLM-L6-v2",
        chunks_key=f"work/{TENANT}/file_1/chunks.json",
    )


async def test_a_short_document_is_extracted_and_chunked_in_one_activity(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities(pages=5, chunks=40)

    result = await process(skipping_env, fakes, prefix, document())

    [extract] = fakes.called(Activity.EXTRACT_TEXT)
    assert (extract.first_page, extract.last_page) == (1, 20)
    assert fakes.called(Activity.CHUNK_TEXT) == []
    assert [(e.start, e.end) for e in fakes.called(Activity.EMBED_CHUNKS)] == [(0, 40)]
    assert (result.pages, result.chunks) == (5, 40)


@pytest.mark.parametrize(
    ("hold", "expected"),
    [
        (Hold(Activity.EXTRACT_TEXT, nth=2), DocumentProgress(
            stage="extracting", pages_done=20, pages_total=45, chunks_done=0, chunks_total=0)),
        (Hold(Activity.CHUNK_TEXT), DocumentProgress(
            stage="chunking", pages_done=45, pages_total=45, chunks_done=0, chunks_total=0)),
        (Hold(Activity.EMBED_CHUNKS, nth=2), DocumentProgress(
            stage="embedding", pages_done=45, pages_total=45, chunks_done=128, chunks_total=300)),
        (Hold(Activity.INDEX_CHUNKS), DocumentProgress(
            stage="indexing", pages_done=45, pages_total=45, chunks_done=300, chunks_total=300)),
    ],
    ids=["extracting", "chunking", "embedding", "indexing"],
)  # fmt: skip
async def test_the_progress_query_reports_the_stage_and_counts(
    skipping_env: WorkflowEnvironment, prefix: str, hold: Hold, expected: DocumentProgress
) -> None:
    fakes = FakeActivities(pages=45, chunks=300, hold=hold)
    async with serve(skipping_env.client, fakes, prefix) as queue:
        handle = await skipping_env.client.start_workflow(
            DocumentProcessingWorkflow.run,
            document(),
            id=f"doc-progress-{prefix}",
            task_queue=queue,
        )
        await hold.reached.wait()
        assert await handle.query(DocumentProcessingWorkflow.progress) == expected

        hold.release.set()
        await handle.result()
        done = await handle.query(DocumentProcessingWorkflow.progress)
    assert done == DocumentProgress(
        stage="completed", pages_done=45, pages_total=45, chunks_done=300, chunks_total=300
    )


@pytest.mark.parametrize(
    ("failing", "code"),
    [
        (Activity.EXTRACT_TEXT, "CORRUPT_FILE"),
        (Activity.CHUNK_TEXT, "NO_TEXT"),
        (Activity.EMBED_CHUNKS, "MODEL_NOT_AVAILABLE"),
    ],
)
async def test_a_permanent_error_fails_the_run_at_once_and_is_reported(
    skipping_env: WorkflowEnvironment, prefix: str, failing: Activity, code: str
) -> None:
    # Raised as an ordinary (retryable) error: the workflow's retry policy alone
    # must know that this type can never succeed.
    error = ApplicationError("this document can never be processed", type=code)
    fakes = FakeActivities(pages=30, chunks=200, failures={failing: [error]})

    with pytest.raises(WorkflowFailureError) as failed:
        await process(skipping_env, fakes, prefix, document())

    assert fakes.attempts(failing) == [1]
    assert fakes.called(Activity.INDEX_CHUNKS) == []
    [finish] = fakes.called(Activity.FINISH_DOCUMENT)
    assert finish == FinishInput(
        ref=DocumentRef(tenant_id=TENANT, file_id="file_1"),
        workflow_id=f"doc-file_1-{prefix}",
        ok=False,
        error_code=code,
        error_message="this document can never be processed",
    )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.message, cause.non_retryable) == (
        code,
        "this document can never be processed",
        True,
    )


async def test_a_transient_failure_is_retried_and_the_run_completes(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    # The first embed batch fails twice; Temporal retries it after a backoff
    # (skipped time) and the run goes on with the next batch.
    busy = [ApplicationError("model server busy", type="UPSTREAM_BUSY") for _ in range(2)]
    fakes = FakeActivities(pages=3, chunks=200, failures={Activity.EMBED_CHUNKS: busy})

    result = await process(skipping_env, fakes, prefix, document())

    embeds = fakes.called(Activity.EMBED_CHUNKS)
    assert [(e.start, e.end) for e in embeds] == [(0, 128), (0, 128), (0, 128), (128, 200)]
    assert fakes.attempts(Activity.EMBED_CHUNKS) == [1, 2, 3, 1]
    assert fakes.called(Activity.FINISH_DOCUMENT) == []
    [index] = fakes.called(Activity.INDEX_CHUNKS)
    assert index.finish is not None and index.finish.ok
    assert (result.pages, result.chunks) == (3, 200)


async def test_a_failure_that_outlasts_every_retry_fails_the_run_and_is_reported(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    # An unexpected exception, every time: 8 attempts (about 90 s of backoff,
    # skipped), then the file is marked failed with the error's type as its code.
    crashes = [RuntimeError("connection reset") for _ in range(10)]
    fakes = FakeActivities(pages=30, chunks=20, failures={Activity.CHUNK_TEXT: crashes})

    with pytest.raises(WorkflowFailureError) as failed:
        await process(skipping_env, fakes, prefix, document())

    assert fakes.attempts(Activity.CHUNK_TEXT) == list(range(1, 9))
    assert fakes.called(Activity.EMBED_CHUNKS) == []
    [finish] = fakes.called(Activity.FINISH_DOCUMENT)
    assert (finish.ok, finish.error_code, finish.error_message) == (
        False,
        "RuntimeError",
        "connection reset",
    )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "RuntimeError"


async def test_reembedding_reuses_the_chunks_and_skips_extraction(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities(chunks=200)
    spec = EmbeddingSpec(model="nomic-embed-text", endpoint_id="emb_ollama")
    key = f"work/{TENANT}/file_1/chunks.json"
    params = document(embedding=spec, reuse_chunks_key=key, reuse_chunks=200)

    result = await process(skipping_env, fakes, prefix, params)

    assert fakes.called(Activity.EXTRACT_TEXT) == []
    assert fakes.called(Activity.CHUNK_TEXT) == []
    embeds = fakes.called(Activity.EMBED_CHUNKS)
    assert [(e.start, e.end, e.chunks_key) for e in embeds] == [(0, 128, key), (128, 200, key)]
    assert {e.embedding.model for e in embeds} == {"nomic-embed-text"}
    assert {e.embedding.endpoint_id for e in embeds} == {"emb_ollama"}
    [index] = fakes.called(Activity.INDEX_CHUNKS)
    assert (index.chunks_key, index.model) == (key, "nomic-embed-text")
    assert result.model == "nomic-embed-text"
    assert (result.pages, result.chunks, result.chunks_key) == (0, 200, key)


async def test_without_an_embedding_the_document_is_chunked_and_finished(
    skipping_env: WorkflowEnvironment, prefix: str
) -> None:
    fakes = FakeActivities(pages=25, chunks=70)

    result = await process(skipping_env, fakes, prefix, document(embedding=None))

    assert fakes.called(Activity.EMBED_CHUNKS) == []
    assert fakes.called(Activity.INDEX_CHUNKS) == []
    [finish] = fakes.called(Activity.FINISH_DOCUMENT)
    assert (finish.ok, finish.pages, finish.chunks, finish.model) == (True, 25, 70, None)
    assert (result.embedding_id, result.model, result.chunks) == (None, None, 70)
