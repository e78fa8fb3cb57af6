"""Pipelines in code: the same definition model as z2's graph and auterity's steps.

::

    p = Pipeline("Onboarding", category="customer_service")
    welcome = p.email("welcome", to=p.input("customer_email"), subject="Welcome!")
    account = p.api_call("account", url="https://crm.example/customers", method="POST",
                         body={"email": p.input("customer_email")}, after=[welcome])
    p.ai_prompt("note", prompt=f"Write a note for customer {account.output['id']}")

A step's ``output`` (and ``Pipeline.input``) is a ``Ref``: in a config it
becomes the template string the engine renders at run time
(``{{steps.account.output.id}}``, ``{{customer_email}}``). A step that reads
another step's output depends on it without saying so; ``after`` adds
dependencies that carry no data. A step can only depend on steps added before
it, so a pipeline built here never has a cycle.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.pipelines.definition import (
    PipelineDefinition,
    RetrySpec,
    StepSpec,
    StepType,
    validate,
)
from engine.pipelines.templating import FILTERS, TemplateError, references


class Ref:
    """A value read at run time; ``str(ref)`` is its template, e.g. ``{{steps.a.output}}``."""

    __slots__ = ("path", "filter")

    def __init__(self, path: str, filter: str | None = None) -> None:
        if filter is not None and filter not in FILTERS:
            raise ValueError(f"unknown filter {filter!r}; choose from {', '.join(FILTERS)}")
        self.path = path
        self.filter = filter

    def __getitem__(self, key: str | int) -> Ref:
        """A part of the value: ``ref["id"]`` or ``ref[0]``."""
        if self.filter is not None:
            raise ValueError("a filtered value has no parts; index before filtering")
        part = f"[{key}]" if isinstance(key, int) else f".{key}"
        return Ref(self.path + part)

    def piped(self, filter: str) -> Ref:
        """The value through one of the template filters (json, upper, lower, length)."""
        return Ref(self.path, filter)

    def __str__(self) -> str:
        return "{{" + self.path + (f" | {self.filter}" if self.filter else "") + "}}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return f"Ref({str(self)!r})"


def _plain(value: Any) -> Any:
    """A config value as JSON: every ``Ref`` becomes its template string."""
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


@dataclass(frozen=True, eq=False)
class Step:
    """One step of a ``Pipeline`` (made by its methods, not directly)."""

    id: str
    type: StepType
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    when: dict[str, bool] = field(default_factory=dict)
    agent_id: str | None = None
    timeout_seconds: float | None = None
    retry: RetrySpec | None = None

    @property
    def output(self) -> Ref:
        """This step's output at run time (``{{steps.<id>.output}}``)."""
        return Ref(f"steps.{self.id}.output")

    def spec(self) -> StepSpec:
        return StepSpec(
            id=self.id,
            type=self.type,
            name=self.name,
            config=self.config,
            depends_on=list(self.depends_on),
            when=dict(self.when),
            agent_id=self.agent_id,
            timeout_seconds=self.timeout_seconds,
            retry=self.retry,
        )

    def auterity(self) -> dict[str, Any]:
        """The step as auterity's ``steps[]`` item."""
        body: dict[str, Any] = {
            "id": self.id,
            "type": self.type.value,
            "name": self.name,
            "config": self.config,
            "dependencies": list(self.depends_on),
        }
        if self.agent_id:
            body["agent_id"] = self.agent_id
        if self.when:
            body["when"] = dict(self.when)
        if self.timeout_seconds is not None:
            body["timeout_seconds"] = self.timeout_seconds
        if self.retry is not None:
            body["retry"] = self.retry.model_dump()
        return body


StepRef = Step | str


