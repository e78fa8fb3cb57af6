"""Formats and limits of document processing: OCR on rapidocr 3 with its bundled
models, scanned pages rendered before OCR, DOCX text, unsafe archives and XML,
and the per-document caps (pages, chunks, characters)."""

from __future__ import annotations

import io
import socket
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from temporalio.testing import WorkflowEnvironment

from engine.platform.settings import Settings
from tests.conftest import DocStack, worker_stack
from tests.documents_support import make_pdf, make_png, upload, wait_run


def _sqlite_only(settings: Settings) -> None:
    if "postgresql" in settings.resolved_database_url:
        pytest.skip("reading documents does not touch the database: SQLite covers it")


@pytest.fixture
async def stack(settings: Settings, temporal_env: WorkflowEnvironment) -> AsyncIterator[DocStack]:
    _sqlite_only(settings)
    async with worker_stack(settings, temporal_env) as docs:
        yield docs


def test_ocr_runs_on_rapidocr_3_with_its_bundled_models_and_no_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine is rapidocr 3.x on onnxruntime, its models are the files inside the
    wheel, and reading an image needs no network at all."""
    import rapidocr

    from engine.documents import extract

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("OCR tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    extract._ocr_engine.cache_clear()
    try:
        engine = extract._ocr_engine()
        assert type(engine).__module__.startswith("rapidocr.")
        bundled = Path(rapidocr.__file__).parent / "models"
        for part in ("Det", "Cls", "Rec"):
            model = Path(str(engine.cfg[part].model_path))
            assert model.parent == bundled and model.is_file(), (part, model)
        text = extract.ocr_image(Image.open(io.BytesIO(make_png("Invoice total 4200 euros"))))
    finally:
        extract._ocr_engine.cache_clear()
    assert "4200" in text and "Invoice" in text


def _vector_text_pdf(text: str) -> bytes:
    """A page whose text is drawn with filled rectangles: no text layer, no image."""
    from fpdf import FPDF

    image = Image.open(io.BytesIO(make_png(text, size=(1000, 160)))).convert("L")
    width, height = image.size
    pixels = image.load()
    assert pixels is not None
    pdf = FPDF()
    pdf.add_page()
    pdf.set_fill_color(0, 0, 0)
    scale = 190 / width  # millimetres per pixel
    for y in range(height):
        x = 0
        while x < width:
            if pixels[x, y] < 128:  # type: ignore[operator]
                start = x
                while x < width and pixels[x, y] < 128:  # type: ignore[operator]
                    x += 1
                pdf.rect(10 + start * scale, 20 + y * scale, (x - start) * scale, scale, style="F")
            x += 1
    return bytes(pdf.output())


def _split_image_pdf(text: str) -> bytes:
    """A scanned page made of two images, the top and the bottom half of the line:
    neither half alone can be read."""
    from fpdf import FPDF

    image = Image.open(io.BytesIO(make_png(text, size=(1000, 160))))
    width, height = image.size
    cut = 70  # through the middle of the glyphs (drawn from y=50, 36 px high)
    pdf = FPDF()
    pdf.add_page()
    scale = 190 / width
    for top, bottom in ((0, cut), (cut, height)):
        part = io.BytesIO()
        image.crop((0, top, width, bottom)).save(part, format="PNG")
        pdf.image(part, x=10, y=20 + top * scale, w=190, h=(bottom - top) * scale)
    return bytes(pdf.output())


@pytest.mark.parametrize(
    ("maker", "sentence", "word"),
    [
        (_vector_text_pdf, "Pallet 5518 ships to Bergen", "5518"),
        (_split_image_pdf, "Crate 6604 ships to Tromso", "6604"),
    ],
    ids=["vector-paths", "two-images"],
)
async def test_a_scanned_page_is_rendered_then_ocred(
    stack: DocStack, maker: object, sentence: str, word: str
) -> None:
    assert callable(maker)
    http, headers = stack.http, stack.headers
    response = await upload(http, headers, "scan.pdf", maker(sentence), "application/pdf")
    assert response.status_code == 201, response.text
    run = await wait_run(http, headers, response.json()["data"]["execution_id"])
    assert run["status"] == "completed", run
    assert run["result"]["ocr_pages"] == 1 and word in run["result"]["ocr_text"], run


def make_docx(paragraphs: list[str], *, document_xml: bytes | None = None) -> bytes:
    """A minimal, valid WordprocessingML package, built by hand."""
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(
        f"<w:p><w:pPr/><w:r><w:rPr/><w:t xml:space='preserve'>{p}</w:t></w:r></w:p>"
        for p in paragraphs
    )
    document = (
        document_xml
        or (
            f"<?xml version='1.0' encoding='UTF-8' standalone='yes'?>"
            f"<w:document xmlns:w='{w}'><w:body>{body}</w:body></w:document>"
        ).encode()
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            "<?xml version='1.0' encoding='UTF-8'?>"
            "<Types xmlns='http://schemas.openxmlformats.org/package/2006/content-types'>"
            "<Default Extension='rels' ContentType='application/vnd.openxmlformats-package."
            "relationships+xml'/><Default Extension='xml' ContentType='application/xml'/>"
            "<Override PartName='/word/document.xml' ContentType='application/vnd."
            "openxmlformats-officedocument.wordprocessingml.document.main+xml'/></Types>",
        )
        archive.writestr(
            "_rels/.rels",
            "<?xml version='1.0' encoding='UTF-8'?>"
            "<Relationships xmlns='http://schemas.openxmlformats.org/package/2006/relationships'>"
            "<Relationship Id='rId1' Type='http://schemas.openxmlformats.org/officeDocument/"
            "2006/relationships/officeDocument' Target='word/document.xml'/></Relationships>",
        )
        archive.writestr("word/document.xml", document)
    return buffer.getvalue()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


async def test_docx_text_is_extracted_and_cited(stack: DocStack) -> None:
    http, headers = stack.http, stack.headers
    docx = make_docx([
        "Minutes of the harbour committee.",
        "The ferry to Flekkefjord now leaves at 07:45 from pier nine.",
        "Next meeting: the second Thursday of May.",
    ])  # fmt: skip
    response = await upload(http, headers, "minutes.docx", docx, DOCX)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["mime_type"] == DOCX
    run = await wait_run(http, headers, response.json()["data"]["execution_id"])
    assert run["status"] == "completed", run
    excerpt = run["result"]["ocr_text"]
    assert not excerpt.startswith("PK") and excerpt.startswith("Minutes of the harbour"), excerpt
    answer = (await http.post("/api/v1/ai/rag/query", headers=headers, json={
        "query": "When does the ferry to Flekkefjord leave?"})).json()["data"]  # fmt: skip
    first = answer["citations"][0]
    assert first["file_id"] == response.json()["data"]["file_id"]
    assert "07:45 from pier nine" in first["text"]


def _laughs() -> bytes:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">'
        for n in range(1, 10)
    )
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    return (
        f"<?xml version='1.0'?><!DOCTYPE w:document [{entities}]>"
        f"<w:document xmlns:w='{w}'><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>"
        "</w:body></w:document>"
    ).encode()


def _zip_bomb() -> bytes:
    """300 MiB of XML in a few hundred KB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(b"<w:document xmlns:w='x'><w:body><w:p><w:r><w:t>")
            block = b" " * (1 << 20)
            for _ in range(300):
                member.write(block)
            member.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return buffer.getvalue()


