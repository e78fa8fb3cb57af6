"""The activities of natural-language commands (``CommandWorkflow``): do the
intent's work, and record the outcome on the command with its event."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from engine.ai.runtime import ModelRuntime
from engine.db.scope import TenantScope
from engine.mcp import commands, work
from engine.mcp.services import McpServices
from engine.platform.errors import WeftError
from engine.platform.settings import Settings
from engine.vectors.base import VectorIndex
from workers.activities.errors import as_application_error
from workflows.activities import RECORD_COMMAND, RUN_COMMAND
from workflows.command_payloads import CommandInput, CommandOutcome, CommandRecord


class McpActivities:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        index: VectorIndex,
        http: httpx.AsyncClient,
        models: ModelRuntime,
    ) -> None:
        self.settings, self.sessions, self.index = settings, sessions, index
        self.http, self.models = http, models

    @RUN_COMMAND.defn
    async def run_command(self, params: CommandInput) -> CommandOutcome:
        """Report that the work began (``workflow.progress``), then do it in the
        command's tenant. Engine errors that cannot heal fail the command at once."""
        services = McpServices(
            settings=self.settings,
            sessions=self.sessions,
            temporal=activity.client(),  # the worker's own client (pydantic data converter)
            index=self.index,
            models=self.models,
            http=self.http,
        )
        async with self.sessions() as session:
            await commands.record_progress(session, params, work.progress_message(params.intent))
            db = TenantScope(session, params.tenant_id, all_tenants=False)
            try:
                return await work.run(services, db, params)
            except WeftError as exc:
                raise as_application_error(exc) from None

    @RECORD_COMMAND.defn
    async def record_command(self, record: CommandRecord) -> None:
        async with self.sessions() as session:
            await commands.record_outcome(session, record)
