"""System activities: cheap probes used by SystemCheckWorkflow."""

from __future__ import annotations

import platform

from temporalio import activity

from workflows.activities import PING_QUEUE, PingInput, PingResult


class SystemActivities:
    def __init__(self, identity: str) -> None:
        self._identity = identity

    @PING_QUEUE.defn
    async def ping_queue(self, params: PingInput) -> PingResult:
        queue = activity.info().task_queue
        activity.logger.info("ping answered on %s", queue)
        return PingResult(
            queue=queue,
            worker=self._identity,
            python=platform.python_version(),
        )
