"""API fuzzing: schemathesis against the app's own /openapi.json, every operation.

The API runs as it does in production (uvicorn, its lifespan, a real Temporal
dev server, a worker on the test's own task queues, SQLite, request history on),
called over loopback with a tenant administrator's API key. Schemathesis runs
its phases (the schema's examples; coverage: an invalid value at each edge of
each schema; fuzzing: random valid and invalid requests; stateful: sequences
that feed one answer's ids into the next call) with a bounded number of
examples per operation, and checks:

- ``not_a_server_error``: no 5xx, whatever is sent;
- ``response_schema_conformance``: every answer (errors and stream events too)
  matches what /openapi.json declares for its status;
- ``status_code_conformance``: and every status it answers is declared;
- ``negative_data_rejection``: data the schema forbids is refused with a 4xx;
- ``ignored_auth``: a route that declares a credential refuses a call without one
  or with a made-up one;
- ``use_after_free``: what was deleted stays gone.

No operation is excluded. ``POST /a2a`` is JSON-RPC, which answers a malformed
call with an in-band error under HTTP 200 (JSON-RPC 2.0 and the A2A spec want
that), so ``negative_data_rejection`` is off for that one operation. ``/mcp``
(MCP's streamable HTTP) is not in the OpenAPI document, so it is not fuzzed.
Calls that would delete or deactivate the fuzzer's own tenant, user or key are
sent for an object nobody has instead (``spare_identity``). One 5xx is an
answer, not a finding: 504 ``GATEWAY_TIMEOUT`` to a call that chose its own
``timeout_seconds`` and whose run outlived it (``callers_deadline``; README).

``WEFT_FUZZ_SEED`` replays a run (its seed is printed); ``WEFT_FUZZ_PATHS`` (a
regular expression) fuzzes only the operations whose path it matches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies._internal.random  # noqa: F401 (see WORKERS)
import pytest
import schemathesis
from schemathesis.engine import Status, events
from schemathesis.engine import from_schema as engine_for
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER, HookContext
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import ApiKey
from engine.identity.hashing import hash_api_key
from engine.platform.settings import Settings
from tests.conftest import TenantFixture, worker_stack
from tests.fake_providers import serve_app
from tests.models_support import tenant_admin_key
from tests.pipelines.support import SQLITE_ONLY

pytestmark = [pytest.mark.faults, pytest.mark.asyncio, SQLITE_ONLY]

CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "use_after_free",
)
# Per operation, in the fuzzing phase. With the coverage phase's cases (a few
# dozen per operation) the run takes about three and a half minutes on two idle
# cores (3,800 coverage, 1,500 fuzzing and 100 stateful requests); on a busy
# machine much longer, hence the test's own timeout.
EXAMPLES = 8
RUN_TIMEOUT = 900
STATEFUL_STEPS = 12
# A stream that has sent this many events has shown what its events look like.
STREAM_EVENTS = 3
REQUEST_SECONDS = 30
# Operations fuzzed at once: while one waits for the server, the next is generated.
# (Hypothesis imports a module lazily that two threads may then import at once and
# see half made; it is imported above, before any thread starts.)
WORKERS = 2
MUTATING = ("DELETE", "PUT", "PATCH", "POST")
ONLY = os.environ.get("WEFT_FUZZ_PATHS")
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]


@dataclass(frozen=True)
class Identity:
    """Who fuzzes: a tenant administrator's key, and the ids a mutating call must
    never reach (deactivating or deleting them would end the run, not test it)."""

    key: str
    protected: frozenset[str]


@dataclass
class Report:
    seed: int
    failures: list[str] = field(default_factory=list)
    operations: set[str] = field(default_factory=set)  # each one fuzzed
    requests: Counter[str] = field(default_factory=Counter)  # by phase
    phases: dict[str, float] = field(default_factory=dict)  # seconds
    seconds: float = 0.0
    tool_errors: list[str] = field(default_factory=list)  # the fuzzer's own, not the API's


# CPython 3.11 (before 3.11.8) sometimes raises "SystemError: AST constructor
# recursion depth mismatch" when code is compiled in a thread (gh-106905). It is
# raised inside schemathesis (running in this process's thread), not by the API:
# a server error would be a 500 and a check failure, not this.
PYTHON_AST_BUG = "AST constructor recursion depth mismatch"


async def fuzzer(settings: Settings, tenant: TenantFixture) -> Identity:
    """A tenant administrator's key (the ``admin`` scope), and the ids it must keep."""
    key = await tenant_admin_key(settings, tenant.tenant_id)
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            found = select(ApiKey).where(ApiKey.key_hash == hash_api_key(key))
            record = (await session.execute(found)).scalar_one()
    finally:
        await engine.dispose()
    return Identity(key, frozenset({tenant.tenant_id, record.user_id, record.id}))


