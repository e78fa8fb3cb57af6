"""The one definition model behind every pipeline: a DAG of typed steps.

z2 sends ``definition.nodes/edges``, auterity ``steps`` with
``dependencies``, and Python code builds the same model (``weft.sdk``); all
three normalise into a ``PipelineDefinition`` here, and only that model is
validated, stored and copied into a run's input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from engine.pipelines.templating import TemplateError, references
from engine.platform.errors import WeftError

STEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MAX_STEPS = 500
# The longest a wait_for_callback step may wait (its config.timeout_seconds).
MAX_CALLBACK_WAIT_SECONDS = 30 * 86_400
NOTIFY_METHODS = ("POST", "PUT", "PATCH")
A2A_PROTOCOLS = ("auto", "1.0", "0.3")
MAX_A2A_WAIT_SECONDS = 3600  # how long one a2a step waits for the remote agent
# A data category a definition or step declares (z2 consent: ``personal_info``, …).
DATA_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$")
MAX_DATA_CATEGORIES = 50


class StepType(StrEnum):
    AGENT = "agent"
    AI_PROMPT = "ai_prompt"
    API_CALL = "api_call"
    EMAIL = "email"
    TRANSFORM = "transform"
    CONDITION = "condition"
    HUMAN_APPROVAL = "human_approval"
    DOCUMENT_PROCESSOR = "document_processor"
    SUB_WORKFLOW = "sub_workflow"
    WAIT_FOR_CALLBACK = "wait_for_callback"
    A2A = "a2a"


class InvalidDefinition(WeftError):
    """A definition that cannot run (HTTP 422, with what and where in ``details``)."""

    code = "VALIDATION_ERROR"


class RetrySpec(BaseModel):
    max_attempts: int = Field(default=3, ge=1, le=20)
    initial_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    backoff: float = Field(default=2.0, ge=1.0, le=10.0)


class StepSpec(BaseModel):
    """One step: what it does (``type`` + ``config``) and what it waits for."""

    id: str
    type: StepType
    name: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    # A dependency on a condition step can require one of its branches.
    when: dict[str, bool] = Field(default_factory=dict)
    agent_id: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=86_400)
    retry: RetrySpec | None = None
    # Categories of the data subject's data this step touches (besides the definition's).
    data_categories: list[str] = Field(default_factory=list)

    @property
    def title(self) -> str:
        return self.name or self.id

    @model_serializer(mode="wrap")
    def _without_empty_categories(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _drop_empty_categories(self.data_categories, handler(self))


class PipelineDefinition(BaseModel):
    steps: list[StepSpec]
    timeout_seconds: float | None = Field(default=None, gt=0, le=7 * 86_400)
    # Categories of the data subject's data every step touches: an execution needs
    # the subject's granted consent for these (and each step's own) before it
    # starts, and again before each such step runs.
    data_categories: list[str] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _without_empty_categories(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _drop_empty_categories(self.data_categories, handler(self))

    def categories_of(self, step: StepSpec) -> list[str]:
        """The data categories ``step`` touches: the definition's and its own."""
        return list(dict.fromkeys([*self.data_categories, *step.data_categories]))

    def declared_categories(self) -> list[str]:
        """Every data category the definition declares (empty: it needs no consent)."""
        found = [*self.data_categories, *(c for s in self.steps for c in s.data_categories)]
        return list(dict.fromkeys(found))

    def step(self, step_id: str) -> StepSpec:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def agent_ids(self) -> set[str]:
        return {step.agent_id for step in self.steps if step.agent_id}


def _drop_empty_categories(categories: list[str], dumped: Any) -> Any:
    """Leave ``data_categories`` out while empty, so definitions (and the run inputs
    that copy them) without categories serialise exactly as before they existed."""
    if not categories and isinstance(dumped, dict):
        dumped.pop("data_categories", None)
    return dumped


# --- normalising the seeds' shapes -------------------------------------------


def _invalid(message: str, reason: str, **details: Any) -> InvalidDefinition:
    return InvalidDefinition(message, details={"reason": reason, **details})


def _step_type(value: Any, where: str) -> StepType:
    try:
        return StepType(str(value))
    except ValueError:
        raise _invalid(
            f"unknown step type {value!r} at {where}",
            "UNKNOWN_STEP_TYPE",
            field=where,
            allowed=[t.value for t in StepType],
        ) from None


