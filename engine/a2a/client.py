"""Calling a remote A2A agent: fetch its card, send one message, wait for the answer.

Every request — the card, and the JSON-RPC calls to whatever URL the card
names — goes through ``GuardedTransport`` (resolve, check under the tenant
rules, pin to the checked address), so a card cannot steer the client to a
private or metadata address. The client speaks A2A 1.0 when the card offers
it and 0.3 when that is all it offers (``protocol`` can force one), sends the
message without blocking, then polls the task until it ends or asks for input.

A retried caller can resume instead of sending again: ``on_task`` learns the
remote task's id as soon as it exists (an activity records it in its heartbeat),
and ``resume_task_id`` continues polling that task.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.helpers import new_data_part
from a2a.types import (
    AgentCard,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import A2AError
from google.protobuf.json_format import MessageToDict, ParseDict

from engine.a2a.transport import guarded_client
from engine.platform.egress import UpstreamTooLarge, parse_url
from engine.platform.errors import InvalidInput, WeftError
from engine.platform.settings import Settings
from workflows.a2a_payloads import STATE_OF_PROTO, RemoteResult, parts_text

Protocol = Literal["auto", "1.0", "0.3"]
CARD_PATH = "/.well-known/agent-card.json"
# Answers the client stops polling at: the task ended, or it waits for the caller.
RESTING = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
        TaskState.TASK_STATE_INPUT_REQUIRED,
        TaskState.TASK_STATE_AUTH_REQUIRED,
    }
)
BINDINGS = ["JSONRPC", "HTTP+JSON"]


class RemoteAgentError(WeftError):
    """The remote agent could not be reached or answered with an error."""

    code = "A2A_REMOTE_ERROR"
    retryable = True


class RemoteAgentRefused(RemoteAgentError):
    """The remote agent refused the call (an A2A error such as an unknown task)."""

    code = "A2A_REMOTE_REFUSED"
    retryable = False


class RemoteAgentTimeout(RemoteAgentError):
    code = "GATEWAY_TIMEOUT"
    retryable = False


def card_location(card_url: str) -> tuple[str, str]:
    """``(base URL, card path)``: a URL ending in ``.json`` is the card itself;
    any other is the agent's base URL, whose card is at the well-known path."""
    url = parse_url(card_url)  # EgressDenied for a URL that is not http(s)
    if url.path.endswith(".json"):
        origin = str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/")
        return origin, url.path
    return str(url.copy_with(query=None, fragment=None)).rstrip("/"), CARD_PATH


def version_of(interface_version: str) -> str:
    return "1.0" if interface_version.startswith("1.") else "0.3"


def restrict(card: AgentCard, protocol: Protocol) -> tuple[AgentCard, str]:
    """The card the client is built from (only ``protocol``'s interfaces when one is
    forced), and the protocol version the client will speak."""
    offered = [i for i in card.supported_interfaces if i.protocol_binding in BINDINGS]
    if protocol != "auto":
        chosen = [i for i in offered if version_of(i.protocol_version or "0.3") == protocol]
        if not chosen:
            raise RemoteAgentRefused(
                f"the remote agent offers no A2A {protocol} interface",
                details={"protocol": protocol},
            )
        narrowed = AgentCard()
        narrowed.CopyFrom(card)
        del narrowed.supported_interfaces[:]
        narrowed.supported_interfaces.extend(chosen)
        return narrowed, protocol
    if not offered:
        raise RemoteAgentRefused("the remote agent's card offers no JSON-RPC or HTTP interface")
    versions = {version_of(i.protocol_version or "0.3") for i in offered}
    return card, "1.0" if "1.0" in versions else "0.3"


def state_name(state: int) -> str:
    name = TaskState.Name(state)
    return STATE_OF_PROTO.get(name, name.removeprefix("TASK_STATE_").lower().replace("_", "-"))


def _parts(content: str | Sequence[dict[str, Any]], data: dict[str, Any] | None) -> list[Part]:
    if isinstance(content, str):
        parts = [Part(text=content)] if content else []
    else:
        parts = [ParseDict(dict(part), Part(), ignore_unknown_fields=True) for part in content]
    if data:
        parts.append(new_data_part(data))
    if not parts:
        raise InvalidInput("a message needs text or data")
    return parts


def result_of(task: Task, sent: Message | None, protocol: str) -> RemoteResult:
    artifacts = [MessageToDict(artifact) for artifact in task.artifacts]
    text = "\n".join(t for t in (parts_text(a) for a in artifacts) if t)
    status_message = MessageToDict(task.status.message) if task.status.HasField("message") else None
    history = [MessageToDict(message) for message in task.history]
    if not text and status_message is not None:
        text = parts_text(status_message)
    if not text:
        replies = [m for m in history if m.get("role") == "ROLE_AGENT"]
        text = parts_text(replies[-1]) if replies else ""
    transcript = history
    if sent is not None and not any(m.get("messageId") == sent.message_id for m in history):
        transcript = [MessageToDict(sent), *history]
    if status_message is not None and not any(
        m.get("messageId") == status_message.get("messageId") for m in transcript
    ):
        transcript = [*transcript, status_message]
    return RemoteResult(
        state=state_name(task.status.state),
        text=text,
        artifacts=artifacts,
        task_id=task.id or None,
        context_id=task.context_id or None,
        transcript=transcript,
        protocol=protocol,
    )


