"""Real HTTP servers on loopback that speak the Ollama and OpenAI wire formats.

Each fake is a Starlette app served by uvicorn on a free loopback port, so our
real clients (httpx through the egress guard) talk to it over TCP. A fake
records every request it receives (``requests``, ``paths()``), and counts
streams that finished or that the client closed early.

Trouble on demand, by model name or for every request (``fake.behaviour``):
``fail-429`` (429 with ``Retry-After: 7``), ``fail-500``, ``fail-malformed``
(a 200 whose body is not JSON), ``fail-hang`` (never answers until the test
ends), ``fail-404`` (unknown model), ``fail-redirect`` (302 to a metadata
address). The model ``endless`` streams tokens until the client goes away;
``midstream-error`` streams its reply, then an error instead of the end.
Pulls stream progress over two layers; set ``pull_gate`` to an
``asyncio.Event`` to hold a pull at 50 %.

Embeddings are deterministic (``fake_vector(text, dim)``), for callers that
check vectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

EMBED_DIM = 8
# Models the fakes have and list, that misbehave when called (``fail-404`` is the
# one they do not have).
TROUBLE_MODELS = ("fail-429", "fail-500", "fail-malformed", "fail-hang", "fail-redirect",
                  "endless", "midstream-error")  # fmt: skip
PULL_LAYERS = (("sha256:aaa", 1000), ("sha256:bbb", 3000))


def fake_vector(text: str, dim: int = EMBED_DIM) -> list[float]:
    """The fakes' embedding of ``text``: unit length, the same every time."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dim)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


def reply_for(messages: list[dict[str, Any]]) -> str:
    last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    return f"Echo: {last}"


def words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class FakeProvider:
    kind: str  # "ollama" or "openai"
    models: list[str] = field(default_factory=lambda: ["llama-test", "nomic-embed-text"])
    api_key: str | None = None
    behaviour: str = "ok"  # or 429, 500, malformed, hang, 404 for every request
    lists_trouble: bool = True  # whether the model list shows TROUBLE_MODELS too
    token_delay: float = 0.0
    pull_gate: asyncio.Event | None = None
    requests: list[Recorded] = field(default_factory=list)
    streams_completed: int = 0
    streams_closed_early: int = 0
    url: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    closed_early: asyncio.Event = field(default_factory=asyncio.Event)

    def listed(self) -> list[str]:
        return [*self.models, *(TROUBLE_MODELS if self.lists_trouble else ())]

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    def reset(self) -> None:
        self.requests.clear()
        self.behaviour = "ok"

    async def trouble(self, model: str | None) -> Response | None:
        mode = self.behaviour if self.behaviour != "ok" else ""
        if model and model.startswith("fail-"):
            mode = model.removeprefix("fail-")
        if mode == "429":
            return JSONResponse({"error": "slow down"}, 429, headers={"Retry-After": "7"})
        if mode == "500":
            return JSONResponse({"error": "upstream exploded"}, 500)
        if mode == "malformed":
            return Response(b'{"message": {"content": "trunc', media_type="application/json")
        if mode == "redirect":
            return Response(status_code=302, headers={"Location": "http://169.254.169.254/"})
        if mode == "hang":
            await self.release.wait()
            return JSONResponse({"error": "released"}, 500)
        if mode == "404" or (model is not None and model == "missing-model"):
            return JSONResponse({"error": f"model '{model}' not found"}, 404)
        return None

    async def tokens(self, text: str, model: str) -> AsyncIterator[str]:
        """The reply word by word (``endless``: until the client leaves)."""
        try:
            if model == "endless":
                n = 0
                while True:
                    n += 1
                    yield f" t{n}"
                    await asyncio.sleep(0.01)
            for word in words(text):
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                yield word
            self.streams_completed += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.streams_closed_early += 1
            self.closed_early.set()
            raise

    def authorised(self, request: Request) -> bool:
        return self.api_key is None or (
            request.headers.get("authorization") == f"Bearer {self.api_key}"
        )


async def _record(fake: FakeProvider, request: Request) -> Any:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    fake.requests.append(Recorded(request.method, request.url.path, body, dict(request.headers)))
    return body


