"""Approximate nearest neighbours for large embedded indexes (usearch HNSW).

A table's rows are split by position into shards of ``SHARD_ROWS``, one graph
each, and a search asks every graph: at a million rows four graphs of 250k
find 0.98 of the exact top 10 where one graph of a million finds 0.92 (same
search effort per graph), and build faster. A graph does not copy vectors:
each node points at its float16 row in the table's ``RowStore``, whose blocks
never move, so a graph adds only its links (about 250 bytes a row). Keys are
row positions, never reused while the graph lives.

Building graphs over 100k rows takes tens of seconds and over a million
minutes, so it happens in a background thread; searches use the exact scan
until the graphs are published, and published graphs are then kept up to date
row by row on the event loop (usearch does not allow adding while another
thread searches the same graph).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
from usearch.index import Index

# Measured on bench/retrieval.py's MiniLM-like chunks. One graph of 100k rows:
# recall@10 against the exact scan 0.96 with search expansion 64, 0.985 with
# 128, 0.998 with 192 or more (half a millisecond). A million rows as four
# graphs: 0.973 with 128, 0.984 with 256 (3.4 ms for all four); as one graph:
# 0.92 with 256, 0.953 with 512.
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 256
SHARD_ROWS = 262_144  # positions per graph (four blocks of the RowStore)


def new_graph(dim: int) -> Index:
    return Index(
        ndim=dim,
        metric="cos",
        dtype="f16",
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )


Span = tuple[int, np.ndarray]  # (position of the first row, a view of consecutive rows)


def add_spans(graph: Index, spans: Iterator[Span], alive: np.ndarray, *, threads: int) -> None:
    """Add rows to ``graph`` by reference, then take out those not alive."""
    for start, rows in spans:
        # copy=False keeps a pointer to each row: only a float16 view of the
        # store itself may be given, never a converted or gathered copy.
        if rows.dtype != np.float16 or not rows.flags.c_contiguous:
            raise ValueError("graph rows must be contiguous float16 views of the store")
        keys = np.arange(start, start + len(rows), dtype=np.uint64)
        graph.add(keys, rows, copy=False, threads=threads)
        dead = keys[~alive[start : start + len(rows)]]
        if len(dead):
            graph.remove(dead)


class GraphBuild:
    """Builds the graphs of consecutive shards in a daemon thread; the owner
    publishes them once done.

    ``shards`` are (shard number, the rows of that shard to add); ``alive`` is
    the owner's snapshot when the build starts: rows that die later are taken
    out when the graphs are published.
    """

    def __init__(
        self, dim: int, shards: list[tuple[int, list[Span]]], alive: np.ndarray, *, epoch: int
    ) -> None:
        self.first = shards[0][0] if shards else 0
        self.upto = len(alive)  # every live row below this position is in the graphs once done
        self.epoch = epoch
        self.graphs: list[Index] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(dim, shards, alive), name="weft-ann-build", daemon=True
        )
        self._thread.start()

    def _run(self, dim: int, shards: list[tuple[int, list[Span]]], alive: np.ndarray) -> None:
        try:
            for _, spans in shards:
                graph = new_graph(dim)
                add_spans(graph, iter(spans), alive, threads=0)
                self.graphs.append(graph)
        except BaseException as exc:  # noqa: BLE001 - reported to the owner, who keeps exact search
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()
