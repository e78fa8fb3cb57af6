"""What a process holds, read from /proc (Linux): resident memory, open file
descriptors, and its database connections; plus the least-squares slope the
soak reports. Shared by the benchmarks that watch a stack for leaks."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

_ESTABLISHED = "01"


@dataclass(frozen=True)
class ProcessSample:
    rss_mb: float
    peak_rss_mb: float  # VmHWM: the highest RSS the process has had
    fds: int
    db_connections: int


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def fd_targets(pid: int) -> list[str]:
    """What each open descriptor points at (``socket:[inode]``, a path, ...)."""
    targets = []
    for entry in os.scandir(f"/proc/{pid}/fd"):
        # A descriptor closed between listing and reading is simply gone.
        with contextlib.suppress(FileNotFoundError):
            targets.append(os.readlink(entry.path))
    return targets


def _socket_inodes_to_port(pid: int, port: int) -> set[str]:
    """Inodes of established TCP connections (in ``pid``'s network namespace) to ``port``."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == _ESTABLISHED and int(remote.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def sample(pid: int, *, postgres_port: int | None, sqlite_path: Path | None) -> ProcessSample:
    """One look at ``pid``. Its database connections are its TCP connections to
    PostgreSQL's port, or its descriptors open on the SQLite file (one a connection)."""
    targets = fd_targets(pid)
    connections = 0
    if postgres_port is not None:
        inodes = _socket_inodes_to_port(pid, postgres_port)
        connections = sum(1 for t in targets if t.startswith("socket:[") and t[8:-1] in inodes)
    elif sqlite_path is not None:
        connections = sum(1 for t in targets if t == str(sqlite_path))
    return ProcessSample(
        rss_mb=_status_kb(pid, "VmRSS") / 1024,
        peak_rss_mb=_status_kb(pid, "VmHWM") / 1024,
        fds=len(targets),
        db_connections=connections,
    )


def cpu_seconds(pid: int) -> float:
    """CPU time ``pid`` has used so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points; 0 with fewer than two distinct x."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
