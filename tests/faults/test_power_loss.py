"""Power loss: the whole `weft dev` tree is SIGKILLed while documents are being
processed, pipeline runs wait on an HTTP call and webhooks are being delivered.
Started again on the same data directory, every run finishes and nothing
happened twice: no duplicate chunks, vectors, ledger rows, events, e-mails, and
each side effect the receiver saw carries a key that makes a repeat harmless."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from engine.db.connection import create_engine, create_sessionmaker
from engine.db.tables import Chunk, ChunkVector, EmailMessage, Event, UsageRecord
from engine.platform.settings import Settings
from tests.faults.support import (
    Counting,
    Dev,
    counting_receiver,
    dev_environment,
    first_admin,
    start_dev,
    wait_healthy,
)

pytestmark = [pytest.mark.faults, pytest.mark.asyncio]

DOCUMENTS = 10
RUNS = 3
FINISHED = ("completed", "failed", "cancelled", "timed_out")


def pipeline(receiver: Counting) -> dict[str, Any]:
    return {
        "name": "power-loss",
        "steps": [
            {"id": "call", "type": "api_call",
             "config": {"url": f"{receiver.url}/call", "method": "POST",
                        "body": {"n": "{{n}}"}}},
            {"id": "mail", "type": "email", "dependencies": ["call"],
             "config": {"to": "ops@example.com", "subject": "run {{n}} done"}},
        ],
    }  # fmt: skip


async def wait_finished(http: httpx.AsyncClient, docs: list[str], runs: list[str]) -> None:
    deadline = time.monotonic() + 240
    pending_docs, pending_runs = set(docs), set(runs)
    while (pending_docs or pending_runs) and time.monotonic() < deadline:
        for execution_id in list(pending_docs):
            body = (await http.get(f"/api/v1/mcp/workflow/{execution_id}")).json()
            if body["data"]["status"] != "running":
                assert body["data"]["status"] == "completed", body
                pending_docs.discard(execution_id)
        for execution_id in list(pending_runs):
            body = (await http.get(f"/api/executions/{execution_id}")).json()
            if body["status"] in FINISHED:
                assert body["status"] == "completed", body
                pending_runs.discard(execution_id)
        await asyncio.sleep(0.5)
    assert not pending_docs and not pending_runs, (pending_docs, pending_runs)


async def test_power_cut_mid_run_every_run_finishes_once(tmp_path: Path) -> None:
    async with counting_receiver() as receiver:
        receiver.held = True  # the api_call steps are in flight when the power goes
        env = dev_environment(
            WEFT_TENANT_EGRESS_ALLOWED_HOSTS=f"127.0.0.1:{receiver.port}",
            WEFT_WEBHOOK_RETRY_SCHEDULE_SECONDS="0,1,2,3,5,8,13,20,30,40",
            WEFT_EVENT_POLL_SECONDS="1",
        )
        runs: list[Dev] = []
        try:
            first = start_dev(tmp_path, env, "first")
            runs.append(first)
            await wait_healthy(first)
            _, _, key = first_admin(tmp_path / ".weft")
            headers = {"X-API-Key": key}
            async with httpx.AsyncClient(base_url=first.api, headers=headers, timeout=60) as http:
                hook = await http.post(
                    "/api/v1/webhooks",
                    json={"url": f"{receiver.url}/hook", "secret": "power-loss-secret",
                          "events": ["file.processed", "workflow.completed"]},
                )  # fmt: skip
                assert hook.status_code == 201, hook.text
                created = await http.post("/api/workflows", json=pipeline(receiver))
                assert created.status_code == 201, created.text
                docs = []
                for i in range(DOCUMENTS):
                    text = f"Document {i}. " + " ".join(
                        f"Line {j} of document {i} is about subject {j % 7}." for j in range(60)
                    )
                    uploaded = await http.post(
                        "/api/v1/mcp/upload",
                        files={"file": (f"doc{i}.txt", text.encode(), "text/plain")},
                    )
                    assert uploaded.status_code == 201, uploaded.text
                    docs.append(uploaded.json()["data"]["execution_id"])
                executions = []
                for n in range(RUNS):
                    started = await http.post(
                        f"/api/workflows/{created.json()['id']}/execute",
                        json={"input_data": {"n": n}},
                    )
                    assert started.status_code == 202, started.text
                    executions.append(started.json()["execution_id"])
                await receiver.until(lambda r: r.calls_arrived >= RUNS)

            first.power_cut()  # every process of the tree, SIGKILL, at once
            receiver.release.set()

            second = start_dev(tmp_path, env, "second")
            runs.append(second)
            await wait_healthy(second)
            async with httpx.AsyncClient(base_url=second.api, headers=headers, timeout=60) as http:
                await wait_finished(http, docs, executions)
                # Webhooks for every finished run: wait until each event arrived.
                expected = 2 * DOCUMENTS + RUNS  # documents: processed and completed
                await receiver.until(
                    lambda r: len({e["id"] for _, e in r.webhook_arrivals}) >= expected
                )
            second.stop()
        finally:
            for dev in runs:
                dev.stop()

    log = "\n".join(dev.output()[-3000:] for dev in runs)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / '.weft' / 'weft.db'}",
        data_dir=tmp_path / ".weft",
    )
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            chunks = (await session.execute(select(Chunk.file_id, Chunk.chunk_index))).all()
            vectors = (await session.execute(select(ChunkVector.chunk_id, ChunkVector.model))).all()
            mails = (await session.execute(select(EmailMessage.execution_id))).all()
            events = (await session.execute(select(Event.id, Event.type, Event.subject))).all()
            usage = (
                await session.execute(
                    select(UsageRecord.workflow_id, UsageRecord.dedupe_key).where(
                        UsageRecord.workflow_id.is_not(None)
                    )
                )
            ).all()
            chunk_ids = await session.scalar(select(func.count()).select_from(Chunk))
    finally:
        await engine.dispose()

    # Chunks and vectors: one row per (file, index), one vector per chunk and model.
    assert chunks and len(chunks) == len(set(chunks)), log
    assert len({file_id for file_id, _ in chunks}) == DOCUMENTS
    assert len(vectors) == len(set(vectors)) == chunk_ids
    # E-mails: one per execution.
    assert sorted(m for (m,) in mails) == sorted(executions)
    # Events: one file.processed per file, one workflow.completed per run.
    per_type: dict[str, Counter[str | None]] = defaultdict(Counter)
    subscribed = set()
    for event_id, event_type, subject in events:
        per_type[event_type][subject] += 1
        if event_type in ("file.processed", "workflow.completed"):
            subscribed.add(event_id)
    assert len(per_type["file.processed"]) == DOCUMENTS
    assert set(per_type["file.processed"].values()) == {1}
    assert set(per_type["workflow.completed"]) >= set(executions)
    assert set(per_type["workflow.completed"].values()) == {1}
    # The ledger: every row a workflow wrote carries its idempotency key.
    assert all(dedupe for _, dedupe in usage), usage
    # Webhooks: each event under one webhook-id; a delivery cut off by the power
    # may arrive again, but under the same webhook-id (the receiver drops it).
    ids_per_event: dict[str, set[str]] = defaultdict(set)
    events_per_id: dict[str, set[str]] = defaultdict(set)
    for webhook_id, arrival_event in receiver.webhook_arrivals:
        ids_per_event[arrival_event["id"]].add(webhook_id)
        events_per_id[webhook_id].add(arrival_event["id"])
    assert set(ids_per_event) == subscribed  # every event delivered
    assert all(len(ids) == 1 for ids in ids_per_event.values()), ids_per_event
    assert all(len(evs) == 1 for evs in events_per_id.values()), events_per_id
    # api_call: each execution's call under its own key; the call in flight at the
    # cut is delivered again after the restart with that same key.
    assert set(receiver.call_keys) == {f"{e}:call" for e in executions}, receiver.call_keys
    assert all(1 <= n <= 2 for n in receiver.call_keys.values()), receiver.call_keys
