"""The soak's figures: options, samples, the report and how it prints
(bench/soak.py runs the load; tests/faults/test_soak.py asserts on the report)."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.documents import pct
from bench.proc_stats import ProcessSample, slope

WATCHED = ("api", "worker")
# Log lines of our processes that report a failure (a retried one too).
LOG_MARKERS = (" ERROR ", " CRITICAL ", "Traceback", "Completing activity as failed")
# The Temporal dev server's own errors (store operations it retries itself).
TEMPORAL_MARKERS = ("level=ERROR", '"level":"error"')


@dataclass(frozen=True)
class SoakOptions:
    seconds: float = 600.0
    rate: float = 3.0  # arrivals per second, whatever the answers' speed
    sample_seconds: float = 5.0
    warmup_seconds: float = 60.0  # samples before this are left out of slopes
    database_url: str | None = None  # None: SQLite in the work directory
    poll_seconds: float = 2.0  # how often unfinished uploads and runs are looked at
    drain_seconds: float = 300.0  # how long the end waits for them
    seed: int = 14


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the load began
    processes: dict[str, ProcessSample]


@dataclass
class SoakReport:
    options: SoakOptions
    database: str
    requests: Counter[str] = field(default_factory=Counter)
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    finish_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    started: Counter[str] = field(default_factory=Counter)  # uploads and runs
    succeeded: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0
    hooks_expected: int = 0
    hooks_received: int = 0
    hooks_repeated: int = 0
    max_in_flight: int = 0
    samples: list[Sample] = field(default_factory=list)
    settled: Sample | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)
    server_5xx: int = 0
    temporal_log_errors: list[str] = field(default_factory=list)
    load_seconds: float = 0.0

    @property
    def all_finished(self) -> bool:
        return self.unfinished == 0 and self.hooks_received >= self.hooks_expected

    def warm(self) -> list[Sample]:
        """Samples after the warm-up (all of them if the run was shorter)."""
        warm = [s for s in self.samples if s.at >= self.options.warmup_seconds]
        return warm if len(warm) >= 2 else self.samples

    def rss_slope_mb_per_min(self, name: str) -> float:
        return slope([(s.at / 60, s.processes[name].rss_mb) for s in self.warm()])

    def fd_slope_per_min(self, name: str) -> float:
        return slope([(s.at / 60, s.processes[name].fds) for s in self.warm()])

    def fd_growth(self, name: str) -> int:
        """Descriptors held once the load is over and drained, minus those held
        when the warm-up ended (under load)."""
        end = self.settled or self.samples[-1]
        return end.processes[name].fds - self.warm()[0].processes[name].fds


def log_problems(log: Path, offset: int) -> tuple[list[str], list[str]]:
    """Lines the stack logged past ``offset`` that report a failure: ours (errors,
    tracebacks, activity attempts that failed and were retried), and the
    Temporal server's."""
    with log.open("rb") as file:
        file.seek(offset)
        lines = file.read().decode(errors="replace").splitlines()
    ours = [line.strip() for line in lines if any(m in line for m in LOG_MARKERS)]
    temporal = [line.strip() for line in lines if any(m in line for m in TEMPORAL_MARKERS)]
    return ours, temporal


def format_report(report: SoakReport) -> str:
    o = report.options
    warm = report.warm()
    lines = [
        f"soak: {report.load_seconds / 60:.1f} min of open-loop load at {o.rate:g} arrivals/s "
        f"on {report.database}, {os.cpu_count()} cores; slopes after a "
        f"{o.warmup_seconds / 60:g}-min warm-up ({len(warm)} samples, every {o.sample_seconds:g} s)",
        "requests   " + "  ".join(f"{k} {report.requests[k]}" for k in sorted(report.requests)),
        f"errors     {len(report.errors)} (API's own 5xx count {report.server_5xx}; the "
        f"Temporal server logged {len(report.temporal_log_errors)} errors of its own)",
    ]
    lines += [f"  {e}" for e in report.errors[:10]]
    lines += [f"  temporal: {e[:200]}" for e in report.temporal_log_errors[:3]]
    lines.append("latency    " + "  ".join(
        f"{k} p50 {pct(v, 50):.0f} p95 {pct(v, 95):.0f} ms"
        for k, v in sorted(report.latency_ms.items()) if k != "setup"
    ))  # fmt: skip
    lines.append("finish     " + "  ".join(
        f"{k} p50 {pct(v, 50):.2f} p95 {pct(v, 95):.2f} s" for k, v in sorted(report.finish_s.items())
    ))  # fmt: skip
    lines.append(
        f"finished   {'all' if report.all_finished else 'NOT all'}: "
        + "  ".join(f"{k} {report.succeeded[k]}/{n}" for k, n in sorted(report.started.items()))
        + f"  unfinished {report.unfinished}; webhooks {report.hooks_received}/"
        f"{report.hooks_expected} (repeated {report.hooks_repeated}); "
        f"max in flight {report.max_in_flight}"
    )
    lines.append("resources  (start and end: first and last sample after the warm-up; "
                 "settled: after the drain, load stopped)")  # fmt: skip
    for name in WATCHED:
        rss = [s.processes[name].rss_mb for s in warm]
        fds = [s.processes[name].fds for s in warm]
        db = [s.processes[name].db_connections for s in warm]
        settled = report.settled or report.samples[-1]
        after = settled.processes[name]
        lines += [
            f"  {name:<6} RSS MB   start {rss[0]:6.0f}  end {rss[-1]:6.0f}  "
            f"peak {max(s.processes[name].peak_rss_mb for s in report.samples):6.0f}  "
            f"slope {report.rss_slope_mb_per_min(name):+6.2f} MB/min",
            f"  {name:<6} fds      start {fds[0]:6d}  end {fds[-1]:6d}  peak {max(fds):6d}  "
            f"slope {report.fd_slope_per_min(name):+6.2f} /min  settled {after.fds} "
            f"({report.fd_growth(name):+d})",
            f"  {name:<6} db conns start {db[0]:6d}  end {db[-1]:6d}  peak {max(db):6d}  "
            f"settled {after.db_connections}",
        ]
    for name in WATCHED:
        by_minute = [
            f"{s.processes[name].rss_mb:.0f}"
            for i, s in enumerate(report.samples)
            if i == 0 or int(s.at // 60) > int(report.samples[i - 1].at // 60)
        ]
        lines.append(f"  {name:<6} RSS MB at each minute: {' '.join(by_minute)}")
    lines.append("CPU        " + "  ".join(f"{k} {v:.0f} s" for k, v in report.cpu_s.items()))
    return "\n".join(lines)
