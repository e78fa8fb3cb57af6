"""Structured logs: JSON lines carry the request, tenant, run and activity they are about.

The records are real ones (a real request through the real app, a real activity
on a real worker); a handler with the project's filter and formatter turns them
into lines at the moment they are logged, as the process's own handler would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from api.app import create_app
from engine.platform import logs
from engine.platform.queues import ACTIVITY_QUEUES
from engine.platform.settings import Settings
from engine.platform.system_check import run_system_check
from tests.conftest import api_client, free_port, make_settings, make_tenant
from tests.pipelines.support import SQLITE_ONLY


class Lines(logging.Handler):
    """Formats every record as the process's handler does, when it is logged."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(logs.ContextFilter())
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def json(self, logger: str) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.lines]
        return [line for line in parsed if line["logger"] == logger]


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    handler = Lines(logs.json_formatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_log_format_setting_defaults_to_text(tmp_path: Path) -> None:
    assert make_settings(tmp_path).log_format == "text"
    assert make_settings(tmp_path, log_format="json").log_format == "json"


def test_configure_logging_writes_json_lines(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure_logging(make_settings(tmp_path, log_format="json"))
        token = logs.bind_request("req_cfg")
        logging.getLogger("uvicorn.access").info("GET /x 200")
        logs.unbind_request(token)
        logging.getLogger("weft.test").warning("outside a request")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = [json.loads(line) for line in capfd.readouterr().err.splitlines()[-2:]]
    assert list(first)[:4] == ["timestamp", "level", "logger", "message"]
    assert first["logger"] == "uvicorn.access" and first["request_id"] == "req_cfg"
    assert second["request_id"] is None and second["level"] == "WARNING"
    assert {"tenant_id", "workflow_id", "activity"} <= second.keys()


@SQLITE_ONLY
async def test_lines_of_a_real_request_carry_request_id_and_tenant_id(
    settings: Settings, json_lines: Lines
) -> None:
    # A provider that does not answer: listing models logs one INFO line per request.
    dead = {"kind": "ollama", "base_url": f"http://127.0.0.1:{free_port()}"}
    configured = settings.model_copy(
        update={"providers": {"gone": dead}, "rate_limits_enabled": False}
    )
    tenant = await make_tenant(configured, "logs")
    async with api_client(create_app(configured)) as http:
        response = await http.get(
            "/api/v1/models",
            headers={"X-API-Key": tenant.key, "X-Request-ID": "req-logging-1"},
        )
    assert response.status_code == 200, response.text
    lines = json_lines.json("weft.models")
    assert lines, json_lines.lines
    line = lines[0]
    assert "did not list its models" in line["message"]
    assert line["request_id"] == "req-logging-1" == response.headers["x-request-id"]
    assert line["tenant_id"] == tenant.tenant_id
    assert line["level"] == "INFO" and line["timestamp"]
    # After the request, nothing is bound any more.
    logging.getLogger("weft.models").info("after")
    assert json_lines.json("weft.models")[-1]["request_id"] is None


async def test_an_activity_line_on_a_real_worker_carries_workflow_id(
    running_worker: Client, tmp_path: Path, json_lines: Lines
) -> None:
    result = await run_system_check(
        running_worker,
        make_settings(tmp_path),
        list(ACTIVITY_QUEUES),
        within=timedelta(seconds=30),
        tenant_id="ten_logs",
        started_by="usr_logs",
    )
    lines = [
        line
        for line in json_lines.json("temporalio.activity")
        if line["workflow_id"] == result["workflow_id"]
    ]
    assert len(lines) == len(ACTIVITY_QUEUES), json_lines.lines
    assert {line["activity"] for line in lines} == {"ping_queue"}
    assert all(line["message"].startswith("ping answered on ") for line in lines)
    assert all(line["temporal_activity"]["workflow_id"] == result["workflow_id"] for line in lines)


async def test_a_plain_logger_inside_an_activity_gets_the_run_from_activity_info(
    json_lines: Lines,
) -> None:
    def work() -> None:
        logging.getLogger("weft.worker").info("inside")

    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id="run-plain-1")
    env.run(work)
    (line,) = json_lines.json("weft.worker")
    assert line["workflow_id"] == "run-plain-1"
    assert line["activity"] == env.info.activity_type