def spare_identity(identity: Identity, spared: list[str]) -> Any:
    """A ``before_call`` hook: a mutating call whose path names the fuzzer's own
    tenant, user or key (the stateful phase takes ids from earlier answers) is
    sent for an object nobody has instead; the route is still exercised."""

    def before_call(context: HookContext, case: Any, kwargs: dict[str, Any]) -> None:
        if case.method.upper() not in MUTATING or not case.path_parameters:
            return
        for name, value in case.path_parameters.items():
            if value in identity.protected:
                case.path_parameters[name] = f"nobody_{uuid.uuid4().hex[:12]}"
                spared.append(f"{case.method.upper()} {case.path}")

    return before_call


def configure(base_url: str, identity: Identity, seed: int) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": seed,
            "base-url": base_url,
            "headers": {"X-API-Key": identity.key},
            "request-timeout": REQUEST_SECONDS,
            "workers": WORKERS,
            "max-stream-events": STREAM_EVENTS,
            "generation": {"max-examples": EXAMPLES, "mode": "all"},
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
                # A body over the size limit is refused too (413), not only invalid data.
                "negative_data_rejection": {"expected-statuses": REJECTED},
            },
            "phases": {
                # Coverage: the invalid value at each edge, each of which must be
                # refused. Valid data comes from fuzzing; the valid edges
                # (200,000-character prompts, 256 texts to embed) would double the
                # run for little. Wrong methods have their own tests (tests/api).
                "coverage": {"unexpected-methods": [], "generation": {"mode": "negative"}},
                "stateful": {"max-steps": STATEFUL_STEPS},
            },
            "operations": [
                {"include-path": "/a2a", "checks": {"negative_data_rejection": {"enabled": False}}}
            ],
        }
    )


SECRET_HEADERS = {"authorization", "x-api-key", "cookie"}


