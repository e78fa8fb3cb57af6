"""Text out of documents: PDF pages, images and scanned pages (OCR), DOCX, HTML, text.

Synchronous and CPU-bound: activities call these in a thread. A document that
can never be read raises ``DocumentError`` with a stable code, which the
activity turns into a non-retryable failure.
"""

from __future__ import annotations

import io
import re
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from PIL import Image
from pypdf import PdfReader
from pypdf.errors import PdfReadError

MAX_IMAGE_PIXELS = 50_000_000
# A page with less text than this is treated as scanned and sent to OCR.
MIN_TEXT_CHARS = 20
_ocr_lock = threading.Lock()


class DocumentError(Exception):
    """A permanent problem with the document itself."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PageText:
    page: int  # 1-based
    text: str
    ocr: bool = False


def _open_pdf(path: Path) -> PdfReader:
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise DocumentError("ENCRYPTED_FILE", "the PDF is encrypted; upload it unlocked")
        _ = len(reader.pages)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError("CORRUPT_FILE", f"the PDF cannot be read ({exc})") from None
    return reader


def _open_image(data: bytes) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise DocumentError(
                "IMAGE_TOO_LARGE",
                f"the image has {width * height} pixels (limit {MAX_IMAGE_PIXELS})",
            )
        image.load()
    except DocumentError:
        raise
    except Image.DecompressionBombError as exc:
        raise DocumentError("IMAGE_TOO_LARGE", str(exc)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DocumentError("CORRUPT_FILE", f"the image cannot be read ({exc})") from None
    return image


def image_pixels(data: bytes) -> int:
    """Pixel count from the header alone (cheap; used to refuse bombs at upload).

    0 means the image cannot be read at all.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        return MAX_IMAGE_PIXELS * 2 + 1  # Pillow refused to even describe it
    except (OSError, ValueError, SyntaxError):
        return 0
    return int(width * height)


def count_pages(path: Path, family: str) -> int:
    if family == "pdf":
        pages = len(_open_pdf(path).pages)
        if pages == 0:
            raise DocumentError("EMPTY_DOCUMENT", "the PDF has no pages")
        return pages
    if family == "image":
        _open_image(path.read_bytes())
    return 1


@lru_cache(maxsize=1)
def _ocr_engine() -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:  # pragma: no cover - depends on the ml extra
        raise DocumentError("OCR_UNAVAILABLE", "OCR is not installed (weftworks[ml])") from exc
    return RapidOCR()  # its detection/recognition models ship inside the package


def ocr_image(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    with _ocr_lock:  # one inference at a time per process: onnxruntime uses every core
        result, _ = _ocr_engine()(buffer.getvalue())
    lines = [str(item[1]) for item in result or []]
    return "\n".join(lines)


def extract_pages(
    path: Path,
    family: str,
    start: int,
    end: int,
    *,
    ocr: bool,
    on_page: Callable[[int], None] = lambda page: None,
) -> list[PageText]:
    """Pages ``start``..``end`` (1-based, inclusive)."""
    if family == "pdf":
        reader = _open_pdf(path)
        pages = []
        for number in range(start, min(end, len(reader.pages)) + 1):
            pages.append(_pdf_page(reader, number, ocr))
            on_page(number)
        return pages
    data = path.read_bytes()
    if family == "image":
        if not ocr:
            return [PageText(1, "", ocr=False)]
        text = ocr_image(_open_image(data))
        on_page(1)
        return [PageText(1, text, ocr=True)]
    text = {"docx": _docx_text, "html": _html_text}.get(family, _plain_text)(data)
    on_page(1)
    return [PageText(1, text)]


def _pdf_page(reader: PdfReader, number: int, ocr: bool) -> PageText:
    page = reader.pages[number - 1]
    try:
        text = page.extract_text() or ""
    except Exception as exc:  # pypdf raises many kinds on damaged content streams
        raise DocumentError("CORRUPT_FILE", f"page {number} cannot be read ({exc})") from None
    if len(text.strip()) >= MIN_TEXT_CHARS or not ocr:
        return PageText(number, text)
    # A scanned page: its text is in the images it draws.
    recognised = []
    for embedded in page.images:
        try:
            recognised.append(ocr_image(_open_image(embedded.data)))
        except DocumentError:
            continue
    ocr_text = "\n".join(part for part in recognised if part.strip())
    return PageText(number, ocr_text or text, ocr=bool(ocr_text))


def _plain_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class _TextOfHtml(HTMLParser):
    SKIP = {"script", "style", "noscript", "template"}
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_text(data: bytes) -> str:
    parser = _TextOfHtml()
    parser.feed(data.decode("utf-8", errors="replace"))
    return re.sub(r"\n{3,}", "\n\n", "".join(parser.parts)).strip()


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx_text(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            root = ElementTree.fromstring(archive.read("word/document.xml"))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as exc:
        raise DocumentError("CORRUPT_FILE", f"the DOCX cannot be read ({exc})") from None
    paragraphs = [
        "".join(node.text or "" for node in p.iter(f"{_W}t")) for p in root.iter(f"{_W}p")
    ]
    return "\n\n".join(p for p in paragraphs if p.strip())
