"""Task queue names (a dependency-free module: workflows import it too)."""

from enum import StrEnum


class TaskQueue(StrEnum):
    """Separate queues so each kind of work scales on its own machines."""

    WORKFLOWS = "weft-workflows"  # workflow tasks
    IO = "weft-io"  # HTTP, webhooks, e-mail, storage
    CPU = "weft-cpu"  # text extraction, OCR, chunking
    ML = "weft-ml"  # embedding and local model inference


ALL_QUEUES: tuple[TaskQueue, ...] = tuple(TaskQueue)
ACTIVITY_QUEUES: tuple[TaskQueue, ...] = (TaskQueue.IO, TaskQueue.CPU, TaskQueue.ML)


def queue_name(queue: TaskQueue, prefix: str = "") -> str:
    """The queue's name on the server; a prefix lets deployments (and tests) share
    one namespace without taking each other's tasks."""
    return prefix + queue.value


def parse_queues(value: str) -> list[TaskQueue]:
    """``"weft-io,weft-cpu"`` (or ``"all"``) to queues; unknown names raise ValueError."""
    names = [item.strip() for item in value.split(",") if item.strip()]
    if not names or names == ["all"]:
        return list(ALL_QUEUES)
    known = {queue.value: queue for queue in ALL_QUEUES}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(
            f"unknown task queue(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return [known[name] for name in dict.fromkeys(names)]
