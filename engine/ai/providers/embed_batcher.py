"""One forward pass for the embedding requests of many callers.

A worker runs several embed activities at once, each for a small document (a
three-page PDF is six chunks). Run one by one, the model sees batches of six;
here concurrent requests wait up to ``max_wait_seconds`` for company and go to
the model together, up to ``max_batch`` texts per pass, each caller getting
back exactly its own rows. Requests that arrive while a pass runs form the
next one, so under load batches fill up without any added wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_MAX_BATCH = 128
DEFAULT_MAX_WAIT_SECONDS = 0.005


@dataclass
class _Request:
    texts: Sequence[str]
    normalize: bool
    done: asyncio.Future[np.ndarray] = field(default_factory=asyncio.Future)


class EmbedBatcher:
    """Coalesces ``embed(texts, normalize)`` calls into passes of ``run``.

    ``run(texts, normalize)`` is the blocking model call (it runs in a thread);
    requests with different ``normalize`` go in different passes.
    """

    def __init__(
        self,
        run: Callable[[Sequence[str], bool], np.ndarray],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
    ) -> None:
        self.run = run
        self.max_batch = max_batch
        self.max_wait_seconds = max_wait_seconds
        self._queue: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.passes = 0  # model passes so far (the bench reports texts per pass)
        self.texts = 0

    async def embed(self, texts: Sequence[str], *, normalize: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (a test's): start afresh on it
            self._loop, self._queue, self._worker = loop, [], None
        request = _Request(texts, normalize)
        self._queue.append(request)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain())
        return await request.done

    async def _drain(self) -> None:
        while self._queue:
            if sum(len(r.texts) for r in self._queue) < self.max_batch:
                await asyncio.sleep(self.max_wait_seconds)  # room left: wait for company
            batch = self._take()
            texts = [text for request in batch for text in request.texts]
            try:
                vectors = await asyncio.to_thread(self.run, texts, batch[0].normalize)
            except Exception as exc:  # every caller of the pass sees the failure
                for request in batch:
                    if not request.done.done():
                        request.done.set_exception(exc)
                continue
            self.passes += 1
            self.texts += len(texts)
            offset = 0
            for request in batch:
                rows = vectors[offset : offset + len(request.texts)]
                offset += len(request.texts)
                if not request.done.done():  # its caller may have been cancelled
                    request.done.set_result(rows)

    def _take(self) -> list[_Request]:
        """The oldest requests (whole, same ``normalize``) up to ``max_batch`` texts;
        a request larger than that goes alone."""
        first = self._queue[0]
        batch, size = [first], len(first.texts)
        rest: list[_Request] = []
        for request in self._queue[1:]:
            fits = size + len(request.texts) <= self.max_batch
            if fits and request.normalize == first.normalize:
                batch.append(request)
                size += len(request.texts)
            else:
                rest.append(request)
        self._queue = rest
        return batch
