"""Process logging: plain text or one JSON object a line, with who and what a line is about.

Every record passes ``ContextFilter``, which puts four attributes on it:

- ``request_id``: the API request being served (``EdgeMiddleware`` binds it);
- ``tenant_id``: that request's tenant, once its credential is verified;
- ``workflow_id`` and ``activity``: the Temporal run and activity type a worker
  line belongs to, read from the SDK's own logger extras
  (``temporalio.activity.logger``, ``temporalio.workflow.logger``) or, for a
  plain logger, from ``activity.info()`` / ``workflow.info()``.

Absent values are ``None`` (``null`` in JSON), so every line has the same keys.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from temporalio import activity, workflow

from engine.platform.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("request_id", "tenant_id", "workflow_id", "activity")
# Record attributes a JSON line leaves out: uvicorn's coloured copy of the message,
# and the SDK's whole info object (its useful parts are the fields above).
_NOISE = ("color_message", "activity_info", "workflow_info")


@dataclass
class RequestLog:
    """What the lines of one API request share; the tenant is filled in after auth."""

    request_id: str
    tenant_id: str | None = None


_request: ContextVar[RequestLog | None] = ContextVar("weft_request_log", default=None)


def bind_request(request_id: str) -> Token[RequestLog | None]:
    """Lines logged from here on (in this task and tasks it starts) carry ``request_id``."""
    return _request.set(RequestLog(request_id))


def unbind_request(token: Token[RequestLog | None]) -> None:
    _request.reset(token)


def bind_tenant(tenant_id: str | None) -> None:
    """The current request's tenant, once known (shared with every copy of the context)."""
    current = _request.get()
    if current is not None:
        current.tenant_id = tenant_id


def current_request() -> RequestLog | None:
    return _request.get()


def _temporal_details(record: logging.LogRecord) -> Mapping[str, Any] | None:
    for extra in ("temporal_activity", "temporal_workflow"):
        details = getattr(record, extra, None)
        if isinstance(details, Mapping):
            return details
    if activity.in_activity():
        info = activity.info()
        return {"workflow_id": info.workflow_id, "activity_type": info.activity_type}
    if workflow.in_workflow():
        return {"workflow_id": workflow.info().workflow_id}
    return None


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``tenant_id``, ``workflow_id`` and ``activity`` to a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = _request.get()
        if getattr(record, "request_id", None) is None:
            record.request_id = request.request_id if request else None
        if getattr(record, "tenant_id", None) is None:
            record.tenant_id = request.tenant_id if request else None
        details = _temporal_details(record) or {}
        if getattr(record, "workflow_id", None) is None:
            record.workflow_id = details.get("workflow_id")
        if getattr(record, "activity", None) is None:
            record.activity = details.get("activity_type")
        return True


class _JsonLines(JsonFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": log_data.pop("timestamp", None), **log_data}  # first, for eyes


def json_formatter() -> logging.Formatter:
    """One JSON object a line: timestamp (UTC, ISO 8601), level, logger, message,
    the context fields, and whatever extras the call passed."""
    return _JsonLines(
        ["levelname", "name", "message", *CONTEXT_FIELDS],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
        reserved_attrs=[*RESERVED_ATTRS, *_NOISE],
    )


def configure_logging(settings: Settings) -> None:
    """Route every logger (uvicorn's and the SDK's included) to one stderr handler
    in ``settings.log_format``."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        json_formatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # In JSON the run and activity are fields; the SDK's loggers need not repeat
    # them as a dict at the end of every message.
    json_lines = settings.log_format == "json"
    activity.logger.activity_info_on_message = not json_lines
    workflow.logger.workflow_info_on_message = not json_lines
    # uvicorn configures nothing when given no log_config; its lines reach the root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        # A uvicorn started earlier in this process (its own log config) may have
        # raised their levels or disabled them: ours decide now.
        logger.setLevel(logging.NOTSET)
        logger.disabled = False