def _ndjson(items: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        async for item in items:
            yield json.dumps(item).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def ollama_app(fake: FakeProvider) -> Starlette:
    async def chat(request: Request) -> Response:
        body = await _record(fake, request)
        model = body.get("model")
        if (problem := await fake.trouble(model)) is not None:
            return problem
        text = reply_for(body["messages"])
        prompt = sum(len(m["content"].split()) for m in body["messages"])
        final = {"model": model, "done": True, "done_reason": "stop", "prompt_eval_count": prompt}
        if not body.get("stream", True):
            message = {"role": "assistant", "content": text}
            return JSONResponse({**final, "message": message, "eval_count": len(text.split())})

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            async for token in fake.tokens(text, model):
                yield {"model": model, "message": {"role": "assistant", "content": token}}
            if model == "midstream-error":
                yield {"error": "model runner crashed"}
                return
            yield {**final, "message": {"role": "assistant", "content": ""}, "eval_count": 3}

        return _ndjson(chunks())

    async def generate(request: Request) -> Response:
        body = await _record(fake, request)
        if (problem := await fake.trouble(body.get("model"))) is not None:
            return problem
        text = f"Echo: {body['prompt']}"
        return JSONResponse(
            {
                "model": body["model"],
                "response": text,
                "done": True,
                "prompt_eval_count": 2,
                "eval_count": len(text.split()),
            }
        )

    async def tags(request: Request) -> Response:
        await _record(fake, request)
        if (problem := await fake.trouble(None)) is not None:
            return problem
        return JSONResponse(
            {
                "models": [
                    {
                        "name": m,
                        "model": m,
                        "size": 1000 + i,
                        "digest": f"sha256:{i}",
                        "modified_at": "2026-01-15T10:00:00Z",
                        "details": {"family": "fake"},
                    }
                    for i, m in enumerate(fake.listed())
                ]
            }
        )

    async def show(request: Request) -> Response:
        body = await _record(fake, request)
        if body.get("model") not in fake.models:
            return JSONResponse({"error": "model not found"}, 404)
        return JSONResponse(
            {"details": {"family": "fake", "parameter_size": "1B"}, "capabilities": ["completion"]}
        )

    async def pull(request: Request) -> Response:
        body = await _record(fake, request)
        model = body.get("model") or body.get("name")

        async def progress() -> AsyncIterator[dict[str, Any]]:
            yield {"status": "pulling manifest"}
            if model == "does-not-exist":
                yield {"error": "pull model manifest: file does not exist"}
                return
            for digest, total in PULL_LAYERS:
                for completed in (0, total // 2, total):
                    if digest == PULL_LAYERS[-1][0] and completed == total and fake.pull_gate:
                        await fake.pull_gate.wait()
                    yield {
                        "status": f"pulling {digest[7:]}",
                        "digest": digest,
                        "total": total,
                        "completed": completed,
                    }
            for status in ("verifying sha256 digest", "writing manifest", "success"):
                yield {"status": status}
            fake.models.append(model)

        return _ndjson(progress())

    async def delete(request: Request) -> Response:
        body = await _record(fake, request)
        if body.get("model") not in fake.models:
            return JSONResponse({"error": f"model '{body.get('model')}' not found"}, 404)
        fake.models.remove(body["model"])
        return Response(status_code=200)

    async def embed(request: Request) -> Response:
        body = await _record(fake, request)
        if (problem := await fake.trouble(body.get("model"))) is not None:
            return problem
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse(
            {
                "model": body["model"],
                "embeddings": [fake_vector(t) for t in texts],
                "prompt_eval_count": sum(len(t.split()) for t in texts),
            }
        )

    return Starlette(
        routes=[
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/generate", generate, methods=["POST"]),
            Route("/api/tags", tags, methods=["GET"]),
            Route("/api/show", show, methods=["POST"]),
            Route("/api/pull", pull, methods=["POST"]),
            Route("/api/delete", delete, methods=["DELETE"]),
            Route("/api/embed", embed, methods=["POST"]),
        ]
    )


def openai_app(fake: FakeProvider) -> Starlette:
    def unauthorised() -> Response:
        return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)

    async def completions(request: Request) -> Response:
        body = await _record(fake, request)
        if not fake.authorised(request):
            return unauthorised()
        model = body.get("model")
        if (problem := await fake.trouble(model)) is not None:
            return problem
        text = reply_for(body["messages"])
        usage = {
            "prompt_tokens": sum(len(m["content"].split()) for m in body["messages"]),
            "completion_tokens": len(text.split()),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if not body.get("stream"):
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
            return JSONResponse(
                {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )

        async def events() -> AsyncIterator[bytes]:
            async for token in fake.tokens(text, model):
                chunk = {
                    "id": "cmpl-1",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            if model == "midstream-error":
                yield b'data: {"error": {"message": "model runner crashed"}}\n\n'
                return
            last = {"id": "cmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(last)}\n\n".encode()
            if (body.get("stream_options") or {}).get("include_usage"):
                tail = {"id": "cmpl-1", "choices": [], "usage": usage}
                yield f"data: {json.dumps(tail)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def list_models(request: Request) -> Response:
        await _record(fake, request)
        if not fake.authorised(request):
            return unauthorised()
        if (problem := await fake.trouble(None)) is not None:
            return problem
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1, "owned_by": "fake"}
                    for m in fake.listed()
                ],
            }
        )

    async def one_model(request: Request) -> Response:
        await _record(fake, request)
        model = request.path_params["model"]
        if model not in fake.models:
            return JSONResponse({"error": {"message": "no such model"}}, 404)
        return JSONResponse({"id": model, "object": "model", "owned_by": "fake"})

    async def embeddings(request: Request) -> Response:
        body = await _record(fake, request)
        if not fake.authorised(request):
            return unauthorised()
        if (problem := await fake.trouble(body.get("model"))) is not None:
            return problem
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        tokens = sum(len(t.split()) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "model": body["model"],
                "data": [
                    {"object": "embedding", "index": i, "embedding": fake_vector(t)}
                    for i, t in enumerate(texts)
                ],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", one_model, methods=["GET"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ]
    )


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test process keeps its own signal handlers


@contextlib.asynccontextmanager
async def serve_app(
    app: Any, *, lifespan: Literal["auto", "on", "off"] = "off", before_exit: Any = None
) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=2
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if before_exit is not None:
            before_exit()
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def serve(fake: FakeProvider) -> AsyncIterator[FakeProvider]:
    """Run ``fake`` on a free loopback port until the block ends."""
    app = ollama_app(fake) if fake.kind == "ollama" else openai_app(fake)

    def unblock() -> None:
        fake.release.set()
        if fake.pull_gate is not None:
            fake.pull_gate.set()

    async with serve_app(app, before_exit=unblock) as url:
        fake.url = url
        yield fake


@pytest.fixture
async def fake_ollama() -> AsyncIterator[FakeProvider]:
    """A fake Ollama server (no API key)."""
    async with serve(FakeProvider("ollama")) as fake:
        yield fake


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeProvider]:
    """A fake OpenAI-compatible server that wants ``Authorization: Bearer sk-fake``."""
    models = ["gpt-fake", "gpt-fake-mini", "text-embedding-fake"]
    async with serve(FakeProvider("openai", models=models, api_key="sk-fake")) as fake:
        yield fake
