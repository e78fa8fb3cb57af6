"""Deliberately changed copies of DocumentProcessingWorkflow, for test_replay.

Both add a step before extraction: checking that the CPU queue answers. One adds
it carelessly, so runs recorded before the change can no longer be replayed; the
other guards it with ``workflow.patched``, Temporal's way to change a workflow
that has runs in flight. They live in a module of their own because the worker's
sandbox re-imports a workflow's module, and a test module imports far too much.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.activities import PING_QUEUE, PingInput
    from workflows.document_processing import (
        DocumentProcessingInput,
        DocumentProcessingResult,
        DocumentProcessingWorkflow,
    )

CHECK_CPU_PATCH = "check-cpu-queue-first"


async def _check_cpu_queue() -> None:
    own = workflow.info().task_queue
    cpu = own.removesuffix("weft-workflows") + "weft-cpu"
    await PING_QUEUE.execute(
        PingInput(queue=cpu), task_queue=cpu, start_to_close_timeout=timedelta(seconds=10)
    )


@workflow.defn(name="DocumentProcessingWorkflow")
class CheckFirstDocumentProcessingWorkflow(DocumentProcessingWorkflow):
    """The careless change: a new first activity, unversioned."""

    @workflow.run
    async def run(self, params: DocumentProcessingInput) -> DocumentProcessingResult:
        await _check_cpu_queue()
        return await super().run(params)


@workflow.defn(name="DocumentProcessingWorkflow")
class PatchedDocumentProcessingWorkflow(DocumentProcessingWorkflow):
    """The same change behind a patch: old runs skip it, new runs take it."""

    @workflow.run
    async def run(self, params: DocumentProcessingInput) -> DocumentProcessingResult:
        if workflow.patched(CHECK_CPU_PATCH):
            await _check_cpu_queue()
        return await super().run(params)
