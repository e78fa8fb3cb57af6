"""Retrieval at 100k and 1M chunks: query embedding + index search, the new
embedded index against the old exact float32 scan (the baseline, run in the
same process on the same rows). Prints figures; asserts nothing.

    .venv/bin/python bench/retrieval.py [--sizes 100000,1000000] [--queries 200]
        [--runs 3] [--sample 4000] [--database-url URL]

Data. Real English sentences (docstrings of installed packages, in source
order, so neighbours share a topic) are embedded with the shipped MiniLM: a
sample of ``--sample`` sentences, and ``--queries`` held-out sentences as the
questions. A synthetic document is a window of 24 consecutive sample
sentences; each of its 100 chunks is the mean of 3 of them plus a little noise
(a chunk's MiniLM vector is close to the mean of its sentences'). Files are
spread over 10 projects. Rows are bulk-inserted into the database (SQLite in a
temporary directory unless ``--database-url``) as the indexer stores them.

Per size:
- load: the first search's time to read the rows into memory, the graph's
  build time, the index's own arrays and the process RSS it added;
- three consecutive runs of every question: p50/p95 of query embedding +
  search, old (LocalEmbeddings, float32 exact scan) against new
  (``retrieval.embed_query`` with its cache emptied before each run, and the
  index with the ANN graph above ``vector_ann_threshold``); the same with the
  query cache warm; search alone for each path;
- recall@10 of the new index against the exact float32 scan over every
  question, unfiltered and with a project filter (about 10% of rows);
- the reload after one more 64-chunk document, old against new.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import gc
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chat_overhead import percentile  # noqa: E402
from engine.ai.providers import local  # noqa: E402
from engine.db import migrate  # noqa: E402
from engine.db.connection import create_engine, create_sessionmaker, transaction  # noqa: E402
from engine.db.tables import Chunk, ChunkVector, File, IndexGeneration  # noqa: E402
from engine.documents import retrieval  # noqa: E402
from engine.identity.accounts import create_tenant_with_defaults  # noqa: E402
from engine.platform.settings import Settings  # noqa: E402
from engine.vectors.base import Hit  # noqa: E402
from engine.vectors.database import DatabaseVectorIndex, bump_generation  # noqa: E402

MODEL = local.LOCAL_EMBEDDING_MODEL
PER_FILE, WINDOW, MIX, NOISE, PROJECTS = 100, 24, 3, 0.005, 10
CORPUS_PACKAGES = (
    "httpx",
    "fastapi",
    "alembic",
    "temporalio",
    "pydantic",
    "numpy",
    "sqlalchemy",
    "transformers",
    "torch",
)


# --- the baseline: the index as it was (exact cosine over a float32 matrix) ----------


@dataclass
class _Matrix:
    generation: int
    chunk_ids: np.ndarray
    file_ids: np.ndarray
    project_ids: np.ndarray
    vectors: np.ndarray


class Float32ExactIndex:
    """The previous ``DatabaseVectorIndex`` search path, verbatim in substance."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str], _Matrix] = {}

    async def _matrix(self, session: AsyncSession, tenant_id: str, model: str) -> _Matrix | None:
        generation = await session.scalar(
            select(IndexGeneration.generation).where(
                IndexGeneration.tenant_id == tenant_id, IndexGeneration.model == model
            )
        )
        if generation is None:
            return None
        cached = self.cache.get((tenant_id, model))
        if cached is not None and cached.generation == generation:
            return cached
        result = await session.execute(
            select(ChunkVector.chunk_id, ChunkVector.file_id, ChunkVector.project_id,
                   ChunkVector.vector)
            .where(ChunkVector.tenant_id == tenant_id, ChunkVector.model == model)
        )  # fmt: skip
        rows = result.all()
        vectors = np.frombuffer(b"".join(row[3] for row in rows), dtype=np.float32)
        vectors = vectors.reshape(len(rows), -1).copy()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        matrix = _Matrix(
            generation,
            np.array([row[0] for row in rows], dtype=object),
            np.array([row[1] for row in rows], dtype=object),
            np.array([row[2] for row in rows], dtype=object),
            vectors / norms,
        )
        self.cache[(tenant_id, model)] = matrix
        return matrix

    async def search(
        self,
        session: AsyncSession,
        tenant_id: str,
        model: str,
        query: Sequence[float],
        *,
        top_k: int,
        file_ids: Sequence[str] | None = None,
        project_id: str | None = None,
    ) -> list[Hit]:
        matrix = await self._matrix(session, tenant_id, model)
        if matrix is None or not len(matrix.chunk_ids):
            return []
        vector = np.asarray(query, dtype=np.float32)
        scores = matrix.vectors @ (vector / (np.linalg.norm(vector) or 1.0))
        if file_ids or project_id:
            mask = np.ones(len(scores), dtype=bool)
            if file_ids:
                mask &= np.isin(matrix.file_ids, list(file_ids))
            if project_id:
                mask &= matrix.project_ids == project_id
            scores = np.where(mask, scores, -np.inf)
        k = min(top_k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        best = best[np.isfinite(scores[best])]
        return [
            Hit(str(matrix.chunk_ids[i]), str(matrix.file_ids[i]), float(scores[i])) for i in best
        ]


async def embed_query_old(question: str) -> list[float]:
    """The previous query embedding: the provider's own call, no cache."""
    result = await local.LocalEmbeddings().embed([question], MODEL)
    return result.vectors[0]


async def embed_query_new(question: str) -> list[float]:
    vector, _ = await retrieval.embed_query(question, MODEL, None)
    return vector


# --- data ---------------------------------------------------------------------------


def corpus_sentences(count: int) -> list[str]:
    """Sentences from docstrings of installed packages, in a fixed order."""
    import importlib.util

    sentences: list[str] = []
    seen: set[str] = set()
    for number, package in enumerate(CORPUS_PACKAGES, 1):
        budget = count * number // len(CORPUS_PACKAGES)  # topics from every package
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for path in sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if not isinstance(
                    node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
                ):
                    continue
                doc = ast.get_docstring(node) or ""
                for text in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                    words = text.split()
                    plain = not re.search(r"[=>{}\[\]`|_:]", text)
                    if 6 <= len(words) <= 40 and plain and text not in seen:
                        seen.add(text)
                        sentences.append(text)
                        if len(sentences) >= budget:
                            break
                if len(sentences) >= budget:
                    break
            if len(sentences) >= budget:
                break
    return sentences


def synthesize(
    rng: np.random.Generator, sample: np.ndarray, files: int
) -> tuple[np.ndarray, np.ndarray]:
    """``files`` documents of PER_FILE chunk vectors each, and each file's project."""
    starts = rng.integers(0, len(sample) - WINDOW, files)
    picks = np.repeat(starts, PER_FILE)[:, None] + rng.integers(0, WINDOW, (files * PER_FILE, MIX))
    vectors = sample[picks].mean(axis=1)
    vectors += rng.standard_normal(vectors.shape).astype(np.float32) * NOISE
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), rng.integers(0, PROJECTS, files)


