"""A webhook receiver on loopback, as a customer would run one: it verifies both
signatures of every request with the secret it was given (the contract's
``sha256=`` HMAC by hand, Standard Webhooks with the ``standardwebhooks``
library), records what arrived, and answers what the test tells it to."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.fake_providers import serve_app

# (request number for this webhook-id, starting at 1) -> status code and headers
Answer = Callable[["Arrival"], tuple[int, dict[str, str]]]


@dataclass(frozen=True)
class Arrival:
    path: str
    headers: dict[str, str]
    body: bytes
    hex_ok: bool
    standard_ok: bool
    nth: int  # how many requests with this webhook-id arrived so far, this one included

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


def always_ok(_: Arrival) -> tuple[int, dict[str, str]]:
    return 200, {}


@dataclass
class Receiver:
    url: str = ""
    secret: str = ""
    signing_secret: str = ""  # whsec_… (Standard Webhooks form)
    answer: Answer = always_ok
    arrivals: list[Arrival] = field(default_factory=list)
    answered: list[tuple[Arrival, int]] = field(default_factory=list)
    redirect_target_calls: int = 0
    hang: asyncio.Event | None = None  # set: requests hang until cleared
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def delivered_ids(self) -> Counter[str]:
        """webhook-ids answered 2xx, with how often."""
        return Counter(a.webhook_id for a, status in self.answered if 200 <= status < 300)

    def of_type(self, event_type: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.event.get("type") == event_type]

    async def wait_for(self, predicate: Callable[[Receiver], bool], seconds: float = 60) -> None:
        async with asyncio.timeout(seconds):
            while not predicate(self):
                self.arrived.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), 0.5)


def _verify(receiver: Receiver, headers: dict[str, str], body: bytes) -> tuple[bool, bool]:
    expected = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
    hex_ok = hmac.compare_digest(headers.get("x-webhook-signature", ""), expected)
    try:
        Webhook(receiver.signing_secret).verify(body, headers)
        standard_ok = True
    except WebhookVerificationError:
        standard_ok = False
    return hex_ok, standard_ok


@asynccontextmanager
async def webhook_receiver(answer: Answer = always_ok) -> AsyncIterator[Receiver]:
    found = Receiver(answer=answer)
    seen: Counter[str] = Counter()

    async def hook(request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        hex_ok, standard_ok = _verify(found, headers, body)
        message_id = headers.get("webhook-id", "")
        seen[message_id] += 1
        arrival = Arrival(request.url.path, headers, body, hex_ok, standard_ok, seen[message_id])
        found.arrivals.append(arrival)
        if found.hang is not None and found.hang.is_set():
            await asyncio.sleep(3600)
        status, extra = found.answer(arrival)
        found.answered.append((arrival, status))
        found.arrived.set()
        if 300 <= status < 400:
            return RedirectResponse("/redirected", status_code=status)
        return Response(status_code=status, headers=extra)

    async def redirected(request: Request) -> Response:
        found.redirect_target_calls += 1
        return Response(status_code=200)

    routes = [
        Route("/hook", hook, methods=["POST"]),
        Route("/redirected", redirected, methods=["GET", "POST"]),
    ]
    async with serve_app(Starlette(routes=routes)) as url:
        found.url = url
        yield found
