"""What a file really is, read from its first bytes (never from its name)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

PDF, PNG, JPEG, GIF, TIFF, WEBP, BMP = (
    "application/pdf",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/tiff",
    "image/webp",
    "image/bmp",
)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT, MARKDOWN, HTML = "text/plain", "text/markdown", "text/html"
IMAGES = frozenset({PNG, JPEG, GIF, TIFF, WEBP, BMP})
SUPPORTED = frozenset({PDF, DOCX, TEXT, MARKDOWN, HTML, *IMAGES})

BY_EXTENSION = {
    ".pdf": PDF, ".png": PNG, ".jpg": JPEG, ".jpeg": JPEG, ".gif": GIF, ".tif": TIFF,
    ".tiff": TIFF, ".webp": WEBP, ".bmp": BMP, ".docx": DOCX, ".txt": TEXT, ".text": TEXT,
    ".md": MARKDOWN, ".markdown": MARKDOWN, ".html": HTML, ".htm": HTML,
}  # fmt: skip


@dataclass(frozen=True)
class Sniffed:
    mime_type: str | None  # None: not a type we can process

    @property
    def family(self) -> str:
        if self.mime_type in IMAGES:
            return "image"
        return {PDF: "pdf", DOCX: "docx", HTML: "html"}.get(self.mime_type or "", "text")


def sniff(head: bytes, *, whole: BinaryIO | None = None) -> Sniffed:
    """Classify by magic numbers; text only if the head decodes as UTF-8 text."""
    if head.startswith(b"%PDF-"):
        return Sniffed(PDF)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed(PNG)
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed(JPEG)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed(GIF)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed(TIFF)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed(WEBP)
    if head[:2] == b"BM":
        return Sniffed(BMP)
    if head.startswith(b"PK\x03\x04"):
        return Sniffed(DOCX if whole is not None and _is_docx(whole) else None)
    return Sniffed(_text_kind(head))


def _is_docx(source: BinaryIO) -> bool:
    try:
        source.seek(0)
        with zipfile.ZipFile(source) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False
    finally:
        source.seek(0)


def _text_kind(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the head
            return None
        text = head[: exc.start].decode("utf-8")
    lowered = text.lstrip().lower()
    if lowered.startswith(("<!doctype html", "<html")):
        return HTML
    return TEXT


def declared_type(filename: str, content_type: str | None) -> str | None:
    """The type a client claims, from the file name's extension or the part's type."""
    by_name = BY_EXTENSION.get(PurePosixPath(filename).suffix.lower())
    if by_name:
        return by_name
    if content_type and content_type.split(";")[0].strip() in SUPPORTED:
        return content_type.split(";")[0].strip()
    return None


def compatible(declared: str | None, actual: str) -> bool:
    """A claim is fine when absent, equal, or a text flavour of plain text."""
    if declared is None or declared == actual:
        return True
    text_like = {TEXT, MARKDOWN, HTML}
    return declared in text_like and actual in text_like
