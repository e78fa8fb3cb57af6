"""Optional tracing: on only with the setting, and only where opentelemetry-sdk is installed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.platform import telemetry
from tests.conftest import make_settings


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    assert telemetry.client_interceptors(make_settings(tmp_path)) == []
    assert telemetry.worker_runtime(make_settings(tmp_path)) is None


def test_tracing_without_the_sdk_says_so_and_stays_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, otel_tracing=True)
    with caplog.at_level(logging.WARNING, logger="weft.telemetry"):
        interceptors = telemetry.client_interceptors(settings)
    if telemetry.tracing_available():  # the `otel` extra is installed here
        from temporalio.contrib.opentelemetry import TracingInterceptor

        assert [type(i) for i in interceptors] == [TracingInterceptor]
    else:
        assert interceptors == []
        assert "opentelemetry-sdk is not installed" in caplog.text
