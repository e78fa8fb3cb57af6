"""Live event streams of one API process: the fan-out hub.

Every WebSocket and SSE client of the process holds one ``Subscription`` (its
tenant, optionally one subject and a set of types) with a bounded queue of its
own. The hub fills those queues from one source per process:

- with Redis configured, one ``SUBSCRIBE`` to the channel the dispatcher
  publishes every sequenced event on (``catalog.stream_channel``); after a
  (re)connect it reads what it may have missed from the database;
- without Redis, it tails the ``events`` table itself (``seq > cursor`` every
  ``event_stream_poll_seconds``), and only while somebody listens.

An event reaches streams once the dispatcher gave it its position ``seq``, and
positions grow in commit order, so a client that resumes after position N gets
everything after it with no gap and no repeat: the subscription is registered
first, then the backlog (``seq > N``, from the database, tenant-scoped) is read,
then live events follow, and anything at or before the last position handed
out is skipped. A client that falls more than its queue behind is closed (it
may resume from its last position); it never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db.tables import Event, Execution
from engine.events.catalog import Published, stream_channel
from engine.events.dispatch import published
from engine.platform.settings import Settings

log = logging.getLogger("weft.events")

QUEUE_SIZE = 1000  # events a subscriber may lag behind before it is closed
PAGE = 500  # rows per database read (tail, catch-up, backlog)
REDIS_READ_SECONDS = 1.0
RETRY_SECONDS = (0.5, 10.0)  # first and longest wait after a failed read


@dataclass(frozen=True)
class StreamFilter:
    """What one subscriber sees: always one tenant; optionally one subject and some types."""

    tenant_id: str
    subject: str | None = None
    types: frozenset[str] | None = None

    def matches(self, event: Published) -> bool:
        return (
            event.tenant_id == self.tenant_id
            and (self.subject is None or event.subject == self.subject)
            and (self.types is None or event.type in self.types)
        )


class Subscription:
    """One client's stream: iterate it for ``Published`` events, in ``seq`` order.

    With ``after_seq`` the stream starts with the stored events after that
    position (the backlog), then continues live.
    """

    def __init__(
        self, hub: EventHub, stream: StreamFilter, after_seq: int | None, size: int
    ) -> None:
        self._hub = hub
        self.filter = stream
        self.allowed = stream.types  # what it may ever see (None: every type)
        self.last_seq = after_seq or 0  # the last position handed out
        self._backlog = after_seq is not None
        self._read_to = self.last_seq  # how far the backlog has been read
        self._page: deque[Published] = deque()
        self._queue: asyncio.Queue[Published | None] = asyncio.Queue(size)
        self.closed = False
        self.overflowed = False  # closed because it fell too far behind

    def narrow(
        self,
        *,
        subject: str | None = None,
        types: Iterable[str] | None = None,
    ) -> StreamFilter:
        """See only ``subject`` (None: every subject) and ``types`` (None: all it
        may see); never more types than the subscription began with."""
        wanted = frozenset(types) if types is not None else self.allowed
        if self.allowed is not None and wanted is not None:
            wanted = wanted & self.allowed
        self.filter = dataclasses.replace(self.filter, subject=subject, types=wanted)
        return self.filter

    def offer(self, event: Published) -> None:
        """Queue ``event`` if it is for this subscriber (the hub calls this)."""
        if self.closed or event.seq <= self.last_seq or not self.filter.matches(event):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.info("closing a stream of tenant %s: it fell behind", self.filter.tenant_id)
            self.overflowed = True
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._hub._remove(self)
        with contextlib.suppress(asyncio.QueueFull):  # a full queue ends when drained
            self._queue.put_nowait(None)

    async def next(self, within: float | None = None) -> Published | None:
        """The next event, or None when ``within`` seconds passed without one.

        Raises ``StopAsyncIteration`` once the subscription is closed and drained.
        """
        while True:
            if self._page:
                event = self._page.popleft()
                if event.seq <= self.last_seq or not self.filter.matches(event):
                    continue
                self.last_seq = event.seq
                return event
            if self._backlog:
                page = await self._hub.backlog(
                    self.filter.tenant_id,
                    max(self._read_to, self.last_seq),
                    subject=self.filter.subject,
                    types=self.filter.types,
                    limit=PAGE,
                )
                self._page.extend(page)
                self._backlog = len(page) == PAGE
                if page:
                    self._read_to = page[-1].seq
                continue
            if self.closed and self._queue.empty():
                raise StopAsyncIteration
            if within is None:
                item = await self._queue.get()
            else:
                try:
                    async with asyncio.timeout(within):
                        item = await self._queue.get()
                except TimeoutError:
                    return None
            if item is None:
                raise StopAsyncIteration
            if item.seq <= self.last_seq or not self.filter.matches(item):
                continue
            self.last_seq = item.seq
            return item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Published:
        event = await self.next()
        assert event is not None  # no timeout: only an event or the end
        return event


class EventHub:
    """The process's one reader of sequenced events, fanning them out to its subscribers."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis | None,
        *,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.redis = redis
        self.queue_size = queue_size
        self._by_tenant: dict[str, set[Subscription]] = {}
        self._count = 0
        # The last position read from the source (events after it are still to come).
        self._position: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopped = False

    @property
    def source(self) -> str:
        return "redis" if self.redis is not None else "database"

    @property
    def subscribers(self) -> int:
        return self._count

    async def start(self) -> None:
        """With Redis: note the current position and start listening (without:
        the database is tailed from the first subscription on)."""
        self._stopped = False
        if self.redis is None or (self._task is not None and not self._task.done()):
            return
        try:
            self._position = await self.max_seq()
        except Exception as exc:  # the listener catches up once it connects
            log.warning("event hub: could not read the stream position: %s", exc)
        self._task = asyncio.create_task(self._listen(self.redis), name="weft-event-hub")

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for subscribers in list(self._by_tenant.values()):
            for subscription in list(subscribers):
                subscription.close()

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        tenant_id: str,
        *,
        subject: str | None = None,
        types: Iterable[str] | None = None,
        after_seq: int | None = None,
    ) -> AsyncIterator[Subscription]:
        """A subscription for the block; ``after_seq`` replays the stored events after it."""
        allowed = frozenset(types) if types is not None else None
        subscription = Subscription(
            self, StreamFilter(tenant_id, subject, allowed), after_seq, self.queue_size
        )
        self._by_tenant.setdefault(tenant_id, set()).add(subscription)
        self._count += 1
        try:
            if self._stopped:
                subscription.close()
            else:
                await self._ensure_source()
            yield subscription
        finally:
            subscription.close()

    def _remove(self, subscription: Subscription) -> None:
        subscribers = self._by_tenant.get(subscription.filter.tenant_id)
        if subscribers is None or subscription not in subscribers:
            return
        subscribers.discard(subscription)
        self._count -= 1
        if not subscribers:
            del self._by_tenant[subscription.filter.tenant_id]

    def _deliver(self, event: Published) -> None:
        if self._position is None or event.seq > self._position:
            self._position = event.seq
        for subscription in list(self._by_tenant.get(event.tenant_id, ())):
            subscription.offer(event)

    # Reading the database.

    async def max_seq(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.max(Event.seq))) or 0)

    async def backlog(
        self,
        tenant_id: str,
        after_seq: int,
        *,
        subject: str | None = None,
        types: Iterable[str] | None = None,
        limit: int = PAGE,
    ) -> list[Published]:
        """The tenant's sequenced events after position ``after_seq``, oldest first."""
        query = select(Event).where(Event.tenant_id == tenant_id, Event.seq > after_seq)
        if subject is not None:
            query = query.where(Event.subject == subject)
        if types is not None:
            wanted = sorted(types)
            if not wanted:
                return []
            query = query.where(Event.type.in_(wanted))
        async with self.sessions() as session:
            rows = await session.scalars(query.order_by(Event.seq).limit(limit))
            return [published(row) for row in rows]

    async def knows(self, tenant_id: str, subject: str) -> bool:
        """Whether ``subject`` is the tenant's: an execution of its own, or any
        of its events (another tenant's id is simply unknown)."""
        async with self.sessions() as session:
            execution = await session.get(Execution, subject)
            if execution is not None:
                return execution.tenant_id == tenant_id
            found = await session.scalar(
                select(Event.id)
                .where(Event.tenant_id == tenant_id, Event.subject == subject)
                .limit(1)
            )
            return found is not None

    async def _read_after(self, position: int) -> list[Published]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Event).where(Event.seq > position).order_by(Event.seq).limit(PAGE)
            )
            return [published(row) for row in rows]

    # The two sources.

    async def _ensure_source(self) -> None:
        if self.redis is not None:
            if self._task is None or self._task.done():
                await self.start()
            return
        async with self._lock:
            if self._task is not None and not self._task.done():
                return
            # Registered before this read: whatever commits later is tailed,
            # whatever committed earlier is in the subscriber's backlog.
            self._position = await self.max_seq()
            self._task = asyncio.create_task(self._tail(), name="weft-event-tail")

    async def _tail(self) -> None:
        """Poll the table while anybody listens (exits when the last one leaves)."""
        poll = self.settings.event_stream_poll_seconds
        delay = RETRY_SECONDS[0]
        while self._count and not self._stopped:
            try:
                events = await self._read_after(self._position or 0)
            except Exception as exc:
                log.warning("event hub: reading the events table failed: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_SECONDS[1])
                continue
            delay = RETRY_SECONDS[0]
            for event in events:
                self._deliver(event)
            if len(events) < PAGE:
                await asyncio.sleep(poll)

    async def _listen(self, redis: Redis) -> None:
        """Deliver what the dispatcher publishes; reconnect (and catch up) after a failure."""
        channel = stream_channel(self.settings.task_queue_prefix)
        delay = RETRY_SECONDS[0]
        while True:
            pubsub = redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                # Subscribed: anything published from now on arrives below; what
                # was sequenced since the last position is read once from the table.
                await self._catch_up()
                delay = RETRY_SECONDS[0]
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=REDIS_READ_SECONDS
                    )
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        event = Published.from_wire(json.loads(message["data"]))
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("event hub: ignoring a malformed stream message: %s", exc)
                        continue
                    self._deliver(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event hub: the Redis stream failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_SECONDS[1])
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _catch_up(self) -> None:
        if self._position is None or not self._count:
            self._position = await self.max_seq()
            return
        while True:
            events = await self._read_after(self._position)
            for event in events:
                self._deliver(event)
            if len(events) < PAGE:
                return