def server_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the API logged for each request it answered 500 (its request id and traceback)."""
    formatter = logging.Formatter()
    return [
        f"{getattr(record, 'request_id', '?')}:\n{formatter.formatException(record.exc_info)}"
        for record in caplog.records
        if record.getMessage() == "unhandled error" and record.exc_info
    ]


def describe_failure(recorder: Any, case_id: str, name: str, failure: Any) -> str:
    interaction = recorder.interactions.get(case_id)
    request, response = (interaction.request, interaction.response) if interaction else (None, None)
    sent = (request.body or b"")[:2000] if request else b""
    headers = {
        key: value
        for key, value in (request.headers if request else {}).items()
        if key.lower() not in SECRET_HEADERS
    }
    answered = (response.content or b"")[:300] if response else b""
    return (
        f"[{name}] {recorder.label}: {request.method if request else '?'} "
        f"{request.uri if request else '?'} -> {response.status_code if response else None}\n"
        f"    {failure.title}: {failure.message[:600]}\n"
        f"    headers {headers!r}\n    sent {sent!r}\n    answered {answered!r}"
    )


def callers_deadline(recorder: Any, case_id: str, name: str) -> bool:
    """A 504 ``GATEWAY_TIMEOUT`` to a call that set its own ``timeout_seconds``
    (the system check with 0.002 s, say): the documented answer when a run outlives
    the limit its caller chose, not a server error."""
    interaction = recorder.interactions.get(case_id)
    if name != "not_a_server_error" or interaction is None or interaction.response is None:
        return False
    response, request = interaction.response, interaction.request
    if response.status_code != 504 or b"timeout_seconds" not in (request.body or b""):
        return False
    try:
        body = json.loads(response.content or b"")
    except ValueError:
        return False
    return isinstance(body, dict) and (body.get("error") or {}).get("code") == "GATEWAY_TIMEOUT"


def fuzz(spec: dict[str, Any], base_url: str, identity: Identity, seed: int) -> Report:
    """The whole schemathesis run (blocking: the caller runs it in a thread)."""
    report = Report(seed)
    if ONLY:  # (schemathesis' include() is lost beside an ``operations`` config)
        spec = {**spec, "paths": {p: o for p, o in spec["paths"].items() if re.search(ONLY, p)}}
    schema = schemathesis.openapi.from_dict(spec, config=configure(base_url, identity, seed))
    began = time.monotonic()
    started: dict[str, float] = {}
    for event in engine_for(schema).execute():
        if isinstance(event, events.PhaseStarted):
            started[event.phase.name.value] = time.monotonic()
        elif isinstance(event, events.PhaseFinished) and event.phase.name.value in started:
            phase = event.phase.name.value
            report.phases[phase] = time.monotonic() - started[phase]
        elif isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            report.requests[event.phase.value] += len(recorder.interactions)
            if event.phase.value == "fuzzing" and event.status != Status.SKIP:
                report.operations.add(recorder.label)
            report.failures.extend(
                describe_failure(recorder, case_id, check.name, check.failure_info.failure)
                for case_id, checks in recorder.checks.items()
                for check in checks
                if check.status == Status.FAILURE
                and check.failure_info is not None
                and not callers_deadline(recorder, case_id, check.name)
            )
        elif isinstance(event, events.NonFatalError):
            message = f"[error] {event.label}: {event.info.message[:1000]}"
            if PYTHON_AST_BUG in message:  # the fuzzer's fault, not the API's: told, not failed
                report.tool_errors.append(message)
            else:
                report.failures.append(message)
        elif isinstance(event, events.FatalError):
            report.failures.append(f"[fatal] {event.exception!r}")
    report.seconds = time.monotonic() - began
    return report


def operation_labels(spec: dict[str, Any]) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("get", "put", "post", "delete", "patch", "head", "options")
        and (not ONLY or re.search(ONLY, path))
    }


@pytest.mark.timeout(RUN_TIMEOUT)
async def test_fuzzing_every_operation_finds_nothing(
    settings: Settings, temporal_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    seed = int(os.environ.get("WEFT_FUZZ_SEED") or random.getrandbits(64))
    async with worker_stack(settings, temporal_env, "fuzz") as stack:
        identity = await fuzzer(stack.settings, stack.tenant)
        app = create_app(stack.settings)
        spec = app.openapi()
        spared: list[str] = []
        hook = spare_identity(identity, spared)
        GLOBAL_HOOK_DISPATCHER.hook("before_call")(hook)
        try:
            async with serve_app(app, lifespan="on") as url:
                report = await asyncio.to_thread(fuzz, spec, url, identity, seed)
        finally:
            GLOBAL_HOOK_DISPATCHER.unregister(hook)
    print(
        f"\nfuzzed {len(report.operations)} operations in {report.seconds:.0f} s; "
        f"requests by phase {dict(report.requests)}; seconds by phase "
        f"{ {name: round(took) for name, took in report.phases.items()} }; "
        f"{len(spared)} calls on the fuzzer's own tenant, user or key spared; "
        f"seed {seed} (WEFT_FUZZ_SEED replays it)"
        + "".join(f"\nfuzzer error, not the API's: {error}" for error in report.tool_errors)
    )
    assert not report.failures, (
        f"{len(report.failures)} findings (seed {seed}):\n"
        + "\n".join(report.failures)
        + "".join(f"\nthe API's traceback for {trace}" for trace in server_tracebacks(caplog))
    )
    assert report.operations == operation_labels(spec)  # every one was fuzzed