def _common(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    config = raw.get("config") or raw.get("data") or {}
    if not isinstance(config, dict):
        raise _invalid(f"{where}.config must be an object", "INVALID_CONFIG", field=where)
    declared = raw.get("data_categories")
    if declared is None:
        declared = config.get("data_categories")
    return {
        "data_categories": data_categories(declared, f"{where}.data_categories"),
        "type": _step_type(raw.get("type"), f"{where}.type"),
        "name": str(raw.get("name") or raw.get("label") or ""),
        "config": config,
        "agent_id": raw.get("agent_id") or config.get("agent_id"),
        "timeout_seconds": raw.get("timeout_seconds"),
        "retry": raw.get("retry"),
    }


def data_categories(value: Any, where: str = "data_categories") -> list[str]:
    """A declared list of data categories (a missing one is none), without repeats."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise _invalid(f"{where} must be a list of names", "INVALID_DATA_CATEGORY", field=where)
    names = list(dict.fromkeys(value))
    if len(names) > MAX_DATA_CATEGORIES:
        raise _invalid(
            f"{where} names at most {MAX_DATA_CATEGORIES} categories",
            "INVALID_DATA_CATEGORY",
            field=where,
        )
    for name in names:
        if not isinstance(name, str) or not DATA_CATEGORY.match(name):
            raise _invalid(
                f"{where}: {name!r} is not a data category name (letters, digits, _ . : -)",
                "INVALID_DATA_CATEGORY",
                field=where,
            )
    return names


def from_steps(steps: Iterable[Mapping[str, Any]], **options: Any) -> PipelineDefinition:
    """auterity's ``steps``: a step without an ``id`` is ``step-1``, ``step-2``, …
    by its position (auterity's own example depends on ``step-1``)."""
    specs = []
    for position, raw in enumerate(steps, 1):
        where = f"steps[{position - 1}]"
        depends = raw.get("dependencies") or raw.get("depends_on") or []
        if not isinstance(depends, list):
            raise _invalid(f"{where}.dependencies must be a list", "INVALID_DEPENDENCIES")
        specs.append(
            StepSpec(
                id=str(raw.get("id") or f"step-{position}"),
                depends_on=[str(d) for d in depends],
                when=raw.get("when") or {},
                **_common(raw, where),
            )
        )
    if "data_categories" in options:
        options["data_categories"] = data_categories(options["data_categories"])
    return PipelineDefinition(steps=specs, **options)


def from_graph(definition: Mapping[str, Any], **options: Any) -> PipelineDefinition:
    """z2's ``definition.nodes`` and ``edges`` (``source`` → ``target``; an edge
    leaving a condition node may carry ``condition: true|false``)."""
    nodes = definition.get("nodes") or []
    edges = definition.get("edges") or []
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise _invalid("definition.nodes and definition.edges must be lists", "INVALID_GRAPH")
    if "data_categories" in options:
        options["data_categories"] = data_categories(options["data_categories"])
    elif "data_categories" in definition:
        options["data_categories"] = data_categories(
            definition["data_categories"], "definition.data_categories"
        )
    depends: dict[str, list[str]] = {}
    when: dict[str, dict[str, bool]] = {}
    for number, edge in enumerate(edges):
        source, target = edge.get("source"), edge.get("target")
        if not source or not target:
            raise _invalid(
                f"edges[{number}] needs a source and a target",
                "INVALID_EDGE",
                field=f"edges[{number}]",
            )
        depends.setdefault(str(target), []).append(str(source))
        if isinstance(edge.get("condition"), bool):
            when.setdefault(str(target), {})[str(source)] = edge["condition"]
    specs = []
    for number, raw in enumerate(nodes):
        where = f"definition.nodes[{number}]"
        node_id = raw.get("id")
        if not node_id:
            raise _invalid(f"{where} needs an id", "MISSING_ID", field=where)
        specs.append(
            StepSpec(
                id=str(node_id),
                depends_on=depends.get(str(node_id), []),
                when=when.get(str(node_id), {}),
                **_common(raw, where),
            )
        )
    known = {spec.id for spec in specs}
    for target, sources in depends.items():
        for name in [target, *sources]:
            if name not in known:
                raise _invalid(
                    f"an edge names the unknown node {name!r}", "UNKNOWN_NODE", node=name
                )
    return PipelineDefinition(steps=specs, **options)


# --- validation ----------------------------------------------------------------


def find_cycle(steps: list[StepSpec]) -> list[str] | None:
    """A dependency cycle as a path (``a → b → a``), or None."""
    graph = {step.id: step.depends_on for step in steps}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in graph.get(node, []):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (cycle := visit(node)):
            return list(reversed(cycle))
    return None


def ancestors(definition: PipelineDefinition) -> dict[str, set[str]]:
    """Every step's transitive dependencies (the steps whose output it may read)."""
    direct = {step.id: set(step.depends_on) for step in definition.steps}
    memo: dict[str, set[str]] = {}

    def of(step_id: str) -> set[str]:
        if step_id not in memo:
            memo[step_id] = set()
            found: set[str] = set()
            for parent in direct.get(step_id, ()):
                found |= {parent, *of(parent)}
            memo[step_id] = found
        return memo[step_id]

    return {step_id: of(step_id) for step_id in direct}


def validate(
    definition: PipelineDefinition,
    *,
    known_agents: set[str] | None = None,
    input_names: set[str] | None = None,
) -> None:
    """Raise ``InvalidDefinition`` for a definition that cannot run.

    Checked: at least one step and at most ``MAX_STEPS``; well-formed, unique
    ids; dependencies on existing steps; no cycles (the path is in the
    details); agents that exist (``known_agents``); step-specific required
    config; every ``{{steps.<id>…}}`` reads an earlier step; and, when
    ``input_names`` is given (at execution), every other ``{{variable}}`` is
    in the input.
    """
    steps = definition.steps
    if not steps:
        raise _invalid("a workflow needs at least one step", "NO_STEPS", field="steps")
    if len(steps) > MAX_STEPS:
        raise _invalid(f"a workflow holds at most {MAX_STEPS} steps", "TOO_MANY_STEPS")
    seen: set[str] = set()
    for step in steps:
        if not STEP_ID.match(step.id):
            raise _invalid(f"invalid step id {step.id!r}", "INVALID_STEP_ID", step=step.id)
        if step.id in seen:
            raise _invalid(f"duplicate step id {step.id!r}", "DUPLICATE_STEP_ID", step=step.id)
        seen.add(step.id)
    for step in steps:
        for parent in step.depends_on:
            if parent not in seen:
                raise _invalid(
                    f"step {step.id!r} depends on the unknown step {parent!r}",
                    "UNKNOWN_DEPENDENCY",
                    step=step.id,
                    dependency=parent,
                )
        for parent in step.when:
            if parent not in step.depends_on:
                raise _invalid(
                    f"step {step.id!r} branches on {parent!r}, which it does not depend on",
                    "INVALID_BRANCH",
                    step=step.id,
                )
            if definition.step(parent).type is not StepType.CONDITION:
                raise _invalid(
                    f"step {step.id!r} branches on {parent!r}, which is not a condition",
                    "INVALID_BRANCH",
                    step=step.id,
                )
    data_categories(definition.data_categories)
    for step in steps:
        data_categories(step.data_categories, f"step {step.id!r} data_categories")
    cycle = find_cycle(steps)
    if cycle:
        raise _invalid("the workflow has a cycle: " + " → ".join(cycle), "CYCLE", cycle=cycle)
    for step in steps:
        _check_config(step, known_agents)
    reach = ancestors(definition)
    for step in steps:
        try:
            refs = references(step.config)
        except TemplateError as exc:
            raise _invalid(
                f"step {step.id!r}: {exc}", "INVALID_TEMPLATE", step=step.id, field="config"
            ) from None
        for ref in refs:
            if ref.step is not None:
                if ref.step not in reach[step.id]:
                    raise _invalid(
                        f"step {step.id!r} reads {{{{{ref.text}}}}}, but {ref.step!r} is not "
                        "an earlier step it depends on",
                        "UNKNOWN_VARIABLE",
                        step=step.id,
                        variable=ref.text,
                    )
            elif input_names is not None and ref.root not in input_names:
                raise _invalid(
                    f"step {step.id!r} reads {{{{{ref.text}}}}}, which neither input_data "
                    "nor an earlier step provides",
                    "UNKNOWN_VARIABLE",
                    step=step.id,
                    variable=ref.text,
                )


REQUIRED_CONFIG: dict[StepType, tuple[str, ...]] = {
    StepType.AI_PROMPT: ("prompt",),
    StepType.API_CALL: ("url",),
    StepType.EMAIL: ("to",),
    StepType.CONDITION: ("value",),
    StepType.SUB_WORKFLOW: ("workflow_id",),
    StepType.DOCUMENT_PROCESSOR: ("file_id",),
}


def _check_config(step: StepSpec, known_agents: set[str] | None) -> None:
    missing = [key for key in REQUIRED_CONFIG.get(step.type, ()) if key not in step.config]
    if missing:
        raise _invalid(
            f"step {step.id!r} ({step.type}) needs config.{missing[0]}",
            "MISSING_CONFIG",
            step=step.id,
            field=f"config.{missing[0]}",
        )
    if step.type is StepType.AGENT:
        if not step.agent_id:
            raise _invalid(
                f"step {step.id!r} is an agent step without agent_id", "MISSING_AGENT", step=step.id
            )
        if known_agents is not None and step.agent_id not in known_agents:
            raise _invalid(
                f"step {step.id!r} names the unknown agent {step.agent_id!r}",
                "UNKNOWN_AGENT",
                step=step.id,
                agent_id=step.agent_id,
            )
    if step.type is StepType.API_CALL:
        method = str(step.config.get("method", "GET")).upper()
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            raise _invalid(
                f"step {step.id!r} has the unsupported method {method!r}",
                "INVALID_CONFIG",
                step=step.id,
                field="config.method",
            )
    if step.type is StepType.WAIT_FOR_CALLBACK:
        _check_callback_config(step)
    if step.type is StepType.A2A:
        _check_a2a_config(step)


def _templated(value: Any) -> bool:
    """A string holding a template: checked once rendered, at run time."""
    return isinstance(value, str) and "{{" in value


def _out_of_range(seconds: Any, most: float) -> bool:
    """A given number of seconds that is not in (0, most] (templates are checked at run time)."""
    if seconds is None or _templated(seconds):
        return False
    number = seconds if isinstance(seconds, int | float) and not isinstance(seconds, bool) else 0
    return not 0 < number <= most


def _check_callback_config(step: StepSpec) -> None:
    """``wait_for_callback``: optional ``timeout_seconds`` and ``notify: {url, method?,
    headers?, body?}`` (the callback URL and secret are added to ``body``)."""

    def invalid(message: str, field: str) -> InvalidDefinition:
        return _invalid(f"step {step.id!r}: {message}", "INVALID_CONFIG", step=step.id, field=field)

    timeout = step.config.get("timeout_seconds")
    if _out_of_range(timeout, MAX_CALLBACK_WAIT_SECONDS):
        raise invalid(
            f"timeout_seconds must be a number of seconds, above 0 and at most "
            f"{MAX_CALLBACK_WAIT_SECONDS}",
            "config.timeout_seconds",
        )
    notify = step.config.get("notify")
    if notify is None:
        return
    if not isinstance(notify, dict):
        raise invalid("notify must be an object {url, method, headers, body}", "config.notify")
    url = notify.get("url")
    if not url or not isinstance(url, str):
        raise _invalid(
            f"step {step.id!r} (wait_for_callback) needs config.notify.url",
            "MISSING_CONFIG",
            step=step.id,
            field="config.notify.url",
        )
    method = notify.get("method", "POST")
    if not _templated(method) and str(method).upper() not in NOTIFY_METHODS:
        raise invalid(
            f"notify.method must be one of {', '.join(NOTIFY_METHODS)}", "config.notify.method"
        )
    if not isinstance(notify.get("headers") or {}, dict):
        raise invalid("notify.headers must be an object", "config.notify.headers")
    body = notify.get("body")
    if body is not None and not isinstance(body, dict) and not _templated(body):
        raise invalid(
            "notify.body must be an object (the callback URL and secret are added to it)",
            "config.notify.body",
        )


def _check_a2a_config(step: StepSpec) -> None:
    """``a2a``: ``agent_url`` (the remote agent's card URL or base URL), ``message``
    (text) and/or ``data`` (an object), optional ``protocol`` (auto, 1.0, 0.3),
    ``timeout_seconds``, and ``context_id``/``task_id`` to continue a conversation."""

    def invalid(message: str, field: str, reason: str = "INVALID_CONFIG") -> InvalidDefinition:
        return _invalid(f"step {step.id!r}: {message}", reason, step=step.id, field=field)

    config = step.config
    url = config.get("agent_url")
    if not url or not isinstance(url, str):
        raise invalid("an a2a step needs config.agent_url", "config.agent_url", "MISSING_CONFIG")
    message, data = config.get("message"), config.get("data")
    if message is None and data is None:
        raise invalid("an a2a step needs config.message or config.data", "config.message",
                      "MISSING_CONFIG")  # fmt: skip
    if message is not None and not isinstance(message, str):
        raise invalid("message must be text", "config.message")
    if data is not None and not isinstance(data, dict) and not _templated(data):
        raise invalid("data must be an object", "config.data")
    protocol = config.get("protocol", "auto")
    if protocol not in A2A_PROTOCOLS:
        raise invalid(f"protocol must be one of {', '.join(A2A_PROTOCOLS)}", "config.protocol")
    timeout = config.get("timeout_seconds")
    if _out_of_range(timeout, MAX_A2A_WAIT_SECONDS):
        raise invalid(
            f"timeout_seconds must be above 0 and at most {MAX_A2A_WAIT_SECONDS}",
            "config.timeout_seconds",
        )
