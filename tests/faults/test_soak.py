"""Soak, short: bench/soak.py's mixed open-loop load (uploads, RAG, plain and
streamed chat, pipeline runs with an ``api_call`` step, webhooks) for a minute
against real processes (Temporal dev server, ``weft worker``, ``weft api``) on
PostgreSQL. Nothing may fail, every upload, run and webhook delivery must
arrive, and neither the API nor the worker may hold more descriptors once the
load is over than when the warm-up ended (give or take a generous margin). The
RSS slopes are printed: a minute of them is too noisy to assert."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import MIX, soak
from bench.soak_report import WATCHED, SoakOptions, format_report

pytestmark = [pytest.mark.faults, pytest.mark.asyncio, pytest.mark.timeout(900)]

# Descriptors a process may hold past the warm-up's count: keep-alive and pool
# connections opened by a burst come and go; a leak grows with every request.
FD_MARGIN = 30


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_minute_of_mixed_load_has_no_errors_and_leaks_no_descriptors(
    database_url: str, tmp_path: Path
) -> None:
    options = SoakOptions(
        seconds=60,
        rate=2.0,
        sample_seconds=3,
        warmup_seconds=15,
        database_url=database_url,
        drain_seconds=180,
    )
    report = await soak(options, tmp_path)
    print(format_report(report))

    assert report.errors == [], report.errors
    assert report.all_finished, (report.unfinished, report.hooks_received, report.hooks_expected)
    # The mix really ran: every kind was sent, and uploads and runs completed.
    assert set(MIX) <= set(report.requests), report.requests
    assert report.succeeded["upload"] > 0 and report.succeeded["run"] > 0, report.succeeded
    assert report.hooks_expected > 0
    for name in WATCHED:
        assert report.fd_growth(name) <= FD_MARGIN, (name, format_report(report))