def _many_members() -> bytes:
    buffer = io.BytesIO(make_docx(["A short note."]))
    with zipfile.ZipFile(buffer, "a") as archive:
        for n in range(12_000):
            archive.writestr(f"word/media/x{n}.bin", b"")
    return buffer.getvalue()


async def _activity_attempts(env: WorkflowEnvironment, workflow_id: str) -> list[int]:
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    return [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
    ]


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: make_docx([], document_xml=_laughs()), "UNSAFE_DOCUMENT"),
        (_zip_bomb, "DOCUMENT_TOO_LARGE"),
        (_many_members, "DOCUMENT_TOO_LARGE"),
    ],
    ids=["entity-expansion", "zip-bomb", "too-many-members"],
)
async def test_unsafe_docx_is_refused_at_once(
    stack: DocStack, temporal_env: WorkflowEnvironment, make: object, code: str
) -> None:
    assert callable(make)
    http, headers = stack.http, stack.headers
    response = await upload(http, headers, "unsafe.docx", make(), DOCX)
    assert response.status_code == 201, response.text
    execution_id = response.json()["data"]["execution_id"]
    started = time.monotonic()
    run = await wait_run(http, headers, execution_id, seconds=60)
    assert run["status"] == "failed" and run["error"]["code"] == code, run
    assert time.monotonic() - started < 20
    # One attempt of extraction (and one of recording the failure): never retried.
    assert await _activity_attempts(temporal_env, execution_id) == [1, 1]
    file_id = response.json()["data"]["file_id"]
    meta = (await http.get(f"/api/v1/mcp/files/{file_id}", headers=headers)).json()["data"]
    assert meta["status"] == "failed" and meta["error"]["code"] == code


