"""What the system operations show: this deployment, its settings (secrets
redacted) and the machine's load (sutazai ``/api/v1/system/*``, ``/metrics``)."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from engine import __version__
from engine.platform.queues import ALL_QUEUES, queue_name
from engine.platform.settings import Settings

REDACTED = "***"
# Keys whose values are secrets wherever they appear (provider configs included).
_SECRET_WORDS = ("secret", "password", "token", "api_key", "apikey", "access_key", "key_id")
_URL_FIELDS = ("database_url", "redis_url", "qdrant_url", "s3_endpoint_url")


def system_info(settings: Settings) -> dict[str, Any]:
    """The deployment: version, runtime, where Temporal is and which queues it serves."""
    url = make_url(settings.resolved_database_url)
    return {
        "name": "Weftworks",
        "version": __version__,
        "environment": settings.env.value,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "pid": os.getpid(),
        "cpu_count": os.cpu_count() or 1,
        "database": url.get_backend_name(),
        "redis": settings.redis_url is not None,
        "vector_index": settings.vector_index,
        "blob_store": settings.blob_store,
        "temporal": {
            "address": settings.temporal_target,
            "namespace": settings.temporal_namespace,
            "ui_url": settings.resolved_temporal_ui_url,
            "task_queues": [queue_name(q, settings.task_queue_prefix) for q in ALL_QUEUES],
        },
    }


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _redact(value: Any, name: str = "") -> Any:
    if isinstance(value, dict):
        return {key: _redact(item, str(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, name) for item in value]
    if isinstance(value, str) and value and _is_secret(name):
        return REDACTED
    return value


def public_config(settings: Settings) -> dict[str, Any]:
    """Every setting by its field name; secrets shown as ``***`` (when set), and
    passwords inside URLs hidden."""
    secret_fields = {name for name, info in Settings.model_fields.items() if info.repr is False} | {
        "admin_api_keys"
    }
    out: dict[str, Any] = {}
    for name, value in settings.model_dump(mode="json").items():
        if name in secret_fields:
            out[name] = REDACTED if value else value
        elif name in _URL_FIELDS and value:
            try:
                out[name] = make_url(value).render_as_string(hide_password=True)
            except Exception:  # not a SQLAlchemy-style URL (http://…): no password in it
                out[name] = value
        else:
            out[name] = _redact(value, name)
    return out


def system_resources(data_dir: Path) -> dict[str, float | None]:
    """sutazai's ``system_resources``: load per core as ``cpu_percent`` (1-minute
    load average), memory in use, and the data directory's disk usage."""
    cores = os.cpu_count() or 1
    try:
        cpu: float | None = round(min(os.getloadavg()[0] / cores, 1.0) * 100, 1)
    except OSError:
        cpu = None
    return {
        "cpu_percent": cpu,
        "memory_percent": _memory_percent(),
        "disk_usage_percent": _disk_percent(data_dir),
    }


def _memory_percent() -> float | None:
    if not sys.platform.startswith("linux"):
        return None
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    total, available = values.get("MemTotal"), values.get("MemAvailable")
    if not total or available is None:
        return None
    return round((1 - available / total) * 100, 1)


def _disk_percent(path: Path) -> float | None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError:
        return None
    return round(usage.used / usage.total * 100, 1) if usage.total else None
