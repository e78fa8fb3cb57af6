"""Keeping the garbage collector off the request path once a process has started.

A process that loaded torch and MiniLM holds a few hundred thousand long-lived
Python objects (modules, functions, the model's tensors). Each full collection
walks all of them: measured in the API under chat load, 230–430 ms with the
event loop stopped, once every couple of thousand requests — the unexplained
p99 stall of the hot-path bench. ``settle()`` moves every object alive at that
moment into the permanent generation, so later full collections walk only what
was allocated since (in that API, about 1,500 objects instead of 780,000).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("weft.heap")


def settle() -> None:
    """Freeze every tracked object. No collection first: walking the whole heap
    once more would hold the GIL (and stop the event loop) for up to a second,
    to free a few import-time cycles."""
    gc.freeze()
    log.debug("%d long-lived objects moved out of the collector's view", gc.get_freeze_count())
