"""The A2A request handler: every A2A call, mapped onto task runs and rows.

The SDK's ``JsonRpcDispatcher`` parses JSON-RPC, checks the ``A2A-Version``
header, converts 0.3 calls to 1.0 and frames streams as server-sent events;
it calls this handler with 1.0 protobuf requests. The handler converts them
to plain dicts at once (protobuf never reaches a workflow), calls
``engine.a2a.tasks`` / ``push`` / ``card``, and maps the engine's errors to
A2A's (another tenant's task is ``TaskNotFound``).

The caller arrives as a ``CallerUser`` on the call context (the API's route
authenticated it before the SDK ran), with the tenant and the base URL the
card advertises in the context's state.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import UTC
from typing import Any

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers import RequestHandler, validate_request_params
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    A2AError,
    InternalError,
    InvalidParamsError,
    InvalidRequestError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import apply_history_length, validate_history_length, validate_page_size
from google.protobuf.json_format import MessageToDict, ParseDict

from engine.a2a import card, push
from engine.a2a.errors import (
    A2ATaskNotCancelable,
    A2ATaskNotFound,
    A2ATaskNotWaiting,
    PushConfigNotFound,
)
from engine.a2a.tasks import RESTING, A2ATasks
from engine.db.scope import TenantScope
from engine.identity.principals import Principal
from engine.platform.errors import Forbidden, InvalidInput, NotFound, WeftError
from workflows.a2a_payloads import PROTO_STATES, TERMINAL_STATES, A2ATaskView

# How long a blocking SendMessage waits for the task to end or ask for input;
# after that it answers with the task as it is (the client polls or subscribes).
BLOCKING_SECONDS = 120.0
DEFAULT_PAGE_SIZE = 50
STATE_BY_ENUM = {
    TaskState.Value(proto): state for state, proto in PROTO_STATES.items()
}  # TaskState number -> our state name


class CallerUser(User):
    """The authenticated caller, as the SDK's call context carries it."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self.principal.user_id


def principal_of(context: ServerCallContext) -> Principal:
    user = context.user
    if not isinstance(user, CallerUser):
        raise InvalidRequestError(message="authentication required")
    return user.principal


@contextlib.contextmanager
def a2a_errors() -> Iterator[None]:
    """The engine's errors as A2A's."""
    try:
        yield
    except A2AError:
        raise
    except (A2ATaskNotFound, PushConfigNotFound) as exc:
        raise TaskNotFoundError(message=exc.message) from None
    except A2ATaskNotCancelable as exc:
        raise TaskNotCancelableError(message=exc.message) from None
    except A2ATaskNotWaiting as exc:
        raise UnsupportedOperationError(message=exc.message) from None
    except InvalidInput as exc:
        raise InvalidParamsError(message=exc.message, data=exc.details or None) from None
    except (Forbidden, NotFound) as exc:
        raise InvalidRequestError(message=exc.message) from None
    except WeftError as exc:
        raise InternalError(message=exc.message) from None


def to_task(view: A2ATaskView, config: Any = None) -> Task:
    task = ParseDict(view.task, Task(), ignore_unknown_fields=True)
    return apply_history_length(task, config) if config is not None else task


def _hints(params: SendMessageRequest) -> dict[str, Any]:
    """Targeting hints: the message's metadata, overridden by the request's."""
    hints: dict[str, Any] = {}
    if params.message.HasField("metadata"):
        hints.update(MessageToDict(params.message.metadata))
    if params.HasField("metadata"):
        hints.update(MessageToDict(params.metadata))
    return hints


def _events(before: A2ATaskView, after: A2ATaskView) -> list[Event]:
    """What changed between two versions of a task, as stream events."""
    task = to_task(after)
    known = {a.get("artifactId") for a in before.task.get("artifacts") or []}
    events: list[Event] = [
        TaskArtifactUpdateEvent(
            task_id=task.id, context_id=task.context_id, artifact=artifact, last_chunk=True
        )
        for artifact in task.artifacts
        if artifact.artifact_id not in known
    ]
    events.append(
        TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id, status=task.status)
    )
    return events


