"""Partio's chunking strategies, with tokens counted by the embedding model's tokenizer.

Chunks never cross a page boundary, so every chunk cites one page. Text is cut
at token boundaries of the original string (offsets, not decoded tokens), so a
chunk reads exactly as the document does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field, StrictInt, model_validator


class Strategy(StrEnum):
    FIXED_TOKEN_COUNT = "FixedTokenCount"
    SENTENCE_BASED = "SentenceBased"
    PARAGRAPH_BASED = "ParagraphBased"


class ChunkingConfig(BaseModel):
    """Partio's ChunkingConfiguration (PascalCase on the wire, snake_case here)."""

    strategy: Strategy = Strategy.FIXED_TOKEN_COUNT
    fixed_token_count: StrictInt = Field(default=256, ge=16, le=4096)
    overlap_count: StrictInt = Field(default=32, ge=0)
    overlap_strategy: str = "SlidingWindow"
    context_prefix: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if (
            self.strategy is Strategy.FIXED_TOKEN_COUNT
            and self.overlap_count >= self.fixed_token_count
        ):
            raise ValueError("OverlapCount must be smaller than FixedTokenCount")
        return self


class TooManyChunks(Exception):
    """The document makes more chunks than allowed (a DOCUMENT_TOO_LARGE failure)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the document has more chunks than allowed ({count} > {limit})")
        self.count, self.limit = count, limit


@dataclass(frozen=True)
class ChunkText:
    index: int
    page: int | None
    text: str
    tokens: int


SpanFn = Callable[[str], list[tuple[int, int]]]
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_PARAGRAPH = re.compile(r"\n\s*\n")


def _windows(
    text: str, spans: list[tuple[int, int]], size: int, overlap: int
) -> list[tuple[str, int]]:
    pieces, step, start = [], size - overlap, 0
    while start < len(spans):
        window = spans[start : start + size]
        pieces.append((text[window[0][0] : window[-1][1]], len(window)))
        if start + size >= len(spans):
            break
        start += step
    return pieces


def _units(text: str, strategy: Strategy) -> list[str]:
    if strategy is Strategy.PARAGRAPH_BASED:
        return [p.strip() for p in _PARAGRAPH.split(text) if p.strip()]
    return [m.group(0).strip() for m in _SENTENCE.finditer(text) if m.group(0).strip()]


def _pack(units: list[str], spans_of: SpanFn, size: int, overlap: int) -> list[tuple[str, int]]:
    """Whole sentences/paragraphs packed up to ``size`` tokens; overlap in units."""
    pieces: list[tuple[str, int]] = []
    current: list[tuple[str, int]] = []
    for unit in units:
        spans = spans_of(unit)
        if len(spans) > size:  # one unit longer than a chunk: cut it by tokens
            if current:
                pieces.append((" ".join(u for u, _ in current), sum(n for _, n in current)))
                current = []
            pieces.extend(_windows(unit, spans, size, 0))
            continue
        if current and sum(n for _, n in current) + len(spans) > size:
            pieces.append((" ".join(u for u, _ in current), sum(n for _, n in current)))
            current = current[-overlap:] if overlap else []
            while current and sum(n for _, n in current) + len(spans) > size:
                current = current[1:]
        current.append((unit, len(spans)))
    if current:
        pieces.append((" ".join(u for u, _ in current), sum(n for _, n in current)))
    return pieces


def chunk_pages(
    pages: Sequence[tuple[int | None, str]],
    config: ChunkingConfig,
    spans_of: SpanFn,
    *,
    max_chunks: int | None = None,
) -> list[ChunkText]:
    """Chunk each page's text; indexes run across the whole document.

    More than ``max_chunks`` chunks raises ``TooManyChunks`` as soon as the count
    is passed (after the page that passes it).
    """
    chunks: list[ChunkText] = []
    prefix = config.context_prefix or ""
    for page, text in pages:
        if not text.strip():
            continue
        if config.strategy is Strategy.FIXED_TOKEN_COUNT:
            pieces = _windows(text, spans_of(text), config.fixed_token_count, config.overlap_count)
        else:
            units = _units(text, config.strategy)
            pieces = _pack(units, spans_of, config.fixed_token_count, config.overlap_count)
        for piece, tokens in pieces:
            if piece.strip():
                chunks.append(ChunkText(len(chunks), page, prefix + piece.strip(), tokens))
        if max_chunks is not None and len(chunks) > max_chunks:
            raise TooManyChunks(len(chunks), max_chunks)
    return chunks
