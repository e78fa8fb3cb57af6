"""The ``condition`` step: compare one value, pure and deterministic.

Config: ``value`` (usually a template such as ``{{steps.score.output.total}}``),
``operator`` (default ``truthy``) and ``compare_to``. The result picks the
branch: edges (or ``when``) from a condition step name ``true`` or ``false``.
"""

from __future__ import annotations

from typing import Any

OPERATORS = (
    "truthy", "equals", "not_equals", "contains", "greater_than", "less_than", "exists",
)  # fmt: skip


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def evaluate(config: dict[str, Any]) -> bool:
    """The condition's truth; an unknown operator or an incomparable pair raises ValueError."""
    value = config.get("value")
    operator = str(config.get("operator", "truthy"))
    other = config.get("compare_to")
    if operator == "truthy":
        return bool(value) and value not in ("false", "0", "no")
    if operator == "exists":
        return value is not None and value != ""
    if operator == "equals":
        return bool(value == other or str(value) == str(other))
    if operator == "not_equals":
        return not (value == other or str(value) == str(other))
    if operator == "contains":
        if isinstance(value, str):
            return str(other) in value
        if isinstance(value, list | dict):
            return other in value
        return False
    if operator in ("greater_than", "less_than"):
        left, right = _number(value), _number(other)
        if left is None or right is None:
            raise ValueError(f"{operator} needs two numbers, got {value!r} and {other!r}")
        return left > right if operator == "greater_than" else left < right
    raise ValueError(f"unknown operator {operator!r}; choose from {', '.join(OPERATORS)}")