async def fetch_card(http: httpx.AsyncClient, card_url: str) -> AgentCard:
    base, path = card_location(card_url)
    return await A2ACardResolver(http, base, agent_card_path=path).get_agent_card()


async def _exchange(
    client: Client,
    parts: list[Part],
    *,
    protocol: str,
    context_id: str | None,
    task_id: str | None,
    message_id: str | None,
    resume_task_id: str | None,
    on_task: Callable[[str], Awaitable[None]] | None,
    poll_seconds: float,
) -> RemoteResult:
    sent: Message | None = None
    if resume_task_id:
        task = await client.get_task(GetTaskRequest(id=resume_task_id))
    else:
        sent = Message(
            role=Role.ROLE_USER,
            message_id=message_id or str(uuid.uuid4()),
            parts=parts,
            context_id=context_id or "",
            task_id=task_id or "",
        )
        request = SendMessageRequest(message=sent)
        request.configuration.return_immediately = True
        answers = [event async for event in client.send_message(request)]
        if not answers:
            raise RemoteAgentError("the remote agent answered nothing")
        last = answers[-1]
        if last.HasField("message"):  # a direct answer: no task to follow
            reply = MessageToDict(last.message)
            return RemoteResult(
                state="message",
                text=parts_text(reply),
                context_id=last.message.context_id or context_id,
                task_id=last.message.task_id or None,
                transcript=[MessageToDict(sent), reply],
                protocol=protocol,
            )
        task = last.task
    if on_task is not None and task.id:
        await on_task(task.id)
    wait = poll_seconds
    while task.status.state not in RESTING:
        await asyncio.sleep(wait)
        wait = min(wait * 1.5, 5.0)
        task = await client.get_task(GetTaskRequest(id=task.id))
    return result_of(task, sent, protocol)


async def call_remote_agent(
    settings: Settings,
    card_url: str,
    content: str | Sequence[dict[str, Any]],
    *,
    tenant: bool = True,
    timeout_seconds: float = 120.0,
    context_id: str | None = None,
    task_id: str | None = None,
    data: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    protocol: Protocol = "auto",
    message_id: str | None = None,
    resume_task_id: str | None = None,
    on_task: Callable[[str], Awaitable[None]] | None = None,
    poll_seconds: float = 0.25,
) -> RemoteResult:
    """Send ``content`` (text, or A2A 1.0 part dicts; ``data`` adds a data part)
    to the agent whose card is at ``card_url``, and wait up to ``timeout_seconds``
    for its answer (a terminal state, or input-required).

    ``context_id``/``task_id`` continue a conversation (a task that asked for
    input); ``headers`` are sent with every request (the remote agent's
    credentials). Raises ``EgressDenied`` for an address the egress policy
    forbids (before any connection), ``RemoteAgentTimeout``, or
    ``RemoteAgentError`` for anything else that went wrong.
    """
    parts = _parts(content, data)
    card_location(card_url)  # a malformed URL fails before anything is opened
    http, transport = guarded_client(
        settings, tenant=tenant, timeout_seconds=timeout_seconds, headers=headers
    )
    try:
        async with http, asyncio.timeout(timeout_seconds):
            card, spoken = restrict(await fetch_card(http, card_url), protocol)
            config = ClientConfig(
                httpx_client=http, streaming=False, supported_protocol_bindings=BINDINGS
            )
            try:
                client = ClientFactory(config).create(card)
            except ValueError as exc:
                raise RemoteAgentRefused(f"no usable interface on the remote card: {exc}") from None
            try:
                return await _exchange(
                    client,
                    parts,
                    protocol=spoken,
                    context_id=context_id,
                    task_id=task_id,
                    message_id=message_id,
                    resume_task_id=resume_task_id,
                    on_task=on_task,
                    poll_seconds=poll_seconds,
                )
            finally:
                await client.close()
    except TimeoutError:
        raise RemoteAgentTimeout(
            f"the remote agent did not answer within {timeout_seconds:g}s",
            details={"timeout_seconds": timeout_seconds},
        ) from None
    except (A2AError, httpx.HTTPError) as exc:
        if transport.refused is not None:
            raise transport.refused from None
        too_large = _cause_of(exc, UpstreamTooLarge)
        if too_large is not None:
            raise too_large from None
        if isinstance(exc, A2AError) and type(exc).__module__.startswith("a2a.utils"):
            raise RemoteAgentRefused(f"the remote agent refused: {exc}") from None
        raise RemoteAgentError(f"calling the remote agent failed: {exc}") from None


def _cause_of(exc: BaseException, kind: type[WeftError]) -> WeftError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
