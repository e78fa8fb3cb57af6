"""Query parameters held to what the schema declares.

- ``PageNumber``, ``Offset``, ``Position``: bounded, so a page's offset and a
  stream position stay inside the database's 64-bit integers (past them the
  database refused the query, and the caller got a 500).
- ``refuse_repeated_values``: a parameter that takes one value, given more than
  once (``?status=a&status=b``), is refused with 422 instead of one of the
  values being picked silently (an app-wide dependency).
"""

from __future__ import annotations

import typing
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection

MAX_PAGE = 1_000_000
MAX_OFFSET = 1_000_000_000
MAX_POSITION = 2**63 - 1

PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
Position = Annotated[int, Query(ge=0, le=MAX_POSITION)]

_MANY = (list, set, tuple, frozenset)
_single_valued_by_route: dict[int, frozenset[str]] = {}


def _takes_many(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _takes_many(typing.get_args(annotation)[0])
    if origin in (typing.Union, type(int | None)):
        return any(_takes_many(arg) for arg in typing.get_args(annotation))
    return annotation in _MANY or origin in _MANY


def _query_fields(dependant: Any) -> Iterator[Any]:
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_fields(sub)


def single_valued(route: Any) -> frozenset[str]:
    """The query parameters of ``route`` that take one value (cached per route)."""
    found = _single_valued_by_route.get(id(route))
    if found is None:
        dependant = getattr(route, "dependant", None)
        fields = list(_query_fields(dependant)) if dependant is not None else []
        found = frozenset(
            field.alias for field in fields if not _takes_many(field.field_info.annotation)
        )
        _single_valued_by_route[id(route)] = found
    return found


async def refuse_repeated_values(connection: HTTPConnection) -> None:
    if connection.scope["type"] != "http":
        return
    counts = Counter(key for key, _ in connection.query_params.multi_items())
    repeated = {key for key, count in counts.items() if count > 1}
    if not repeated:
        return
    twice = sorted(repeated & single_valued(connection.scope.get("route")))
    if twice:
        raise RequestValidationError(
            [
                {
                    "type": "too_many_values",
                    "loc": ("query", name),
                    "msg": "given more than once; this parameter takes one value",
                }
                for name in twice
            ]
        )
