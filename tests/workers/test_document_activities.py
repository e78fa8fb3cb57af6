"""Document activities on real files, a real SQLite database and a real blob store.

Only the tests that chunk or embed load the local MiniLM (once per process).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from engine.db.tables import Chunk, Event, File, UsageRecord
from engine.documents.chunking import ChunkingConfig
from engine.events.catalog import EventType
from engine.storage.base import work_prefix
from tests.documents_support import make_pdf
from tests.workers.conftest import Workspace
from workflows.document_payloads import (
    ChunkInput,
    DocumentRef,
    EmbeddingSpec,
    EmbedInput,
    ExtractInput,
    FinishInput,
    IndexInput,
)

pytestmark = pytest.mark.asyncio

PAGES = [
    f"Page {n} of the annual report: revenue in region {n} grew again. "
    f"Sales of copper kettles to the hotels of region {n} doubled."
    for n in range(1, 26)
]


def collapsed(text: str) -> str:
    return " ".join(text.split())


async def add_pdf(workspace: Workspace, pages: list[str]) -> DocumentRef:
    return await workspace.add_file(make_pdf(pages), "report.pdf", "application/pdf")


async def write_chunks(workspace: Workspace, ref: DocumentRef, texts: list[str]) -> str:
    key = f"{work_prefix(ref.tenant_id, ref.file_id)}/chunks.json"
    items = [{"index": i, "page": 1, "text": text, "tokens": 5} for i, text in enumerate(texts)]
    await workspace.store.put_bytes(key, json.dumps(items).encode())
    return key


async def write_vectors(workspace: Workspace, ref: DocumentRef, rows: int) -> str:
    key = f"{work_prefix(ref.tenant_id, ref.file_id)}/vectors/test/000000.npy"
    buffer = io.BytesIO()
    np.save(buffer, np.ones((rows, 384), dtype=np.float32))
    await workspace.store.put_bytes(key, buffer.getvalue())
    return key


async def test_extract_text_reads_one_page_batch_and_heartbeats_every_page(
    workspace: Workspace, activity_env: ActivityEnvironment, heartbeats: list[tuple[object, ...]]
) -> None:
    ref = await add_pdf(workspace, PAGES)

    result = await activity_env.run(
        workspace.documents.extract_text, ExtractInput(ref=ref, first_page=21, last_page=40)
    )

    assert heartbeats == [(21,), (22,), (23,), (24,), (25,)]
    assert (result.pages, result.pages_total, result.ocr_pages) == (5, 25, 0)
    assert result.chunked is None  # not asked to chunk (a later batch never is)
    assert result.excerpt.startswith("Page 21 of the annual report: revenue in region 21")
    assert result.pages_key == f"work/{ref.tenant_id}/{ref.file_id}/pages/00021.json"
    stored = json.loads(await workspace.store.read_bytes(result.pages_key))
    assert [page["page"] for page in stored] == [21, 22, 23, 24, 25]
    assert [collapsed(page["text"]) for page in stored] == PAGES[20:]


async def test_a_document_within_one_batch_is_chunked_by_the_same_activity(
    workspace: Workspace, activity_env: ActivityEnvironment
) -> None:
    ref = await add_pdf(workspace, PAGES[:3])
    chunking = ChunkingConfig(fixed_token_count=16, overlap_count=0)

    result = await activity_env.run(
        workspace.documents.extract_text,
        ExtractInput(ref=ref, first_page=1, last_page=20, chunking=chunking),
    )

    assert result.chunked is not None
    chunks = json.loads(await workspace.store.read_bytes(result.chunked.chunks_key))
    assert len(chunks) == result.chunked.chunks
    assert [chunk["index"] for chunk in chunks] == list(range(len(chunks)))
    # Each page is longer than 16 tokens, so each is cut into more than one chunk.
    pages = [chunk["page"] for chunk in chunks]
    assert pages == sorted(pages) and all(pages.count(page) > 1 for page in (1, 2, 3))
    assert all(chunk["tokens"] <= 16 for chunk in chunks)
    assert sum(chunk["tokens"] for chunk in chunks) == result.chunked.tokens
    assert "region 2 grew" in " ".join(chunk["text"] for chunk in chunks if chunk["page"] == 2)


async def test_chunk_text_chunks_every_page_batch_in_page_order(
    workspace: Workspace, activity_env: ActivityEnvironment
) -> None:
    ref = await add_pdf(workspace, PAGES)
    batches = [
        await activity_env.run(
            workspace.documents.extract_text,
            ExtractInput(ref=ref, first_page=first, last_page=last),
        )
        for first, last in ((1, 20), (21, 40))
    ]

    result = await activity_env.run(
        workspace.documents.chunk_text,
        ChunkInput(ref=ref, pages_keys=[batch.pages_key for batch in batches]),
    )

    chunks = json.loads(await workspace.store.read_bytes(result.chunks_key))
    # Each page is one short chunk with the default configuration.
    assert result.chunks == 25
    assert [chunk["page"] for chunk in chunks] == list(range(1, 26))
    assert [collapsed(chunk["text"]) for chunk in chunks] == PAGES


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"%PDF-1.7\n this is no PDF at all \n%%EOF", "CORRUPT_FILE"),
        (None, "FILE_MISSING"),  # the upload's bytes are gone from the store
    ],
    ids=["corrupt", "blob-gone"],
)
async def test_a_file_that_can_never_be_read_fails_permanently(
    workspace: Workspace, activity_env: ActivityEnvironment, content: bytes | None, code: str
) -> None:
    ref = await workspace.add_file(content or make_pdf(PAGES[:1]), "broken.pdf", "application/pdf")
    if content is None:
        await workspace.store.delete_prefix(f"files/{ref.tenant_id}/{ref.file_id}")

    with pytest.raises(ApplicationError) as failed:
        await activity_env.run(
            workspace.documents.extract_text, ExtractInput(ref=ref, first_page=1, last_page=20)
        )

    assert (failed.value.type, failed.value.non_retryable) == (code, True)


async def test_a_file_deleted_while_queued_fails_permanently(
    workspace: Workspace, activity_env: ActivityEnvironment
) -> None:
    gone = DocumentRef(tenant_id=workspace.tenant_id, file_id="file_deleted")

    with pytest.raises(ApplicationError) as failed:
        await activity_env.run(
            workspace.documents.extract_text, ExtractInput(ref=gone, first_page=1, last_page=20)
        )

    assert (failed.value.type, failed.value.non_retryable) == ("FILE_MISSING", True)


async def test_pages_without_any_text_fail_permanently(
    workspace: Workspace, activity_env: ActivityEnvironment
) -> None:
    ref = await add_pdf(workspace, ["", " "])
    batch = await activity_env.run(
        workspace.documents.extract_text,
        ExtractInput(ref=ref, first_page=1, last_page=20, ocr=False),
    )

    with pytest.raises(ApplicationError) as failed:
        await activity_env.run(
            workspace.documents.chunk_text, ChunkInput(ref=ref, pages_keys=[batch.pages_key])
        )

    assert (failed.value.type, failed.value.non_retryable) == ("NO_TEXT", True)


async def test_embed_chunks_heartbeats_each_sub_batch_and_stores_unit_vectors(
    workspace: Workspace, activity_env: ActivityEnvironment, heartbeats: list[tuple[object, ...]]
) -> None:
    ref = await add_pdf(workspace, PAGES[:1])
    texts = [f"Sentence number {n} about copper kettles." for n in range(140)]
    key = await write_chunks(workspace, ref, texts)
    params = EmbedInput(
        ref=ref, chunks_key=key, start=100, end=140, embedding=EmbeddingSpec(), workflow_id="doc-1"
    )

    result = await activity_env.run(workspace.documents.embed_chunks, params)

    # Sub-batches of 32: progress is reported as the chunk position reached.
    assert heartbeats == [(132,), (140,)]
    assert (result.count, result.model, result.dimensions) == (40, "all-MiniLM-L6-v2", 384)
    vectors = np.load(io.BytesIO(await workspace.store.read_bytes(result.vectors_key)))
    assert vectors.shape == (40, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    async with workspace.sessions() as session:
        usage = (await session.scalars(select(UsageRecord))).all()
    assert [(u.kind, u.model, u.prompt_tokens) for u in usage] == [
        ("embedding", "all-MiniLM-L6-v2", result.tokens)
    ]
    assert result.tokens > 0


async def test_embedding_with_a_model_no_worker_has_fails_permanently(
    workspace: Workspace, activity_env: ActivityEnvironment
) -> None:
    ref = await add_pdf(workspace, PAGES[:1])
    key = await write_chunks(workspace, ref, ["some text"])
    params = EmbedInput(
        ref=ref,
        chunks_key=key,
        start=0,
        end=1,
        embedding=EmbeddingSpec(model="text-embedding-unheard-of"),
        workflow_id="doc-1",
    )

    with pytest.raises(ApplicationError) as failed:
        await activity_env.run(workspace.documents.embed_chunks, params)

    assert (failed.value.type, failed.value.non_retryable) == ("MODEL_NOT_AVAILABLE", True)


async def test_indexing_twice_leaves_the_same_chunks_and_marks_the_file_processed(
    workspace: Workspace, activity_env: ActivityEnvironment
) -> None:
    ref = await add_pdf(workspace, PAGES[:1])
    chunks_key = await write_chunks(workspace, ref, ["alpha text", "beta text", "gamma text"])
    vectors_key = await write_vectors(workspace, ref, rows=3)
    finish = FinishInput(ref=ref, workflow_id="doc-1", ok=True, pages=1, chunks=3, model="test")
    params = IndexInput(
        ref=ref, chunks_key=chunks_key, vectors_keys=[vectors_key], model="test", finish=finish
    )

    for _ in range(2):  # a retried activity must not duplicate anything
        result = await activity_env.run(workspace.documents.index_chunks, params)

    assert (result.chunks, result.vectors) == (3, 3)
    async with workspace.sessions() as session:
        chunks = (await session.scalars(select(Chunk).order_by(Chunk.chunk_index))).all()
        row = await session.get(File, ref.file_id)
        processed = await session.scalar(
            select(func.count()).select_from(Event).where(Event.type == EventType.FILE_PROCESSED)
        )
    assert [chunk.text for chunk in chunks] == ["alpha text", "beta text", "gamma text"]
    assert row is not None
    assert (row.status, row.chunks, row.embedding_model) == ("processed", 3, "test")
    assert processed == 1


async def test_indexing_fewer_vectors_than_chunks_fails_permanently(
    workspace: Workspace, activity_env: ActivityEnvironment
) -> None:
    ref = await add_pdf(workspace, PAGES[:1])
    chunks_key = await write_chunks(workspace, ref, ["alpha", "beta", "gamma"])
    vectors_key = await write_vectors(workspace, ref, rows=2)
    params = IndexInput(ref=ref, chunks_key=chunks_key, vectors_keys=[vectors_key], model="test")

    with pytest.raises(ApplicationError) as failed:
        await activity_env.run(workspace.documents.index_chunks, params)

    assert (failed.value.type, failed.value.non_retryable) == ("INDEX_MISMATCH", True)


async def test_a_failed_run_marks_the_file_failed_and_reports_it_once(
    workspace: Workspace, activity_env: ActivityEnvironment
) -> None:
    ref = await add_pdf(workspace, PAGES[:1])
    failed = FinishInput(
        ref=ref,
        workflow_id="doc-1",
        ok=False,
        error_code="CORRUPT_FILE",
        error_message="the PDF cannot be read",
    )

    for _ in range(2):  # retried: still one event
        await activity_env.run(workspace.documents.finish_document, failed)

    async with workspace.sessions() as session:
        row = await session.get(File, ref.file_id)
        events = (
            await session.scalars(select(Event).where(Event.type == EventType.WORKFLOW_FAILED))
        ).all()
    assert row is not None
    assert (row.status, row.error_code, row.error_message, row.workflow_id) == (
        "failed",
        "CORRUPT_FILE",
        "the PDF cannot be read",
        "doc-1",
    )
    assert [event.data for event in events] == [
        {
            "execution_id": "doc-1",
            "file_id": ref.file_id,
            "error": {"code": "CORRUPT_FILE", "message": "the PDF cannot be read"},
        }
    ]
