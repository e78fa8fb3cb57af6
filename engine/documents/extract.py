"""Text out of documents: PDF pages, images and scanned pages (OCR), DOCX, HTML, text.

Synchronous and CPU-bound: activities call these in a thread. A document that
can never be read, or is larger than the caps in ``Limits`` allow, raises
``DocumentError`` with a stable code, which the activity turns into a
non-retryable failure.

A PDF page without a text layer is rendered (pypdfium2) and the picture is read
by OCR (rapidocr 3 on onnxruntime, with the models inside its wheel), so pages
drawn as vector paths or pieced together from several images are read too.
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
from typing import IO, Any, NoReturn
from xml.parsers import expat

from PIL import Image
from pypdf import PdfReader
from pypdf.errors import PdfReadError

MAX_IMAGE_PIXELS = 50_000_000
# A page with less text than this is treated as scanned and sent to OCR.
MIN_TEXT_CHARS = 20
# Scanned pages are rendered at this resolution, with at most this many pixels.
RENDER_DPI = 200
MAX_RENDER_PIXELS = 25_000_000
# A DOCX is a zip: a bomb is refused by its declared sizes before anything is inflated
# (zipfile never inflates a member past its declared size).
DOCX_MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
DOCX_MAX_MEMBERS = 10_000
_ocr_lock = threading.Lock()
_pdfium_lock = threading.Lock()  # PDFium is not thread-safe
# rapidocr 3's default models, which its wheel ships: named here so they are loaded
# from the package and rapidocr never resolves (or downloads) a model itself.
OCR_MODELS = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
}


class DocumentError(Exception):
    """A permanent problem with the document itself."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Limits:
    """Caps on one document (Settings: ``max_document_pages``, ``max_document_chars``)."""

    max_pages: int = 2_000
    max_chars: int = 20_000_000


def too_large(what: str, count: int, limit: int) -> DocumentError:
    return DocumentError(
        "DOCUMENT_TOO_LARGE", f"the document has more {what} than allowed ({count} > {limit})"
    )


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


def count_pages(path: Path, family: str, limits: Limits = Limits()) -> int:
    if family == "pdf":
        pages = len(_open_pdf(path).pages)
        if pages == 0:
            raise DocumentError("EMPTY_DOCUMENT", "the PDF has no pages")
        if pages > limits.max_pages:
            raise too_large("pages", pages, limits.max_pages)
        return pages
    if family == "image":
        _open_image(path.read_bytes())
    return 1


@lru_cache(maxsize=1)
def _ocr_engine() -> Any:
    try:
        import rapidocr
        from rapidocr import RapidOCR
    except ImportError as exc:  # pragma: no cover - depends on the ml extra
        raise DocumentError("OCR_UNAVAILABLE", "OCR is not installed (weftworks[ml])") from exc
    models = Path(rapidocr.__file__).parent / "models"
    params: dict[str, Any] = {"Global.log_level": "error"}  # not "no text on this page"
    for part, name in OCR_MODELS.items():
        if not (models / name).is_file():  # pragma: no cover - a rapidocr without its models
            raise DocumentError("OCR_UNAVAILABLE", f"the OCR model {name} is not installed")
        params[f"{part}.model_path"] = str(models / name)
    return RapidOCR(params=params)


def ocr_image(image: Image.Image) -> str:
    rgb = image.convert("RGB")
    with _ocr_lock:  # one inference at a time per process: onnxruntime uses every core
        result = _ocr_engine()(rgb)
    return "\n".join(str(line) for line in result.txts or ())


def render_pdf_page(path: Path, number: int) -> Image.Image:
    """Page ``number`` (1-based) as a picture, for OCR."""
    try:
        import pypdfium2
    except ImportError as exc:  # pragma: no cover - depends on the ml extra
        raise DocumentError("OCR_UNAVAILABLE", "OCR is not installed (weftworks[ml])") from exc
    with _pdfium_lock:
        try:
            document = pypdfium2.PdfDocument(path)
        except pypdfium2.PdfiumError as exc:
            raise DocumentError("CORRUPT_FILE", f"the PDF cannot be rendered ({exc})") from None
        try:
            page = document[number - 1]
            width, height = page.get_size()
            scale = RENDER_DPI / 72
            if width * height * scale * scale > MAX_RENDER_PIXELS:
                scale = (MAX_RENDER_PIXELS / max(width * height, 1.0)) ** 0.5
            image: Image.Image = page.render(scale=scale, grayscale=True).to_pil()
            return image
        except pypdfium2.PdfiumError as exc:
            message = f"page {number} cannot be rendered ({exc})"
            raise DocumentError("CORRUPT_FILE", message) from None
        finally:
            document.close()


