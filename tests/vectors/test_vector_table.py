"""The in-memory table behind the embedded index, with small shards so that
several graphs, a graph growing into a new shard and a bulk rebuild beside
live graphs all happen on a few thousand rows."""

from __future__ import annotations

import numpy as np

from engine.vectors.base import Hit
from engine.vectors.table import StoredRow, VectorTable

DIM = 32
SHARD = 1024


def rows_of(vectors: np.ndarray, start: int, project: str = "p") -> list[StoredRow]:
    return [
        (f"chk_{start + i}", f"fil_{(start + i) // 100}", project, v.astype(np.float32).tobytes())
        for i, v in enumerate(vectors)
    ]


def reload(table: VectorTable, rows: list[StoredRow], generation: int) -> None:
    """What a reload does: every stored row fed in batches, then the graphs synced."""
    reconcile = table.reconcile()
    for start in range(0, len(rows), 700):
        reconcile.feed(rows[start : start + 700])
    reconcile.finish(generation)
    table.sync_graph(500)


def wait_for_graphs(table: VectorTable) -> None:
    if table.build is not None:
        table.build.join()
    table.sync_graph(500)
    assert table.graphs and table.build is None


def clustered(rng: np.random.Generator, count: int, centers: np.ndarray) -> np.ndarray:
    vectors: np.ndarray = centers[rng.integers(0, len(centers), count)]
    vectors = vectors + 0.35 * rng.standard_normal((count, DIM))
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit.astype(np.float32)


def recall(table: VectorTable, queries: np.ndarray, **filters: str) -> float:
    found = 0
    for query in queries:
        got: list[Hit] = table.search(query, top_k=10, **filters)  # type: ignore[arg-type]
        truth = table.search(query, top_k=10, exact=True, **filters)  # type: ignore[arg-type]
        assert len(got) == len(truth)
        found += len({h.chunk_id for h in got} & {h.chunk_id for h in truth})
    return found / (10 * len(queries))


def test_graphs_per_shard_grow_rebuild_and_forget() -> None:
    rng = np.random.default_rng(5)
    centers = rng.standard_normal((20, DIM))
    queries = clustered(rng, 60, centers)
    table = VectorTable(DIM, shard_rows=SHARD)
    stored = rows_of(clustered(rng, 3000, centers), 0)
    reload(table, stored, 1)
    assert not table.graphs  # built in the background; exact search meanwhile
    assert recall(table, queries) == 1.0
    wait_for_graphs(table)
    assert len(table.graphs) == 3 and table.graph_upto == 3000
    assert recall(table, queries) >= 0.95

    # One more document crosses into a fourth shard: added on the spot.
    new = clustered(rng, 200, centers)
    stored += rows_of(new, 3000)
    reload(table, stored, 2)
    assert len(table.graphs) == 4 and table.graph_upto == 3200 and table.build is None
    assert sum(len(graph) for graph in table.graphs) == 3200
    hit = table.search(new[150], top_k=1)[0]
    assert hit.chunk_id == "chk_3150" and abs(hit.score - 1.0) < 1e-3

    # A bulk load: the open shard and the new ones are rebuilt beside the live
    # graphs, which keep answering, with the new rows scanned exactly.
    bulk = clustered(rng, 5000, centers)
    stored += rows_of(bulk, 3200, project="q")
    reload(table, stored, 3)
    assert table.build is not None and len(table.graphs) == 4 and table.graph_upto == 3200
    assert table.search(bulk[4321], top_k=1)[0].chunk_id == "chk_7521"
    assert recall(table, queries) >= 0.95
    wait_for_graphs(table)
    assert len(table.graphs) == 9 and table.graph_upto == 8200
    assert sum(len(graph) for graph in table.graphs) == 8200
    assert recall(table, queries) >= 0.95
    assert recall(table, queries, project_id="q") >= 0.95
    hits = table.search(queries[0], top_k=10, project_id="p")
    assert len(hits) == 10 and all(int(h.chunk_id[4:]) < 3200 for h in hits)

    # Deleted rows leave every graph and every answer.
    gone = {row[0] for row in stored[1000:2000]} | {row[0] for row in stored[6000:6500]}
    stored = [row for row in stored if row[0] not in gone]
    reload(table, stored, 4)
    assert table.count == 6700 and table.dead == 1500
    assert sum(len(graph) for graph in table.graphs) == 6700
    for vector in (*clustered(rng, 1, centers), bulk[3000], new[0]):
        assert not {h.chunk_id for h in table.search(vector, top_k=50)} & gone
    assert table.search(bulk[3000], top_k=1)[0].chunk_id != "chk_6200"  # deleted row
    assert recall(table, queries) >= 0.95


def test_a_reload_changes_only_what_changed() -> None:
    rng = np.random.default_rng(6)
    centers = rng.standard_normal((8, DIM))
    table = VectorTable(DIM, shard_rows=SHARD)
    stored = rows_of(clustered(rng, 2000, centers), 0)
    reload(table, stored, 1)
    wait_for_graphs(table)
    graphs = list(table.graphs)

    # Same rows again, one re-embedded, one moved to another project.
    moved = clustered(rng, 1, centers)[0]
    stored[10] = (stored[10][0], stored[10][1], "p", moved.tobytes())
    stored[20] = (stored[20][0], stored[20][1], "elsewhere", stored[20][3])
    reload(table, stored, 2)
    assert table.graphs == graphs  # the very same graphs, kept up to date
    assert (table.size, table.dead, table.generation) == (2001, 1, 2)
    hit = table.search(moved, top_k=1)[0]
    assert hit.chunk_id == "chk_10" and abs(hit.score - 1.0) < 1e-3
    assert [h.chunk_id for h in table.search(moved, top_k=5, project_id="elsewhere")] == ["chk_20"]

    # A row of another shape (another model's width) is ignored, not fatal.
    reload(table, [*stored, ("chk_odd", "fil_odd", None, b"\0" * 12)], 3)
    assert table.count == 2000
