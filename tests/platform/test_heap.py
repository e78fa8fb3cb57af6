"""After the model has loaded, full collections no longer walk torch and the model."""

from __future__ import annotations

import gc
import time

from engine.ai.providers import local


def test_a_full_collection_after_warm_up_walks_only_what_came_after() -> None:
    local.warm_up()  # loads MiniLM (torch), then settles the heap
    long_lived = gc.get_freeze_count()
    assert long_lived > 100_000  # torch, the model, every module: out of the collector's view
    fresh = [{"request": n} for n in range(1000)]  # what a request leaves behind
    assert len(gc.get_objects()) < long_lived / 10
    started = time.perf_counter()
    gc.collect()
    print(f"full collection after settling: {(time.perf_counter() - started) * 1000:.1f} ms")
    assert fresh
