"""The local MiniLM provider used from several threads at once, as a worker uses
it (embedding activities next to chunking ones, each in asyncio.to_thread) and
the API does (RAG queries): every call answers what it answers alone.

Found by the soak (bench/soak.py): an ``embed_chunks`` activity failed with
"Unable to create tensor ... activate truncation and/or padding" while a
chunking activity tokenised a page, because the fast tokenizer keeps its
truncation and padding settings in shared state that each call rewrites."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import numpy as np

from engine.ai.providers import local

WORDS = ["orchestration", "workflow", "temporal", "durable", "activity", "worker", "queue",
         "embedding", "vector", "index", "retrieval", "answer", "citation", "kettle"]  # fmt: skip
ROUNDS = 4


def test_concurrent_embeddings_token_counts_and_spans_match_one_at_a_time() -> None:
    rng = random.Random(7)
    # Longer than the model's 256 tokens: embedding truncates them, counting does not.
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(150, 400))) for _ in range(8)]
    page = " ".join(rng.choice(WORDS) for _ in range(2000))
    alone_vectors = local.embed_sync(texts)
    alone_counts = local.count_tokens(texts)
    alone_spans = local.token_spans(page)
    assert max(alone_counts) > 256 and len(alone_spans) > 256

    problems: list[str] = []
    embedding_done = threading.Event()

    def embed() -> None:
        for _ in range(ROUNDS):
            vectors = local.embed_sync(texts)
            if not np.allclose(vectors, alone_vectors, atol=1e-4):
                problems.append("a vector differs from the one computed alone")

    def tokenise() -> None:
        while not embedding_done.is_set():
            if local.count_tokens(texts) != alone_counts:
                problems.append("token counts differ")
            if local.token_spans(page) != alone_spans:
                problems.append("token spans differ")

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except Exception as exc:  # the failure under test is an exception in a thread
                problems.append(repr(exc)[:300])

        return run

    embedders = [threading.Thread(target=guarded(embed)) for _ in range(2)]
    tokenisers = [threading.Thread(target=guarded(tokenise)) for _ in range(2)]
    for thread in embedders + tokenisers:
        thread.start()
    for thread in embedders:
        thread.join()
    embedding_done.set()
    for thread in tokenisers:
        thread.join()

    assert problems == []