def extract_pages(
    path: Path,
    family: str,
    start: int,
    end: int,
    *,
    ocr: bool,
    on_page: Callable[[int], None] = lambda page: None,
    limits: Limits = Limits(),
) -> list[PageText]:
    """Pages ``start``..``end`` (1-based, inclusive), at most ``limits.max_chars`` of text."""
    if family == "pdf":
        reader = _open_pdf(path)
        if len(reader.pages) > limits.max_pages:
            raise too_large("pages", len(reader.pages), limits.max_pages)
        pages, chars = [], 0
        for number in range(start, min(end, len(reader.pages)) + 1):
            page = _pdf_page(path, reader, number, ocr)
            chars += len(page.text)
            if chars > limits.max_chars:
                raise too_large("characters of text", chars, limits.max_chars)
            pages.append(page)
            on_page(number)
        return pages
    if family == "image":
        if not ocr:
            return [PageText(1, "", ocr=False)]
        text = ocr_image(_open_image(path.read_bytes()))
        on_page(1)
        return [PageText(1, text, ocr=True)]
    if family == "docx":
        text = _docx_text(path, limits.max_chars)
    else:
        if path.stat().st_size > 4 * limits.max_chars:  # UTF-8: at most 4 bytes a character
            raise too_large("characters of text", path.stat().st_size, limits.max_chars)
        data = path.read_bytes()
        text = _html_text(data) if family == "html" else _plain_text(data)
    if len(text) > limits.max_chars:
        raise too_large("characters of text", len(text), limits.max_chars)
    on_page(1)
    return [PageText(1, text)]


def _pdf_page(path: Path, reader: PdfReader, number: int, ocr: bool) -> PageText:
    page = reader.pages[number - 1]
    try:
        text = page.extract_text() or ""
    except Exception as exc:  # pypdf raises many kinds on damaged content streams
        raise DocumentError("CORRUPT_FILE", f"page {number} cannot be read ({exc})") from None
    if len(text.strip()) >= MIN_TEXT_CHARS or not ocr:
        return PageText(number, text)
    # A scanned page: its text is whatever it draws (images, vector paths), so the
    # page is rendered as a whole and read. Without OCR, or if PDFium cannot draw
    # the page, its text layer (however thin) is what it has.
    try:
        ocr_text = ocr_image(render_pdf_page(path, number)).strip()
    except DocumentError:
        ocr_text = ""
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


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main "


def _docx_text(path: Path, max_chars: int) -> str:
    """Paragraphs of ``word/document.xml``, refusing zip bombs and XML entities."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > DOCX_MAX_MEMBERS:
                raise too_large("archive members", len(members), DOCX_MAX_MEMBERS)
            inflated = sum(member.file_size for member in members)
            if inflated > DOCX_MAX_UNCOMPRESSED_BYTES:
                raise too_large(
                    "uncompressed bytes in its archive", inflated, DOCX_MAX_UNCOMPRESSED_BYTES
                )
            with archive.open("word/document.xml") as source:
                return _DocxText(max_chars).parse(source)
    except (zipfile.BadZipFile, KeyError, expat.ExpatError, EOFError) as exc:
        raise DocumentError("CORRUPT_FILE", f"the DOCX cannot be read ({exc})") from None


class _DocxText:
    """Streams WordprocessingML through expat: text of ``w:t`` runs, a paragraph per
    ``w:p``. Any DTD is refused, so no entity is ever declared or expanded."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.paragraphs: list[str] = []
        self.current: list[str] = []
        self.chars = 0
        self.in_text = 0

    def parse(self, source: IO[bytes]) -> str:
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._refuse
        parser.EntityDeclHandler = self._refuse
        parser.ExternalEntityRefHandler = self._refuse
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._data
        parser.buffer_text = True
        while block := source.read(1 << 20):
            parser.Parse(block, False)
        parser.Parse(b"", True)
        return "\n\n".join(p for p in self.paragraphs if p.strip())

    @staticmethod
    def _refuse(*args: object) -> NoReturn:
        raise DocumentError(
            "UNSAFE_DOCUMENT", "the DOCX declares a DTD or XML entities, which are refused"
        )

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        if name == _W + "t":
            self.in_text += 1
        elif name == _W + "tab":
            self._add("\t")
        elif name in (_W + "br", _W + "cr"):
            self._add("\n")

    def _end(self, name: str) -> None:
        if name == _W + "t":
            self.in_text -= 1
        elif name == _W + "p":
            self.paragraphs.append("".join(self.current))
            self.current = []
            self.chars += 2

    def _data(self, text: str) -> None:
        if self.in_text:
            self._add(text)

    def _add(self, text: str) -> None:
        self.current.append(text)
        self.chars += len(text)
        if self.chars > self.max_chars:
            raise too_large("characters of text", self.chars, self.max_chars)