class Pipeline:
    """A pipeline definition built in code.

    Args:
        name: The workflow's name.
        description: What it is for.
        category: auterity's category (e.g. ``customer_service``).
    """

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        category: str | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.category = category
        self.steps: list[Step] = []

    @staticmethod
    def input(name: str) -> Ref:
        """A value of the execution's ``input_data`` (``{{name}}``)."""
        return Ref(name)

    def __getitem__(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    # --- adding steps ------------------------------------------------------------------

    def step(
        self,
        id: str,
        type: StepType | str,
        *,
        name: str = "",
        config: Mapping[str, Any] | None = None,
        after: Iterable[StepRef] = (),
        when: Mapping[StepRef, bool] | None = None,
        agent_id: str | None = None,
        timeout_seconds: float | None = None,
        retry: RetrySpec | None = None,
    ) -> Step:
        """Add a step of any type.

        Args:
            id: Unique within the pipeline (letters, digits, ``_.-``).
            type: A ``StepType`` or its name (``"ai_prompt"``).
            name: A title for the Web UI and logs.
            config: The step's settings; ``Ref`` values become templates.
            after: Steps this one waits for (besides those whose output it reads).
            when: Branches of condition steps this one runs on (``{check: True}``).
            agent_id: The agent an ``agent`` step calls.
            timeout_seconds: A limit on this step.
            retry: How often and how fast a failing step is tried again.

        Returns:
            The step; its ``output`` can feed later steps.
        """
        step_type = StepType(type)
        if any(step.id == id for step in self.steps):
            raise ValueError(f"the pipeline already has a step {id!r}")
        plain = _plain(dict(config or {}))
        branches = {self._known(key): bool(value) for key, value in (when or {}).items()}
        depends = [self._known(item) for item in after]
        depends += list(branches)
        depends += self._read_by(plain)
        created = Step(
            id=id,
            type=step_type,
            name=name,
            config=plain,
            depends_on=tuple(dict.fromkeys(depends)),
            when=branches,
            agent_id=agent_id,
            timeout_seconds=timeout_seconds,
            retry=retry,
        )
        self.steps.append(created)
        return created

    def _known(self, item: StepRef) -> str:
        step_id = item.id if isinstance(item, Step) else str(item)
        if not any(step.id == step_id for step in self.steps):
            raise ValueError(f"unknown step {step_id!r}: add a step before steps that follow it")
        return step_id

    def _read_by(self, config: dict[str, Any]) -> list[str]:
        """The steps (added so far) whose output ``config`` reads."""
        try:
            refs = references(config)
        except TemplateError:
            return []  # reported by validation, with the step's id
        known = {step.id for step in self.steps}
        return [ref.step for ref in refs if ref.step is not None and ref.step in known]

    def ai_prompt(
        self,
        id: str,
        prompt: Any,
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        fallback_model: str | None = None,
        name: str = "",
        after: Iterable[StepRef] = (),
        when: Mapping[StepRef, bool] | None = None,
        timeout_seconds: float | None = None,
        retry: RetrySpec | None = None,
    ) -> Step:
        """A model call; its output is the answer's text."""
        config = _given(
            prompt=prompt,
            model=model,
            system_prompt=system_prompt,
            temperature=temperature,
            max_tokens=max_tokens,
            fallback_model=fallback_model,
        )
        return self.step(
            id, StepType.AI_PROMPT, name=name, config=config, after=after, when=when,
            timeout_seconds=timeout_seconds, retry=retry,
        )  # fmt: skip

    def agent(
        self,
        id: str,
        agent_id: str,
        prompt: Any,
        *,
        name: str = "",
        after: Iterable[StepRef] = (),
        when: Mapping[StepRef, bool] | None = None,
        timeout_seconds: float | None = None,
        retry: RetrySpec | None = None,
    ) -> Step:
        """A call of one of the tenant's agents (its model, prompt and settings)."""
        return self.step(
            id, StepType.AGENT, name=name, config={"prompt": prompt}, after=after, when=when,
            agent_id=agent_id, timeout_seconds=timeout_seconds, retry=retry,
        )  # fmt: skip

    def api_call(
        self,
        id: str,
        url: Any,
        *,
        method: str = "GET",
        headers: Mapping[str, Any] | None = None,
        body: Any = None,
        name: str = "",
        after: Iterable[StepRef] = (),
        when: Mapping[StepRef, bool] | None = None,
        timeout_seconds: float | None = None,
        retry: RetrySpec | None = None,
    ) -> Step:
        """An HTTP request; its output is the response body (JSON when it is JSON)."""
        config = _given(url=url, method=method.upper(), headers=headers, body=body)
        return self.step(
            id, StepType.API_CALL, name=name, config=config, after=after, when=when,
            timeout_seconds=timeout_seconds, retry=retry,
        )  # fmt: skip

    def email(
        self,
        id: str,
        to: Any,
        *,
        subject: Any = None,
        body: Any = None,
        template: str | None = None,
        name: str = "",
        after: Iterable[StepRef] = (),
        when: Mapping[StepRef, bool] | None = None,
    ) -> Step:
        """An e-mail, sent once per execution however often the step is retried."""
        config = _given(to=to, subject=subject, body=body, template=template)
        return self.step(id, StepType.EMAIL, name=name, config=config, after=after, when=when)

    def transform(
        self,
        id: str,
        output: Any,
        *,
        name: str = "",
        after: Iterable[StepRef] = (),
        when: Mapping[StepRef, bool] | None = None,
    ) -> Step:
        """A value built from the input and earlier outputs (computed in the workflow)."""
        return self.step(
            id, StepType.TRANSFORM, name=name, config={"output": output}, after=after, when=when
        )

    def condition(
        self,
        id: str,
        value: Any,
        *,
        operator: str = "truthy",
        compare_to: Any = None,
        name: str = "",
        after: Iterable[StepRef] = (),
        when: Mapping[StepRef, bool] | None = None,
    ) -> Step:
        """A branch point: later steps run ``when={this: True}`` or ``{this: False}``."""
        config = _given(value=value, operator=operator, compare_to=compare_to)
        return self.step(id, StepType.CONDITION, name=name, config=config, after=after, when=when)

    def approval(
        self,
        id: str,
        *,
        message: Any = None,
        timeout_seconds: float | None = None,
        name: str = "",
        after: Iterable[StepRef] = (),
        when: Mapping[StepRef, bool] | None = None,
    ) -> Step:
        """Wait for a person to approve (``executions.approve``); rejection fails the run."""
        config = _given(message=message, timeout_seconds=timeout_seconds)
        return self.step(
            id, StepType.HUMAN_APPROVAL, name=name, config=config, after=after, when=when
        )

    def sub_workflow(
        self,
        id: str,
        workflow_id: str,
        *,
        input_data: Mapping[str, Any] | None = None,
        name: str = "",
        after: Iterable[StepRef] = (),
        when: Mapping[StepRef, bool] | None = None,
    ) -> Step:
        """Run another stored workflow of the tenant as a child; its results are the output."""
        config = {"workflow_id": workflow_id, "input_data": dict(input_data or {})}
        return self.step(
            id, StepType.SUB_WORKFLOW, name=name, config=config, after=after, when=when
        )

    # --- the result ----------------------------------------------------------------------

    def definition(self) -> PipelineDefinition:
        """The engine's definition model, validated (``InvalidDefinition`` if it cannot run).

        Agents are checked by the server, which knows the tenant's agents.
        """
        definition = PipelineDefinition(steps=[step.spec() for step in self.steps])
        validate(definition)
        return definition

    def to_auterity(self) -> dict[str, Any]:
        """The body of ``POST /api/workflows`` (auterity's shape), after validation."""
        self.definition()
        body: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "steps": [step.auterity() for step in self.steps],
        }
        if self.category is not None:
            body["category"] = self.category
        return body

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_auterity(), indent=indent, ensure_ascii=False)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={[step.id for step in self.steps]})"


def _given(**values: Any) -> dict[str, Any]:
    """The config keys that were given (None leaves a key out)."""
    return {key: value for key, value in values.items() if value is not None}
