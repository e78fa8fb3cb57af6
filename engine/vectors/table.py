"""One (tenant, model) index in memory: float16 rows, their filters, and
optional ANN graphs.

Rows are L2-normalised and kept as float16 (half of float32: 768 MB for a
million 384-dimension vectors) in blocks that never move (``RowStore``); scans
use usearch's SIMD kernels, which read float16 directly, and the graphs point
at the rows instead of copying them. Rows are only ever appended: a deleted or
re-embedded chunk leaves a dead row behind (a "tombstone"), so a position
names one vector for the table's life and a graph can key its nodes by
position. Once dead rows are a quarter of the table it is compacted (a new
store, graphs rebuilt).

Above ``ann_threshold`` live rows, graphs (``ann``, one per shard of
positions) answer unfiltered and mildly filtered searches: they over-fetch,
rows the filters exclude are dropped, and the rows appended since the graphs
were built (the "tail") are scanned exactly beside them. A selective filter,
or graphs that cannot fill ``top_k``, fall back to the exact scan of the rows
the filter allows. Every answer's score is recomputed in float32 arithmetic
from its stored row, whichever path found it.

All mutation happens on the event loop's thread, between searches; graphs are
built or rebuilt in a background thread and published by the loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from typing import cast

import numpy as np
from usearch.index import Index, search

from engine.vectors.ann import SHARD_ROWS, GraphBuild, Span, add_spans, new_graph
from engine.vectors.base import Hit

log = logging.getLogger(__name__)

# (chunk_id, file_id, project_id, float32 bytes): one stored vector.
StoredRow = tuple[str, str, str | None, bytes]

_MIN_CAPACITY = 1024
_FIRST_BLOCK = 1024  # rows; blocks double up to _MAX_BLOCK, so small tables stay small
_MAX_BLOCK = 65_536
_COMPACT_MIN_DEAD = 4096
_INLINE_ADD_LIMIT = 4096  # tail rows added to the live graphs per reload (about a second)
_ANN_MIN_FRACTION = 0.05  # a filter allowing less than this scans its rows exactly
_MAX_FETCH = 4096  # graph candidates per search before exact is cheaper


def normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: np.ndarray = matrix / norms
    return normalised


def _exact(vectors: np.ndarray, query16: np.ndarray, count: int) -> np.ndarray:
    """Positions (into ``vectors``) of the ``count`` rows closest to the query."""
    count = min(count, len(vectors))
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    found = search(vectors, query16, count, "cos", exact=True, threads=1)
    return np.asarray(found.keys[: len(found)], dtype=np.int64)


class RowStore:
    """float16 rows in blocks that never move: graphs point into them, and a
    scan running in a thread keeps reading the rows it started with."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.blocks: list[np.ndarray] = []
        self.starts = np.zeros(0, dtype=np.int64)  # position of each block's first row
        self.capacity = 0

    @property
    def nbytes(self) -> int:
        return sum(int(block.nbytes) for block in self.blocks)

    def reserve(self, rows: int) -> None:
        while self.capacity < rows:
            size = min(_MAX_BLOCK, max(_FIRST_BLOCK, self.capacity))
            self.blocks.append(np.zeros((size, self.dim), dtype=np.float16))
            self.starts = np.append(self.starts, self.capacity)
            self.capacity += size

    def spans(self, lo: int, hi: int) -> Iterator[Span]:
        """Rows ``lo`` to ``hi`` as views, one per block they cross."""
        for start, block in zip(self.starts.tolist(), list(self.blocks), strict=False):
            first, last = max(lo, start), min(hi, start + len(block))
            if first < last:
                yield first, block[first - start : last - start]

    def write(self, lo: int, rows: np.ndarray) -> None:
        done = 0
        for _, view in self.spans(lo, lo + len(rows)):
            view[...] = rows[done : done + len(view)]
            done += len(view)

    def gather(self, positions: np.ndarray) -> np.ndarray:
        rows = np.empty((len(positions), self.dim), dtype=np.float16)
        which = np.searchsorted(self.starts, positions, side="right") - 1
        for block in np.unique(which).tolist():
            chosen = which == block
            rows[chosen] = self.blocks[block][positions[chosen] - self.starts[block]]
        return rows


