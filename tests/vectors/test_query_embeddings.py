"""Query embeddings for retrieval: a repeated question skips the model, the
cache stays bounded, and a question is embedded with one torch thread without
changing the process default."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.ai.providers import local
from engine.documents import retrieval
from engine.documents.retrieval import QUERY_CACHE, QueryCache, embed_query


@pytest.mark.asyncio
async def test_a_repeated_question_is_answered_from_the_cache() -> None:
    question = "When do owls hunt in the forest?"
    QUERY_CACHE.clear()
    misses, hits = QUERY_CACHE.misses, QUERY_CACHE.hits
    first, tokens = await embed_query(question, local.LOCAL_EMBEDDING_MODEL, None)
    assert (QUERY_CACHE.misses, QUERY_CACHE.hits) == (misses + 1, hits)
    # The model's own answer, as documents are embedded.
    expected = local.embed_sync([question])[0]
    assert np.allclose(first, expected, atol=1e-5)
    assert tokens == local.count_tokens([question])[0]

    again, tokens_again = await embed_query(question, "minilm", local.LocalEmbeddings())
    assert (QUERY_CACHE.misses, QUERY_CACHE.hits) == (misses + 1, hits + 1)
    assert again == first and tokens_again == tokens
    again.append(0.0)  # a caller's list is its own: the cache is not changed through it
    assert len((await embed_query(question, "local", None))[0]) == local.DIMENSIONS

    other, _ = await embed_query("Where do owls sleep?", "local", None)
    assert other != first and QUERY_CACHE.misses == misses + 2


def test_the_cache_keeps_only_the_most_recent_entries() -> None:
    cache = QueryCache(3)
    for text in ("a", "b", "c"):
        cache.put("m", text, [float(ord(text))], 1)
    assert cache.get("m", "a") == ([97.0], 1)  # "a" is now the most recent
    cache.put("m", "d", [100.0], 1)
    cache.put("m", "e", [101.0], 1)
    assert len(cache) == 3
    assert cache.get("m", "b") is None and cache.get("m", "c") is None
    assert [cache.get("m", t) for t in ("a", "d", "e")] == [([97.0], 1), ([100.0], 1), ([101.0], 1)]
    assert cache.get("other-model", "a") is None  # keyed by model as well as text


@pytest.mark.asyncio
async def test_questions_use_one_torch_thread_and_leave_the_default_alone() -> None:
    torch = pytest.importorskip("torch")
    default = torch.get_num_threads()
    await embed_query("warm the query thread", "local", None)
    on_query_thread = retrieval._query_thread().submit(torch.get_num_threads).result()
    assert on_query_thread == 1
    assert torch.get_num_threads() == default
    seen: list[int] = []
    fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    fresh.start()
    fresh.join()
    assert seen == [default]  # threads that start later still get the process default