@pytest.fixture
async def capped_stack(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> AsyncIterator[DocStack]:
    _sqlite_only(settings)
    capped = settings.model_copy(
        update={"max_document_pages": 5, "max_document_chunks": 3, "max_document_chars": 2000}
    )
    async with worker_stack(capped, temporal_env) as stack:
        yield stack


@pytest.mark.parametrize(
    ("name", "data", "limit"),
    [
        ("eight.pdf", make_pdf([f"Page {n} of eight." for n in range(1, 9)]), "pages"),
        ("four.pdf", make_pdf([f"Page {n}, short." for n in range(1, 5)]), "chunks"),
        ("long.txt", b"All work and no play. " * 150, "characters"),
    ],
)
async def test_a_document_over_a_cap_fails_fast_with_document_too_large(
    capped_stack: DocStack, temporal_env: WorkflowEnvironment, name: str, data: bytes, limit: str
) -> None:
    http, headers = capped_stack.http, capped_stack.headers
    response = await upload(http, headers, name, data)
    assert response.status_code == 201, response.text
    execution_id = response.json()["data"]["execution_id"]
    run = await wait_run(http, headers, execution_id, seconds=60)
    assert run["status"] == "failed", run
    assert run["error"]["code"] == "DOCUMENT_TOO_LARGE" and limit in run["error"]["message"], run
    assert all(attempt == 1 for attempt in await _activity_attempts(temporal_env, execution_id))
    file_id = response.json()["data"]["file_id"]
    meta = (await http.get(f"/api/v1/mcp/files/{file_id}", headers=headers)).json()["data"]
    assert meta["status"] == "failed" and meta["error"]["code"] == "DOCUMENT_TOO_LARGE"


async def test_a_small_pdf_with_thousands_of_page_references_is_refused_by_default(
    stack: DocStack,
) -> None:
    """An 18 KB PDF whose page tree names one page 3,000 times: over the default
    page cap (2,000), refused before any page is read."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, NameObject, NumberObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["One real page of text."]))))
    pages = writer._root_object["/Pages"]  # the same page object, referenced 3,000 times
    kid = pages["/Kids"][0]
    pages[NameObject("/Kids")] = ArrayObject([kid] * 3000)
    pages[NameObject("/Count")] = NumberObject(3000)
    buffer = io.BytesIO()
    writer.write(buffer)
    assert len(buffer.getvalue()) < 40_000 and len(PdfReader(buffer).pages) == 3000
    http, headers = stack.http, stack.headers
    response = await upload(http, headers, "refs.pdf", buffer.getvalue())
    started = time.monotonic()
    run = await wait_run(http, headers, response.json()["data"]["execution_id"], seconds=120)
    assert run["status"] == "failed" and run["error"]["code"] == "DOCUMENT_TOO_LARGE", run
    assert time.monotonic() - started < 10