class WeftRequestHandler(RequestHandler):
    """A2A calls onto ``A2ATaskWorkflow`` runs (see the module docstring)."""

    def __init__(self, tasks: A2ATasks) -> None:
        self.tasks = tasks

    # --- messages --------------------------------------------------------------

    async def _send(self, params: SendMessageRequest, context: ServerCallContext) -> A2ATaskView:
        principal = principal_of(context)
        validate_history_length(params.configuration)
        message = MessageToDict(params.message)
        asked = None
        if params.configuration.HasField("task_push_notification_config"):
            asked = _push_request(params.configuration.task_push_notification_config)
        with a2a_errors():
            sent = await self.tasks.send(principal, message, _hints(params), asked)
        return sent.view

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        view = await self._send(params, context)
        if view.state not in RESTING and not params.configuration.return_immediately:
            with a2a_errors():
                row = await self.tasks.row(principal_of(context), view.task["id"])
                view = await self.tasks.wait(row, seconds=BLOCKING_SECONDS)
        return to_task(view, params.configuration)

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        view = await self._send(params, context)
        yield to_task(view, params.configuration)
        if view.state in RESTING:
            return
        async for event in self._follow(context, view):
            yield event

    async def _follow(self, context: ServerCallContext, first: A2ATaskView) -> AsyncIterator[Event]:
        """Stream events after ``first`` until the task rests (ends or waits for input).
        A client that goes away closes this generator; the task runs on."""
        with a2a_errors():
            row = await self.tasks.row(principal_of(context), first.task["id"])
        last = first
        async for view in self.tasks.watch(row, first=first):
            if view.version == last.version and view.state == last.state:
                continue
            for event in _events(last, view):
                yield event
            last = view

    # --- tasks -----------------------------------------------------------------

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        validate_history_length(params)
        with a2a_errors():
            view = await self.tasks.read(principal_of(context), params.id)
        return to_task(view, params)

    @validate_request_params
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        validate_history_length(params)
        size = params.page_size if params.HasField("page_size") else DEFAULT_PAGE_SIZE
        validate_page_size(size)
        offset = _offset(params.page_token)
        updated_after = None
        if params.HasField("status_timestamp_after"):
            updated_after = params.status_timestamp_after.ToDatetime(tzinfo=UTC)
        state = STATE_BY_ENUM.get(params.status) if params.status else None
        with a2a_errors():
            views, total = await self.tasks.list_tasks(
                principal_of(context),
                context_id=params.context_id or None,
                state=state,
                updated_after=updated_after,
                limit=size,
                offset=offset,
            )
        found = []
        for view in views:
            task = to_task(view, params)
            if not params.include_artifacts:
                task.ClearField("artifacts")
            found.append(task)
        following = offset + len(found)
        return ListTasksResponse(
            tasks=found,
            next_page_token=str(following) if following < total else "",
            page_size=size,
            total_size=total,
        )

    @validate_request_params
    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        with a2a_errors():
            view = await self.tasks.cancel(principal_of(context), params.id)
        return to_task(view)

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        with a2a_errors():
            view = await self.tasks.read(principal_of(context), params.id)
        if view.state in TERMINAL_STATES:
            raise UnsupportedOperationError(message=f"task {params.id} is already {view.state}")
        yield to_task(view)
        async for event in self._follow(context, view):
            yield event

    # --- push notification configs ----------------------------------------------

    async def _save_push(
        self, principal: Principal, task_id: str, config: TaskPushNotificationConfig
    ) -> TaskPushNotificationConfig:
        async with self.tasks.sessions() as session:
            db = TenantScope(session, principal.tenant_id, all_tenants=False)
            asked = _push_request(config)
            saved = await push.save_config(
                db, self.tasks.settings, task_id, asked, created_by=principal.user_id
            )
        return ParseDict(saved.as_dict(), TaskPushNotificationConfig())

    @validate_request_params
    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        principal = principal_of(context)
        if not params.task_id or not params.url:
            raise InvalidParamsError(message="a push config needs taskId and url")
        with a2a_errors():
            return await self._save_push(principal, params.task_id, params)

    @validate_request_params
    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        principal = principal_of(context)
        with a2a_errors():
            async with self.tasks.sessions() as session:
                db = TenantScope(session, principal.tenant_id, all_tenants=False)
                found = await push.get_config(db, self.tasks.settings, params.task_id, params.id)
        return ParseDict(found.as_dict(), TaskPushNotificationConfig())

    @validate_request_params
    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        principal = principal_of(context)
        with a2a_errors():
            async with self.tasks.sessions() as session:
                db = TenantScope(session, principal.tenant_id, all_tenants=False)
                found = await push.list_configs(db, self.tasks.settings, params.task_id)
        return ListTaskPushNotificationConfigsResponse(
            configs=[ParseDict(c.as_dict(), TaskPushNotificationConfig()) for c in found]
        )

    @validate_request_params
    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        principal = principal_of(context)
        with a2a_errors():
            async with self.tasks.sessions() as session:
                db = TenantScope(session, principal.tenant_id, all_tenants=False)
                await push.delete_config(db, params.task_id, params.id)

    # --- the extended card -------------------------------------------------------

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        principal = principal_of(context)
        base_url = str(context.state.get("base_url") or "")
        async with self.tasks.sessions() as session:
            db = TenantScope(session, principal.tenant_id, all_tenants=False)
            return await card.tenant_card(db, base_url)


def _push_request(config: TaskPushNotificationConfig) -> push.PushRequest:
    return push.PushRequest(
        url=config.url,
        config_id=config.id or None,
        token=config.token or None,
        scheme=config.authentication.scheme or None,
        credentials=config.authentication.credentials or None,
    )


def _offset(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidParamsError(message="page_token is not one this server issued")
    return int(token)
