"""Dependencies of the model routes: the process's ModelRuntime, and who a
model call is for (tenant, user and request id, for the ledger)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.deps import Caller, ResourcesDep
from engine.ai.runtime import CallContext, ModelRuntime
from engine.platform.errors import Forbidden


async def get_models(resources: ResourcesDep) -> ModelRuntime:
    return resources.models


ModelsDep = Annotated[ModelRuntime, Depends(get_models)]


def call_context(request: Request, caller: Caller, kind: str = "chat") -> CallContext:
    return CallContext(
        tenant_id=caller.tenant_id,
        user_id=caller.principal.user_id,
        request_id=getattr(request.state, "request_id", None),
        kind=kind,
    )


def require_superuser(caller: Caller) -> None:
    """Providers and installed models are shared by every tenant of the deployment."""
    if not caller.principal.is_superuser:
        raise Forbidden("Only a global administrator may change the deployment's models")