class VectorTable:
    def __init__(self, dim: int, *, shard_rows: int = SHARD_ROWS) -> None:
        self.dim = dim
        self.shard_rows = shard_rows  # positions per graph
        self.generation = -1
        self.size = 0  # rows used, live or dead
        self.dead = 0
        self.epoch = 0  # bumped by compaction: positions before it mean nothing after
        self.store = RowStore(dim)
        self.alive = np.zeros(0, dtype=bool)
        self.file_codes = np.zeros(0, dtype=np.int32)
        self.project_codes = np.zeros(0, dtype=np.int32)  # -1: no project
        self.digests = np.zeros(0, dtype=np.int64)  # hash of each row's stored bytes
        self.chunk_ids: list[str] = []
        self.position: dict[str, int] = {}  # chunk id -> its live row
        self.file_names: list[str] = []
        self.file_code: dict[str, int] = {}
        self.project_code: dict[str, int] = {}
        self.graphs: list[Index] = []  # one per SHARD_ROWS positions
        self.graph_upto = 0  # live rows below this position are in the graphs
        self.build: GraphBuild | None = None
        self.build_failed = False
        self.removed: list[int] = []  # rows that died since the graphs last caught up

    @property
    def count(self) -> int:
        return self.size - self.dead

    # --- loading ------------------------------------------------------------------

    def reconcile(self) -> Reconcile:
        """Bring the table to what the database holds now (feed every stored row)."""
        return Reconcile(self)

    def _codes(
        self, file_ids: Sequence[str], project_ids: Sequence[str | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        files, projects = self.file_code, self.project_code
        for file_id in set(file_ids).difference(files):
            files[file_id] = len(self.file_names)
            self.file_names.append(file_id)
        for project_id in set(project_ids).difference(projects):
            if project_id is not None:
                projects[project_id] = len(projects)
        count = len(file_ids)
        file_codes = np.fromiter(map(files.__getitem__, file_ids), dtype=np.int32, count=count)
        code_of = cast(Callable[[str | None, int], int], projects.get)  # None is no key: -1
        project_codes = np.fromiter(
            map(code_of, project_ids, repeat(-1)), dtype=np.int32, count=count
        )
        return file_codes, project_codes

    def _append(
        self,
        chunk_ids: list[str],
        block: np.ndarray,
        files: np.ndarray,
        projects: np.ndarray,
        digests: np.ndarray,
    ) -> None:
        need = self.size + len(chunk_ids)
        if need > len(self.alive):
            self._grow(max(need, 2 * len(self.alive), _MIN_CAPACITY))
        start = self.size
        self.store.reserve(need)
        self.store.write(start, block)
        self.alive[start:need] = True
        self.file_codes[start:need] = files
        self.project_codes[start:need] = projects
        self.digests[start:need] = digests
        self.chunk_ids.extend(chunk_ids)
        self.position.update(zip(chunk_ids, range(start, need), strict=True))
        self.size = need

    def _grow(self, capacity: int) -> None:
        # New arrays, never a resize in place: a search running in a thread keeps
        # reading the arrays it started with.
        for name in ("alive", "file_codes", "project_codes", "digests"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)

    def _kill(self, positions: np.ndarray) -> None:
        if not len(positions):
            return
        self.alive[positions] = False
        self.dead += len(positions)
        for position in positions.tolist():
            chunk_id = self.chunk_ids[position]
            if self.position.get(chunk_id) == position:
                del self.position[chunk_id]
        if self.graphs or self.build is not None:
            self.removed.extend(positions.tolist())

    def _compact(self) -> None:
        keep = np.flatnonzero(self.alive[: self.size])
        store = RowStore(self.dim)
        store.reserve(len(keep))
        for start in range(0, len(keep), _MAX_BLOCK):
            store.write(start, self.store.gather(keep[start : start + _MAX_BLOCK]))
        self.store = store
        self.alive = np.ones(len(keep), dtype=bool)
        self.file_codes = self.file_codes[keep]
        self.project_codes = self.project_codes[keep]
        self.digests = self.digests[keep]
        self.chunk_ids = [self.chunk_ids[i] for i in keep.tolist()]
        self.position = {chunk_id: i for i, chunk_id in enumerate(self.chunk_ids)}
        self.size, self.dead = len(keep), 0
        self.epoch += 1
        self.graphs, self.graph_upto, self.build = [], 0, None
        self.build_failed = False
        self.removed = []

    # --- the graphs -----------------------------------------------------------------

    def sync_graph(self, threshold: int) -> None:
        """Start, publish, update or drop the graphs; called on the loop after changes."""
        if self.count == 0 or self.count < threshold // 2 or self.build_failed:
            self.graphs, self.graph_upto, self.build, self.removed = [], 0, None, []
            return
        if self.build is not None and self.build.done:
            build, self.build = self.build, None
            if build.error is not None:
                log.warning("ANN graph build failed, exact search stays: %s", build.error)
                self.build_failed = True
                self.graphs, self.graph_upto, self.removed = [], 0, []
                return
            if build.epoch == self.epoch:
                self._publish(build)
        if not self.graphs:
            if self.build is None and self.count >= threshold:
                self.removed = []
                self._start_build(0)
            return
        self._take_out_removed()
        if self.size - self.graph_upto <= _INLINE_ADD_LIMIT:
            self._extend(self.graph_upto, self.size)
        elif self.build is None:
            # A bulk load: the shards from the open one on are rebuilt in the
            # background; meanwhile the rows past the graphs are scanned exactly.
            self._start_build(self.graph_upto // self.shard_rows)

    def _shards(self, first: int, hi: int) -> list[tuple[int, list[Span]]]:
        rows = self.shard_rows
        return [
            (shard, list(self.store.spans(shard * rows, min(hi, (shard + 1) * rows))))
            for shard in range(first, math.ceil(hi / rows))
        ]

    def _start_build(self, first: int) -> None:
        shards = self._shards(first, self.size)
        alive = self.alive[: self.size].copy()
        self.build = GraphBuild(self.dim, shards, alive, epoch=self.epoch)

    def _extend(self, lo: int, hi: int) -> None:
        """Add rows ``lo`` to ``hi`` to the published graphs, on the loop."""
        for shard, spans in self._shards(lo // self.shard_rows, hi):
            if shard == len(self.graphs):
                self.graphs.append(new_graph(self.dim))
            rows = ((start, view) for start, view in spans if start + len(view) > lo)
            clipped = ((max(start, lo), view[max(0, lo - start) :]) for start, view in rows)
            add_spans(self.graphs[shard], clipped, self.alive[:hi], threads=1)
        self.graph_upto = hi

    def _take_out_removed(self) -> None:
        removed = np.unique(np.asarray(self.removed, dtype=np.int64))
        self.removed = []
        self._remove(removed[removed < self.graph_upto], self.graphs)

    def _remove(self, positions: np.ndarray, graphs: list[Index]) -> None:
        shards = positions // self.shard_rows
        for shard in np.unique(shards).tolist():
            keys = positions[shards == shard].astype(np.uint64)
            present = keys[np.asarray(graphs[shard].contains(keys), dtype=bool)]
            if len(present):
                graphs[shard].remove(present)

    def _publish(self, build: GraphBuild) -> None:
        graphs = self.graphs[: build.first] + build.graphs
        # Rows that died while the graphs were built may be in them: take them out.
        lo = build.first * self.shard_rows
        self._remove(lo + np.flatnonzero(~self.alive[lo : build.upto]), graphs)
        self.graphs, self.graph_upto = graphs, build.upto

    def memory_bytes(self) -> int:
        """Bytes held by the arrays and the graphs (Python strings and dicts excluded)."""
        arrays = self.alive, self.file_codes, self.project_codes, self.digests
        graphs = sum(int(graph.memory_usage) for graph in self.graphs)
        return self.store.nbytes + sum(int(a.nbytes) for a in arrays) + graphs

    # --- searching ----------------------------------------------------------------

    def _allowed(
        self, size: int, alive: np.ndarray, file_ids: Sequence[str] | None, project_id: str | None
    ) -> np.ndarray | None:
        """Rows the filters allow (live ones), or None when nothing is filtered."""
        mask: np.ndarray | None = None
        if file_ids:
            codes = [self.file_code[f] for f in set(file_ids) if f in self.file_code]
            mask = np.isin(self.file_codes[:size], codes) & alive
        if project_id:
            code = self.project_code.get(project_id, -2)  # -2 matches no row
            by_project = self.project_codes[:size] == code
            mask = by_project & alive if mask is None else mask & by_project
        return mask

    def search(
        self,
        query: np.ndarray,
        *,
        top_k: int,
        file_ids: Sequence[str] | None = None,
        project_id: str | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        """The ``top_k`` rows most similar to ``query`` (float32, unit length).

        Off the event loop, pass ``exact``: graphs are only read on the loop,
        which is also where it changes.
        """
        # Local references: a reload on the loop may replace them while a scan runs
        # in a thread; rows below ``size`` never change in what is read here.
        size, store, upto = self.size, self.store, self.graph_upto
        graphs = [] if exact else list(self.graphs)
        alive = self.alive[:size]
        chunk_ids, file_codes, file_names = self.chunk_ids, self.file_codes, self.file_names
        mask = self._allowed(size, alive, file_ids, project_id)
        mask = alive if mask is None else mask
        allowed = int(np.count_nonzero(mask))
        if allowed == 0 or top_k <= 0:
            return []
        k = min(top_k, allowed)
        query16 = query.astype(np.float16)
        found = None
        if graphs and allowed >= _ANN_MIN_FRACTION * self.count:
            found = self._graph_candidates(graphs, upto, query, store, query16, mask, allowed, k)
        if found is None:
            found = _exact_candidates(store, query16, mask, k, 0, size)
        scores = store.gather(found).astype(np.float32) @ query
        best = np.argsort(-scores, kind="stable")[:k]
        return [
            Hit(chunk_ids[p], file_names[file_codes[p]], float(scores[i]))
            for i, p in zip(best.tolist(), found[best].tolist(), strict=True)
        ]

    def _graph_candidates(
        self,
        graphs: list[Index],
        upto: int,
        query: np.ndarray,
        store: RowStore,
        query16: np.ndarray,
        mask: np.ndarray,
        allowed: int,
        k: int,
    ) -> np.ndarray | None:
        upto = min(upto, len(mask))
        tail = _exact_candidates(store, query16, mask, k, upto, len(mask))
        in_graphs = allowed - int(np.count_nonzero(mask[upto:]))
        if in_graphs <= 0:
            return tail
        live = max(1, int(np.count_nonzero(self.alive[:upto])))
        # Each graph over-fetches by how much the filter leaves out; rescoring
        # then picks the best k of every candidate.
        want = max(3 * k, k + 20)
        fetch = math.ceil(want * live / in_graphs)
        if fetch > _MAX_FETCH and fetch < live:
            return None
        found = []
        for graph in graphs:
            matches = graph.search(query, min(fetch, max(1, len(graph))), threads=1)
            found.append(np.asarray(matches.keys[: len(matches)], dtype=np.int64))
        keys = np.concatenate(found)
        keys = keys[(keys >= 0) & (keys < upto)]
        keys = keys[mask[keys]]
        if len(keys) < min(k, in_graphs):
            return None  # the filter excluded too much of what the graphs found
        return np.concatenate([keys, tail])


def _exact_candidates(
    store: RowStore, query16: np.ndarray, mask: np.ndarray, k: int, lo: int, hi: int
) -> np.ndarray:
    """The best ``k`` allowed rows of each block between ``lo`` and ``hi``."""
    found = [np.zeros(0, dtype=np.int64)]
    for start, rows in store.spans(lo, hi):
        part = mask[start : start + len(rows)]
        allowed = int(np.count_nonzero(part))
        if allowed == 0:
            continue
        excluded = len(rows) - allowed
        if excluded <= max(64, len(rows) // 16):
            # Few rows excluded: scan them all, and fetch past every excluded row.
            keys = _exact(rows, query16, min(k, allowed) + excluded)
            keys = keys[part[keys]][:k]
        else:
            chosen = np.flatnonzero(part)
            keys = chosen[_exact(rows[chosen], query16, k)]
        found.append(keys + start)
    return np.concatenate(found)


class Reconcile:
    """One reload: rows fed in batches, then ``finish`` retires the rows not seen."""

    def __init__(self, table: VectorTable) -> None:
        self.table = table
        self.seen = np.zeros(table.size, dtype=bool)

    def feed(self, rows: Sequence[StoredRow]) -> None:
        # Column-wise with map(): a reload of a million rows is mostly this loop.
        # An unchanged row is recognised by the hash of its stored bytes, so only
        # new and re-embedded rows are converted.
        table = self.table
        if not rows:
            return
        chunk_ids, file_ids, project_ids, blobs = zip(*rows, strict=True)
        count = len(rows)
        widths = np.fromiter(map(len, blobs), dtype=np.int64, count=count)
        if (widths != table.dim * 4).any():  # another model's shape: nothing to compare
            valid = np.flatnonzero(widths == table.dim * 4).tolist()
            self.feed([rows[i] for i in valid])
            return
        digests = np.fromiter(map(hash, blobs), dtype=np.int64, count=count)
        known = np.fromiter(
            map(table.position.get, chunk_ids, repeat(-1)), dtype=np.int64, count=count
        )
        files, projects = table._codes(file_ids, project_ids)
        is_known = known >= 0
        same = np.zeros(count, dtype=bool)
        if is_known.any():
            old = known[is_known]
            self.seen[old[old < len(self.seen)]] = True
            same[is_known] = table.digests[old] == digests[is_known]
            kept = known[same]
            # A file may have moved to another project: filters follow at once.
            table.file_codes[kept] = files[same]
            table.project_codes[kept] = projects[same]
            table._kill(known[is_known & ~same])  # re-embedded: the new vector is appended
        fresh = np.flatnonzero(~same)
        if not len(fresh):
            return
        raw = np.frombuffer(b"".join([blobs[i] for i in fresh.tolist()]), dtype=np.float32)
        block = normalise(raw.reshape(len(fresh), table.dim)).astype(np.float16)
        table._append(
            [chunk_ids[i] for i in fresh.tolist()],
            block,
            files[fresh],
            projects[fresh],
            digests[fresh],
        )

    def finish(self, generation: int) -> None:
        table = self.table
        seen = self.seen
        table._kill(np.flatnonzero(table.alive[: len(seen)] & ~seen))
        if table.dead > max(_COMPACT_MIN_DEAD, table.size // 4):
            table._compact()
        table.generation = generation
