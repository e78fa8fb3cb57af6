"""Model activities: pulling a model onto an Ollama provider.

The workflow carries only the provider's name and the model; this activity
resolves the provider from its own settings and database (so the base URL is
checked here by the egress guard, and no API key enters workflow history).
"""

from __future__ import annotations

import time

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.ai.providers.ollama import OllamaProvider, PullProgress
from engine.ai.providers.registry import ProviderRegistry
from engine.platform.errors import NotFound, WeftError
from engine.platform.settings import Settings
from workflows.activities import PULL_MODEL, PullModelInput, PullModelResult
from workflows.model_pull import ModelPullProgress, ModelPullWorkflow

SIGNAL_EVERY_PERCENT = 5.0
SIGNAL_EVERY_SECONDS = 5.0


def _percent(progress: PullProgress) -> float:
    return 100 * (progress.completed or 0) / progress.total if progress.total else 0.0


def _moved(last: PullProgress | None, now: PullProgress, last_at: float) -> bool:
    """Worth telling the workflow: a new phase, 5 more percent, or 5 quiet seconds."""
    if last is None or now.status != last.status or now.status == "success":
        return True
    if _percent(now) - _percent(last) >= SIGNAL_EVERY_PERCENT:
        return True
    return time.monotonic() - last_at >= SIGNAL_EVERY_SECONDS


class ModelActivities:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
    ) -> None:
        self.registry = ProviderRegistry(settings, http, sessions)

    async def _ollama(self, name: str) -> OllamaProvider:
        try:
            entry = await self.registry.get(name)
        except NotFound as exc:
            raise ApplicationError(exc.message, type=exc.code, non_retryable=True) from None
        if not isinstance(entry.client, OllamaProvider):
            raise ApplicationError(
                f"provider {name} ({entry.kind}) cannot pull models",
                type="VALIDATION_ERROR",
                non_retryable=True,
            )
        return entry.client

    @PULL_MODEL.defn
    async def pull_model(self, params: PullModelInput) -> PullModelResult:
        provider = await self._ollama(params.provider)
        workflow_id = activity.info().workflow_id
        if workflow_id is None:  # only ever scheduled by ModelPullWorkflow
            raise ApplicationError("pull_model runs inside a workflow", non_retryable=True)
        handle = activity.client().get_workflow_handle(workflow_id)
        sent: PullProgress | None = None
        sent_at = 0.0
        layers: dict[str, tuple[int, int]] = {}  # digest -> (completed, total)
        progress = PullProgress(status="starting")
        try:
            async for line in provider.pull(params.model):
                if line.digest and line.total:
                    layers[line.digest] = (line.completed or 0, line.total)
                # Overall progress across every layer seen so far.
                progress = PullProgress(
                    status=line.status,
                    completed=sum(done for done, _ in layers.values()) if layers else None,
                    total=sum(total for _, total in layers.values()) if layers else None,
                )
                activity.heartbeat(progress.status, progress.completed, progress.total)
                if _moved(sent, progress, sent_at):
                    update = ModelPullProgress(
                        status=progress.status, completed=progress.completed, total=progress.total
                    )
                    await handle.signal(ModelPullWorkflow.report_progress, update)
                    sent, sent_at = progress, time.monotonic()
        except WeftError as exc:
            permanent = not getattr(exc, "retryable", True)
            raise ApplicationError(exc.message, type=exc.code, non_retryable=permanent) from None
        return PullModelResult(
            provider=params.provider,
            model=params.model,
            status=progress.status,
            total=progress.total,
            completed=progress.completed,
        )
