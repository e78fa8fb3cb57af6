"""``{{variable}}`` templates in step configs, rendered without code execution.

A template names a value by path: ``{{customer_email}}`` (from the run's
``input_data``), ``{{input.customer.name}}``, ``{{steps.setup-account.output.id}}``
or ``{{steps.search.output.items[0]}}`` (step ids may hold hyphens, as in
auterity's ``step-1``). One optional filter: ``json``, ``upper``, ``lower``,
``length``. There is nothing to evaluate — no expressions, calls or
attribute access on Python objects — so a tenant's template cannot run code;
it only reads the JSON values of the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_SEGMENT = r"[A-Za-z_][A-Za-z0-9_\-]*"
_PATH = rf"{_SEGMENT}(?:\.[A-Za-z0-9_\-]+|\[\d+\])*"
TEMPLATE = re.compile(r"\{\{\s*(" + _PATH + r")\s*(?:\|\s*([a-z]+)\s*)?\}\}")
_OPEN = re.compile(r"\{\{(.*?)\}\}")
_PARTS = re.compile(r"\.?([A-Za-z0-9_\-]+)|\[(\d+)\]")
FILTERS = ("json", "upper", "lower", "length")


class TemplateError(ValueError):
    """A template that names a missing value or is malformed."""


@dataclass(frozen=True)
class Ref:
    text: str  # the path as written, e.g. "steps.step-1.output"
    root: str  # "customer_email", "input" or "steps"
    step: str | None  # the step a ``steps.<id>…`` path reads


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _parts(path: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _PARTS.findall(path)]


def references(value: Any) -> list[Ref]:
    """Every ``{{…}}`` in ``value`` (nested strings too); a malformed one raises."""
    refs = []
    for text in _strings(value):
        for match in _OPEN.finditer(text):
            whole = TEMPLATE.fullmatch(match.group(0))
            if whole is None or (whole.group(2) and whole.group(2) not in FILTERS):
                raise TemplateError(f"malformed template {match.group(0)!r}")
            path = whole.group(1)
            parts = _parts(path)
            root = str(parts[0])
            step = None
            if root == "steps":
                if len(parts) < 2 or not isinstance(parts[1], str):
                    raise TemplateError(f"{{{{{path}}}}} must name a step: steps.<id>…")
                step = parts[1]
            refs.append(Ref(path, root, step))
    return refs


def lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in _parts(path):
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                raise TemplateError(f"{{{{{path}}}}}: no item {part}")
            value = value[part]
        else:
            if not isinstance(value, Mapping) or part not in value:
                raise TemplateError(f"{{{{{path}}}}}: nothing named {part!r}")
            value = value[part]
    return value


def _apply(value: Any, name: str | None) -> Any:
    if name == "json":
        return json.dumps(value, ensure_ascii=False)
    if name == "upper":
        return str(value).upper()
    if name == "lower":
        return str(value).lower()
    if name == "length":
        return len(value) if isinstance(value, list | str | Mapping) else 0
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """``value`` with every template filled from ``context`` (JSON values only).

    A string that is exactly one template keeps the value's type (a step
    output object stays an object); templates inside longer text become text.
    """
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value.strip())
        if whole is not None and value.strip() == value:
            return _apply(lookup(context, whole.group(1)), whole.group(2))
        references(value)  # refuse malformed templates before substituting
        return TEMPLATE.sub(lambda m: _text(_apply(lookup(context, m.group(1)), m.group(2))), value)
    if isinstance(value, Mapping):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value
