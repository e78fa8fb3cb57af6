"""The activity behind the request-history retention schedule: one batch of deletions."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from engine.audit.request_history import purge_batch
from engine.platform.settings import Settings
from workflows.activities import PURGE_REQUEST_HISTORY, HistoryPurgeBatch, HistoryPurged


class HistoryActivities:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings, self.sessions = settings, sessions

    @PURGE_REQUEST_HISTORY.defn
    async def purge_request_history(self, params: HistoryPurgeBatch) -> HistoryPurged:
        """Delete at most ``batch_size`` expired rows (oldest first) and the expired
        detail-file days; deleting is idempotent, so a retry is harmless."""
        deleted, cutoff = await purge_batch(
            self.settings, self.sessions, params.as_of, params.batch_size
        )
        if deleted:
            activity.logger.info("request history: %d rows older than %s deleted", deleted, cutoff)
        return HistoryPurged(deleted=deleted, cutoff=cutoff)
