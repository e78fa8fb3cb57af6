"""Files in, cited answers out: the document pipeline through the API with a real worker."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.app import create_app
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import Chunk, ChunkVector, Event, File, UsageRecord
from engine.platform.settings import Settings
from tests.conftest import IDLE_NAMESPACE, DocStack, api_client, free_port
from tests.documents_support import make_pdf, make_png, upload, wait_run

pytestmark = pytest.mark.asyncio

PAGES = [
    "Weftworks orchestrates AI work on Temporal task queues. " * 3,
    "The quarterly revenue of the Zorblat company reached 42 million euros in March. "
    "Most of it came from the sale of copper kettles to Norwegian hotels.",
    "Appendix: the office plants are watered every Tuesday by the facilities team.",
]


async def count(settings: Settings, model: type, **where: str) -> int:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            query = select(func.count()).select_from(model)
            for name, value in where.items():
                query = query.where(getattr(model, name) == value)
            return int(await session.scalar(query) or 0)
    finally:
        await engine.dispose()


async def test_pdf_upload_process_and_cited_rag_answer(doc_stack: DocStack) -> None:
    http, headers = doc_stack.http, doc_stack.headers
    pdf = make_pdf(PAGES)
    response = await upload(
        http, headers, "report.pdf", pdf, "application/pdf", project_id="proj_1"
    )
    assert response.status_code == 201, response.text
    uploaded = response.json()["data"]
    assert uploaded["mime_type"] == "application/pdf" and uploaded["size"] > 0
    assert len(uploaded["sha256"]) == 64
    run = await wait_run(http, headers, uploaded["execution_id"])
    assert run["status"] == "completed", run
    assert run["result"]["pages"] == 3 and run["result"]["chunks"] >= 3
    assert run["result"]["embedding_id"] and "Weftworks" in run["result"]["ocr_text"]

    answer = await http.post(
        "/api/v1/ai/rag/query",
        headers=headers,
        json={"query": "How much revenue did Zorblat make?", "top_k": 3, "include_citations": True},
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    first = data["citations"][0]
    assert first["file_id"] == uploaded["file_id"] and first["page"] == 2
    assert "42 million" in first["text"] and 0 < first["score"] <= 1
    assert data["contexts_used"] == len(data["citations"])
    assert "extractive" in data["model"] and "42 million" in data["answer"]

    # The upload's project is a collection; a collection nobody uploaded to is 404.
    scoped = await http.post("/api/v1/ai/rag/query", headers=headers, json={
        "query": "How much revenue did Zorblat make?", "collection": "proj_1"})  # fmt: skip
    assert scoped.json()["data"]["citations"][0]["file_id"] == uploaded["file_id"]
    unknown = await http.post("/api/v1/ai/rag/query", headers=headers, json={
        "query": "How much revenue did Zorblat make?", "collection": "made-up"})  # fmt: skip
    assert unknown.status_code == 404 and "made-up" in unknown.json()["error"]["message"]
    # A question nothing in the documents is about: no passage is passed off as an answer.
    unrelated = await http.post("/api/v1/ai/rag/query", headers=headers, json={
        "query": "What is the airspeed velocity of an unladen swallow?"})  # fmt: skip
    off = unrelated.json()["data"]
    assert off["answer"] == "No indexed document is relevant to the question."
    assert (off["contexts_used"], off["citations"]) == (0, [])

    listed = (await http.get("/api/v1/mcp/files?project_id=proj_1", headers=headers)).json()
    assert listed["data"]["pagination"] == {"total": 1, "limit": 20, "offset": 0, "has_more": False}
    assert listed["data"]["files"][0]["status"] == "processed"
    download = await http.get(f"/api/v1/mcp/files/{uploaded['file_id']}/download", headers=headers)
    assert download.content == pdf
    assert download.headers["content-disposition"].startswith("attachment;")

    settings = doc_stack.settings
    types = {t for t in await _event_types(settings)}
    assert {"file.uploaded", "file.processed", "workflow.completed"} <= types
    assert await count(settings, UsageRecord, kind="embedding") >= 1


async def _event_types(settings: Settings) -> list[str]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            return list((await session.scalars(select(Event.type))).all())
    finally:
        await engine.dispose()


async def test_png_is_ocred_and_text_file_is_indexed(doc_stack: DocStack) -> None:
    http, headers = doc_stack.http, doc_stack.headers
    png = await upload(http, headers, "scan.png", make_png("Invoice total 4200 euros"))
    text = await upload(http, headers, "notes.txt", b"Lunch is served at noon in the atrium.")
    assert png.status_code == text.status_code == 201
    png_run = await wait_run(http, headers, png.json()["data"]["execution_id"])
    text_run = await wait_run(http, headers, text.json()["data"]["execution_id"])
    assert png_run["status"] == "completed" and png_run["result"]["ocr_pages"] == 1
    assert "4200" in png_run["result"]["ocr_text"]
    assert text_run["status"] == "completed"
    answer = (
        await http.post(
            "/api/v1/ai/rag/query", headers=headers, json={"query": "What is the invoice total?"}
        )
    ).json()["data"]
    assert answer["citations"][0]["file_id"] == png.json()["data"]["file_id"]


@pytest.mark.parametrize(
    ("name", "data", "content_type", "status", "code"),
    [
        ("empty.pdf", b"", "application/pdf", 422, "VALIDATION_ERROR"),
        ("fake.pdf", make_png("not a pdf"), "application/pdf", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("../../etc/passwd.txt", b"hello", "text/plain", 422, "VALIDATION_ERROR"),
        (
            "blob.bin",
            b"\x00\x01\x02\x03" * 100,
            "application/octet-stream",
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
    ],
)
async def test_bad_uploads_are_refused_and_leave_nothing(
    doc_stack: DocStack, name: str, data: bytes, content_type: str, status: int, code: str
) -> None:
    response = await upload(doc_stack.http, doc_stack.headers, name, data, content_type)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert await count(doc_stack.settings, File) == 0
    blobs = doc_stack.settings.data_dir / "blobs" / "files"
    assert not blobs.exists() or not any(p.is_file() for p in blobs.rglob("*"))


async def test_decompression_bomb_image_is_refused(doc_stack: DocStack) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buffer, format="PNG")  # 144 Mpx, a few KB
    response = await upload(doc_stack.http, doc_stack.headers, "bomb.png", buffer.getvalue())
    assert response.status_code == 422 and "too large" in response.json()["error"]["message"]
    assert await count(doc_stack.settings, File) == 0


async def test_oversized_upload_is_413(doc_stack: DocStack) -> None:
    from api.app import create_app
    from tests.conftest import api_client

    small = doc_stack.settings.model_copy(update={"max_upload_bytes": 1000})
    async with api_client(create_app(small)) as http:
        response = await upload(http, doc_stack.headers, "big.txt", b"a" * 5000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert await count(doc_stack.settings, File) == 0


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("broken.pdf", b"%PDF-1.4\n" + b"garbage" * 200, "CORRUPT_FILE"),
        ("blank.txt", b"   \n\n   ", "NO_TEXT"),
    ],
)
async def test_unreadable_documents_fail_the_run_with_a_code(
    doc_stack: DocStack, name: str, data: bytes, code: str
) -> None:
    http, headers = doc_stack.http, doc_stack.headers
    response = await upload(http, headers, name, data)
    assert response.status_code == 201, response.text
    run = await wait_run(http, headers, response.json()["data"]["execution_id"], seconds=60)
    assert run["status"] == "failed"
    assert run["error"]["code"] == code and run["error"]["message"]
    file_id = response.json()["data"]["file_id"]
    assert await count(doc_stack.settings, Chunk, file_id=file_id) == 0
    meta = (await http.get(f"/api/v1/mcp/files/{file_id}", headers=headers)).json()["data"]
    assert meta["status"] == "failed" and meta["error"]["code"] == code


async def test_encrypted_pdf_fails_with_a_clear_code(doc_stack: DocStack) -> None:
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["secret text " * 10]))))
    writer.encrypt("password")
    buffer = io.BytesIO()
    writer.write(buffer)
    response = await upload(doc_stack.http, doc_stack.headers, "locked.pdf", buffer.getvalue())
    run = await wait_run(
        doc_stack.http, doc_stack.headers, response.json()["data"]["execution_id"], seconds=60
    )
    assert run["status"] == "failed" and run["error"]["code"] == "ENCRYPTED_FILE"


async def test_idempotent_upload_delete_and_isolation(doc_stack: DocStack) -> None:
    from tests.conftest import make_tenant

    http, headers = doc_stack.http, doc_stack.headers
    keyed = {**headers, "Idempotency-Key": "upload-1"}
    first = await upload(http, keyed, "a.txt", b"The first upload wins.", process="false")
    again = await upload(http, keyed, "b.txt", b"Something else entirely.", process="false")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["data"]["file_id"] == first.json()["data"]["file_id"]
    file_id = first.json()["data"]["file_id"]

    other = await make_tenant(doc_stack.settings, "other")
    foreign = {"X-API-Key": other.key}
    assert (await http.get(f"/api/v1/mcp/files/{file_id}", headers=foreign)).status_code == 404
    assert (
        await http.get(f"/api/v1/mcp/files/{file_id}/download", headers=foreign)
    ).status_code == 404
    assert (await http.delete(f"/api/v1/mcp/files/{file_id}", headers=foreign)).status_code == 404
    assert (await http.get("/api/v1/mcp/files", headers=foreign)).json()["data"]["files"] == []

    assert (await http.delete(f"/api/v1/mcp/files/{file_id}", headers=headers)).status_code == 204
    assert (await http.get(f"/api/v1/mcp/files/{file_id}", headers=headers)).status_code == 404
    assert await count(doc_stack.settings, File) == 0


async def test_reprocessing_with_vectors_and_delete_removes_everything(
    doc_stack: DocStack,
) -> None:
    http, headers = doc_stack.http, doc_stack.headers
    response = await upload(http, headers, "report.pdf", make_pdf(PAGES))
    file_id = response.json()["data"]["file_id"]
    await wait_run(http, headers, response.json()["data"]["execution_id"])
    chunks = await count(doc_stack.settings, Chunk, file_id=file_id)
    trigger = await http.post(
        "/api/v1/mcp/workflow",
        headers=headers,
        json={"workflow_name": "document_processor", "input_data": {"file_id": file_id}},
    )
    assert trigger.status_code == 202
    rerun = await wait_run(http, headers, trigger.json()["data"]["execution_id"])
    assert rerun["status"] == "completed"
    # A re-run upserts: the same chunk and vector rows, not twice as many.
    assert await count(doc_stack.settings, Chunk, file_id=file_id) == chunks
    assert await count(doc_stack.settings, ChunkVector, file_id=file_id) == chunks

    assert (await http.delete(f"/api/v1/mcp/files/{file_id}", headers=headers)).status_code == 204
    assert await count(doc_stack.settings, Chunk) == 0
    assert await count(doc_stack.settings, ChunkVector) == 0
    answer = (
        await http.post("/api/v1/ai/rag/query", headers=headers, json={"query": "Zorblat revenue"})
    ).json()["data"]
    assert answer["citations"] == [] and answer["contexts_used"] == 0


async def test_embeddings_endpoint(doc_stack: DocStack) -> None:
    response = await doc_stack.http.post(
        "/api/v1/ai/embeddings",
        headers=doc_stack.headers,
        json={"input": ["hello world", "good night"]},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data["embeddings"]) == 2 and len(data["embeddings"][0]) == 384
    assert data["usage"]["tokens"] == 4 and data["model"] == "all-MiniLM-L6-v2"
    empty = await doc_stack.http.post(
        "/api/v1/ai/embeddings", headers=doc_stack.headers, json={"input": ""}
    )
    assert empty.status_code == 422


async def test_readme_sample_pdf_flow(doc_stack: DocStack) -> None:
    from pathlib import Path

    sample = (Path(__file__).parents[1] / "data" / "sample.pdf").read_bytes()
    http, headers = doc_stack.http, doc_stack.headers
    response = await upload(http, headers, "sample.pdf", sample, project_id="proj_1")
    run = await wait_run(http, headers, response.json()["data"]["execution_id"])
    assert run["status"] == "completed" and run["result"]["pages"] == 3
    answer = (
        await http.post(
            "/api/v1/ai/rag/query",
            headers=headers,
            json={"query": "What is the monthly fee?", "top_k": 3},
        )
    ).json()["data"]
    assert answer["citations"][0]["page"] == 2
    assert "1,200 euros per month" in answer["answer"]


async def test_a_500_page_pdf_is_processed_in_batches(
    doc_stack: DocStack, settings: Settings
) -> None:
    if "postgresql" in settings.resolved_database_url:
        pytest.skip("the 500-page run exercises batching, not the database: SQLite covers it")
    pages = [f"Page {n} of the long report. Item {n} costs {n * 3} euros." for n in range(1, 501)]
    http, headers = doc_stack.http, doc_stack.headers
    response = await upload(http, headers, "long.pdf", make_pdf(pages))
    run = await wait_run(http, headers, response.json()["data"]["execution_id"], seconds=600)
    assert run["status"] == "completed", run
    assert run["result"]["pages"] == 500 and run["result"]["chunks"] == 500
    answer = (
        await http.post(
            "/api/v1/ai/rag/query",
            headers=headers,
            json={"query": "Page 437 of the long report: what does item 437 cost?", "top_k": 1},
        )
    ).json()
    assert answer["data"]["citations"][0]["page"] == 437


async def test_scanned_pdf_page_is_ocred(doc_stack: DocStack) -> None:
    import io

    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()  # a scanned page: no text layer, only a picture of the text
    pdf.image(io.BytesIO(make_png("Shipment 7731 leaves Oslo on Friday")), x=10, y=20, w=190)
    http, headers = doc_stack.http, doc_stack.headers
    response = await upload(http, headers, "scan.pdf", bytes(pdf.output()))
    run = await wait_run(http, headers, response.json()["data"]["execution_id"])
    assert run["status"] == "completed", run
    assert run["result"]["ocr_pages"] == 1 and "7731" in run["result"]["ocr_text"]
    answer = (await http.post("/api/v1/ai/rag/query", headers=headers, json={
        "query": "When does shipment 7731 leave?"})).json()["data"]  # fmt: skip
    assert answer["citations"][0]["page"] == 1 and "Oslo" in answer["citations"][0]["text"]


async def test_a_finished_run_is_still_answered_after_temporal_forgot_it(
    doc_stack: DocStack, settings: Settings
) -> None:
    """Past the namespace's retention Temporal no longer knows the run; its result
    is read from the file's row. An API on a namespace that never saw the run
    stands in for the same server after retention."""
    if "postgresql" in settings.resolved_database_url:
        pytest.skip("the fallback reads one row: SQLite covers it")
    http, headers = doc_stack.http, doc_stack.headers
    response = await upload(http, headers, "memo.txt", b"The board meets on the first Monday.")
    execution_id = response.json()["data"]["execution_id"]
    live = await wait_run(http, headers, execution_id)
    assert live["status"] == "completed", live

    forgetful = doc_stack.settings.model_copy(update={"temporal_namespace": IDLE_NAMESPACE})
    async with api_client(create_app(forgetful)) as later:
        kept = await later.get(f"/api/v1/mcp/workflow/{execution_id}", headers=headers)
        assert kept.status_code == 200, kept.text
        data = kept.json()["data"]
        assert data["status"] == "completed"
        assert data["result"] == live["result"]
        assert "first Monday" in data["result"]["ocr_text"]
        unknown = await later.get("/api/v1/mcp/workflow/doc-file_nothing", headers=headers)
        assert unknown.status_code == 404


async def test_an_upload_retried_after_its_run_failed_to_start_is_processed_once(
    doc_stack: DocStack, settings: Settings
) -> None:
    """The file is kept, then starting its run fails (Temporal unreachable): the
    client's retry with the same Idempotency-Key starts the run, and only once."""
    if "postgresql" in settings.resolved_database_url:
        pytest.skip("the retry path is the API's, not the database's: SQLite covers it")
    headers = {**doc_stack.headers, "Idempotency-Key": "upload-memo-1"}
    body = b"Quarterly numbers are published on the 5th."
    unreachable = doc_stack.settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{free_port()}"}
    )
    async with api_client(create_app(unreachable)) as broken:
        failed = await upload(broken, headers, "numbers.txt", body)
    assert failed.status_code >= 500 and "Traceback" not in failed.text, failed.text

    retried = await upload(doc_stack.http, headers, "numbers.txt", body)
    assert retried.status_code == 200, retried.text  # the same file, not a new one
    data = retried.json()["data"]
    assert data["execution_id"] == f"doc-{data['file_id']}"
    run = await wait_run(doc_stack.http, doc_stack.headers, data["execution_id"])
    assert run["status"] == "completed"
    again = await upload(doc_stack.http, headers, "numbers.txt", body)
    assert again.json()["data"]["execution_id"] == data["execution_id"]
    assert await count(doc_stack.settings, File) == 1
    assert await count(doc_stack.settings, Event, type="file.processed") == 1
