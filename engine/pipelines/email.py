"""E-mail from pipeline steps: over SMTP when it is configured, and always kept in
the ``email_outbox`` table (readable through the API), so a message is never
silently dropped. One message per (execution, step), however often the step's
activity runs.
"""

from __future__ import annotations

import asyncio
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.db.tables import EmailMessage
from engine.platform.errors import InvalidInput
from engine.platform.settings import Settings
from workflows.pipeline_payloads import StepCall

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def recipients(value: Any) -> list[str]:
    import re

    items = value if isinstance(value, list) else str(value or "").split(",")
    found = [str(item).strip() for item in items if str(item).strip()]
    bad = [item for item in found if not re.match(EMAIL, item)]
    if not found or bad:
        raise InvalidInput(
            f"an email step needs valid recipients (got {', '.join(bad) or 'none'})",
            details={"field": "config.to"},
        )
    return found


def _body(config: dict[str, Any]) -> str:
    body = config.get("body") or config.get("text") or config.get("message")
    if body is None and config.get("template"):
        body = f"[template {config['template']}]"
    return str(body or "")


def _deliver(settings: Settings, message: EmailMessage) -> None:
    mime = MimeMessage()
    mime["From"] = settings.smtp_from
    mime["To"] = ", ".join(message.to)
    mime["Subject"] = message.subject
    mime.set_content(message.body)
    with smtplib.SMTP(settings.smtp_host or "", settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(mime)


async def send_step_email(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, call: StepCall
) -> EmailMessage:
    """Store (and, with SMTP configured, send) the step's message exactly once."""
    key = f"{call.execution_id}:{call.step_id}"
    async with sessions() as session:
        message = await session.scalar(select(EmailMessage).where(EmailMessage.dedupe_key == key))
        if message is None:
            message = EmailMessage(
                tenant_id=call.tenant_id,
                execution_id=call.execution_id,
                step_id=call.step_id,
                to=recipients(call.config.get("to")),
                subject=str(call.config.get("subject") or ""),
                body=_body(call.config),
                status="queued" if settings.smtp_host else "stored",
                dedupe_key=key,
            )
            session.add(message)
            await session.commit()
        if message.status == "queued":  # not yet handed to the SMTP server
            await asyncio.to_thread(_deliver, settings, message)
            message.status, message.sent_at = "sent", datetime.now(UTC)
            await session.commit()
        return message
