"""The Python SDK: pipelines built in code, and typed clients of the REST API.

::

    from engine.sdk import Pipeline, WeftClient

    p = Pipeline("Greeter", category="demo")
    hello = p.transform("hello", output=f"Hello {p.input('name')}")
    p.ai_prompt("poem", prompt=f"Write two lines about: {hello.output}", model="gpt-4o-mini")

    with WeftClient("http://localhost:8000", api_key="znt_…") as client:
        workflow = client.workflows.create(p)
        started = client.workflows.execute(workflow.id, input_data={"name": "Ada"})
        done = client.executions.wait(started.id, timeout=120)
        print(done.status, done.output("poem"))

``AsyncWeftClient`` has the same methods for asyncio code (``stream`` is an
async iterator of status changes). Refusals raise ``ApiError`` (and its
subclasses by status) carrying the API's error ``code``. The SDK needs only
httpx and pydantic; it never imports the server, database or Temporal.
"""

from engine.pipelines.definition import InvalidDefinition, PipelineDefinition, RetrySpec, StepType
from engine.sdk.aio import AsyncWeftClient
from engine.sdk.builder import Pipeline, Ref, Step
from engine.sdk.client import WeftClient
from engine.sdk.errors import (
    ApiError,
    ApiUnreachable,
    AuthError,
    ConflictError,
    InvalidRequest,
    NotFoundError,
    RateLimited,
    WaitTimeout,
)
from engine.sdk.models import (
    Approval,
    Cancelled,
    Execution,
    ExecutionPage,
    ExecutionStarted,
    Schedule,
    SchedulePage,
    StepResult,
    Workflow,
    WorkflowPage,
)

__all__ = [
    "ApiError",
    "ApiUnreachable",
    "Approval",
    "AsyncWeftClient",
    "AuthError",
    "Cancelled",
    "ConflictError",
    "Execution",
    "ExecutionPage",
    "ExecutionStarted",
    "InvalidDefinition",
    "InvalidRequest",
    "NotFoundError",
    "Pipeline",
    "PipelineDefinition",
    "RateLimited",
    "Ref",
    "RetrySpec",
    "Schedule",
    "SchedulePage",
    "Step",
    "StepResult",
    "StepType",
    "WaitTimeout",
    "WeftClient",
    "Workflow",
    "WorkflowPage",
]