async def insert_files(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: str,
    vectors: np.ndarray,
    projects: np.ndarray,
    tag: str,
) -> None:
    """Files, chunks and vectors, bulk-inserted as the indexer stores them."""
    now = datetime.now(UTC)
    files = len(projects)
    file_ids = [f"fil_{tag}{i:08x}" for i in range(files)]
    async with transaction(sessions) as session:
        await session.execute(
            insert(File),
            [{"id": fid, "tenant_id": tenant_id, "project_id": f"project-{projects[i]}",
              "filename": f"{fid}.txt", "mime_type": "text/plain", "size": 0,
              "sha256": "0" * 64, "blob_key": "none", "status": "processed"}
             for i, fid in enumerate(file_ids)],
        )  # fmt: skip
    step = 20_000
    for start in range(0, len(vectors), step):
        stop = min(start + step, len(vectors))
        chunk_ids = [f"chk_{tag}{i:010x}" for i in range(start, stop)]
        owners = [i // PER_FILE for i in range(start, stop)]
        async with transaction(sessions) as session:
            await session.execute(
                insert(Chunk),
                [{"id": cid, "tenant_id": tenant_id, "file_id": file_ids[f],
                  "chunk_index": i % PER_FILE,
                  "page": 1, "text": f"synthetic passage {i}", "token_count": 0, "created_at": now}
                 for i, cid, f in zip(range(start, stop), chunk_ids, owners, strict=True)],
            )  # fmt: skip
            await session.execute(
                insert(ChunkVector),
                [{"chunk_id": cid, "model": MODEL, "tenant_id": tenant_id, "file_id": file_ids[f],
                  "project_id": f"project-{projects[f]}", "dim": vectors.shape[1],
                  "vector": vectors[i].tobytes()}
                 for i, cid, f in zip(range(start, stop), chunk_ids, owners, strict=True)],
            )  # fmt: skip
            await bump_generation(session, tenant_id, MODEL)


# --- measuring ----------------------------------------------------------------------


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set of this process, MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def figures(samples: list[float]) -> str:
    return f"p50 {percentile(samples, 50):6.1f} ms  p95 {percentile(samples, 95):6.1f} ms"


async def timed_queries(
    sessions: async_sessionmaker[AsyncSession],
    index: Float32ExactIndex | DatabaseVectorIndex,
    tenant_id: str,
    questions: list[str],
    embed: Callable[[str], Awaitable[list[float]]],
) -> tuple[list[float], list[float]]:
    """(embedding + search, search alone) per question, ms; a session per question."""
    total, searching = [], []
    for question in questions:
        started = time.perf_counter()
        vector = await embed(question)
        embedded = time.perf_counter()
        async with sessions() as session:
            await index.search(session, tenant_id, MODEL, vector, top_k=10)
        done = time.perf_counter()
        total.append((done - started) * 1000)
        searching.append((done - embedded) * 1000)
    return total, searching


async def recall(
    sessions: async_sessionmaker[AsyncSession],
    exact: Float32ExactIndex,
    index: DatabaseVectorIndex,
    tenant_id: str,
    vectors: list[list[float]],
    project_id: str | None = None,
) -> float:
    found = 0
    async with sessions() as session:
        for vector in vectors:
            truth = await exact.search(
                session, tenant_id, MODEL, vector, top_k=10, project_id=project_id
            )
            got = await index.search(
                session, tenant_id, MODEL, vector, top_k=10, project_id=project_id
            )
            found += len({h.chunk_id for h in truth} & {h.chunk_id for h in got})
    return found / (10 * len(vectors))


async def load(
    sessions: async_sessionmaker[AsyncSession],
    index: Float32ExactIndex | DatabaseVectorIndex,
    tenant_id: str,
    probe: list[float],
) -> tuple[float, float, float]:
    """(seconds, RSS before MB, RSS peak MB) of the first search, which loads."""
    gc.collect()
    before, _ = rss_mb()
    started = time.perf_counter()
    async with sessions() as session:
        await index.search(session, tenant_id, MODEL, probe, top_k=10)
    return time.perf_counter() - started, before, rss_mb()[1]


async def bench_size(
    args: argparse.Namespace,
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: str,
    settings: Settings,
    questions: list[str],
    question_vectors: list[list[float]],
    sample: np.ndarray,
    size: int,
) -> None:
    print(
        f"\n=== {size:,} chunks (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    old, new = Float32ExactIndex(), DatabaseVectorIndex(ann_threshold=settings.vector_ann_threshold)
    probe = question_vectors[0]

    seconds, before, peak = await load(sessions, new, tenant_id, probe)
    started = time.perf_counter()
    async with sessions() as session:
        stats = await new.stats(session, tenant_id, MODEL, wait_for_graph=True)
    graph_seconds = time.perf_counter() - started
    after, peak = rss_mb()[0], max(peak, rss_mb()[1])
    if stats is None:
        raise RuntimeError("the index is empty")
    print(f"  new   load {seconds:6.1f} s, then graph ready {graph_seconds:6.1f} s later "
          f"({'ANN graph' if stats.graph else 'exact scan only'}); arrays + graph "
          f"{stats.memory_bytes / 2**20:5.0f} MB; RSS +{after - before:5.0f} MB "
          f"(peak +{peak - before:5.0f} MB)")  # fmt: skip
    seconds, before, peak = await load(sessions, old, tenant_id, probe)
    after = rss_mb()[0]
    matrix = next(iter(old.cache.values()))
    print(f"  old   load {seconds:6.1f} s (baseline)                              float32 "
          f"matrix {matrix.vectors.nbytes / 2**20:5.0f} MB; RSS +{after - before:5.0f} MB "
          f"(peak +{peak - before:5.0f} MB)")  # fmt: skip

    print(f"  query embedding + search, {len(questions)} questions, top 10 "
          f"(new: ANN above {settings.vector_ann_threshold:,} vectors)")  # fmt: skip
    for run in range(1, args.runs + 1):
        old_total, old_search = await timed_queries(
            sessions, old, tenant_id, questions, embed_query_old
        )
        retrieval.QUERY_CACHE.clear()
        new_total, new_search = await timed_queries(
            sessions, new, tenant_id, questions, embed_query_new
        )
        print(f"    run {run}: old {figures(old_total)}   new {figures(new_total)}   "
              f"(goal p95 < 50 ms)")  # fmt: skip
        print(f"           search alone: old {figures(old_search)}   new {figures(new_search)}")
    cached, _ = await timed_queries(sessions, new, tenant_id, questions, embed_query_new)
    print(f"    repeated questions (query cache warm): new {figures(cached)}")

    exact_new = DatabaseVectorIndex(ann_threshold=10**12)  # the float16 exact scan alone
    await load(sessions, exact_new, tenant_id, probe)
    _, exact_search = await timed_queries(
        sessions, exact_new, tenant_id, questions[:50], embed_query_new
    )
    print(f"    search alone, float16 exact scan (the new path below the threshold): "
          f"{figures(exact_search)}")  # fmt: skip

    unfiltered = await recall(sessions, old, new, tenant_id, question_vectors)
    project = await recall(sessions, old, new, tenant_id, question_vectors, project_id="project-3")
    f16 = await recall(sessions, old, exact_new, tenant_id, question_vectors)
    print(f"  recall@10 against the float32 exact scan, {len(question_vectors)} questions: "
          f"new {unfiltered:.3f} (goal >= 0.95), with a project filter (~10% of rows) "
          f"{project:.3f}; float16 exact scan {f16:.3f}")  # fmt: skip
    del exact_new

    extra, projects = synthesize(np.random.default_rng(size + 1), sample, 1)
    await insert_files(sessions, tenant_id, extra[:64], projects, f"x{size:x}")
    timings = {}
    for name, index in (("new", new), ("old", old)):
        started = time.perf_counter()
        async with sessions() as session:
            await index.search(session, tenant_id, MODEL, probe, top_k=10)
        timings[name] = time.perf_counter() - started
    print(f"  first search after one more 64-chunk document (reload): old "
          f"{timings['old']:.2f} s   new {timings['new']:.2f} s (graph updated in place)")  # fmt: skip
    del old, new
    gc.collect()


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="weft-bench-retrieval-") as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            database_url=args.database_url or f"sqlite:///{tmp}/weft.db",
        )
        await asyncio.to_thread(migrate.upgrade, settings)
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        try:
            async with transaction(sessions) as session:
                tenant_id = (await create_tenant_with_defaults(session, "bench")).tenant.id
            started = time.perf_counter()
            texts = corpus_sentences(args.sample + 20 * args.queries)
            questions = [t for i, t in enumerate(texts) if i % 20 == 7][: args.queries]
            held_out = set(questions)
            sample_texts = [t for t in texts if t not in held_out][: args.sample]
            sample = local.embed_sync(sample_texts)
            question_vectors = [v.tolist() for v in local.embed_sync(questions)]
            print(f"corpus: {len(sample_texts)} sentences embedded, {len(questions)} questions "
                  f"({time.perf_counter() - started:.0f} s); chunk = mean of {MIX} of a "
                  f"document's {WINDOW} sentences + noise {NOISE}/dim")  # fmt: skip
            rng = np.random.default_rng(7)
            have = 0
            for size in sorted(int(s) for s in args.sizes.split(",") if s):
                started = time.perf_counter()
                while have < size:
                    files = min(200, math.ceil((size - have) / PER_FILE))
                    vectors, projects = synthesize(rng, sample, files)
                    vectors = vectors[: size - have]
                    await insert_files(sessions, tenant_id, vectors, projects, f"{have:x}_")
                    have += len(vectors)
                print(f"\ninserted up to {have:,} chunks ({time.perf_counter() - started:.0f} s)")
                await bench_size(
                    args, sessions, tenant_id, settings, questions, question_vectors, sample, size
                )
        finally:
            await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=4000)
    parser.add_argument("--database-url", default=None)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
