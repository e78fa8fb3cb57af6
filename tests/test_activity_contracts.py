"""Activity contracts and what workflow code loads, checked without a Temporal server.

Workflows schedule activities through the contracts in ``workflows.activities``;
the worker registers implementations under the same names. A renamed or retyped
implementation would only show up as a failed run, so it fails here instead.
Workflow modules, and the pure modules the sandbox passes through to them, must
never load an I/O library: each is imported in a fresh interpreter and checked.
"""

from __future__ import annotations

import inspect
import json
import pkgutil
import subprocess
import sys
import typing
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity

import workflows
from tests.conftest import make_settings
from workers.main import WORKFLOW_PASSTHROUGH_MODULES, WorkerResources, activities_by_queue
from workflows import activities as declarations
from workflows.activities import EXTRACT_TEXT, Activity, ActivityDef
from workflows.document_payloads import ChunkInput, ExtractInput, ExtractResult, FinishInput

REPO = Path(__file__).resolve().parent.parent

# Libraries that do I/O (and the engine's database layer): none may load with workflow code.
FORBIDDEN = (
    "sqlalchemy",
    "httpx",
    "redis",
    "engine.db",
    "psycopg",
    "aiosqlite",
    "boto3",
    "qdrant_client",
)

WORKFLOW_MODULES = sorted(
    f"{workflows.__name__}.{module.name}" for module in pkgutil.iter_modules(workflows.__path__)
)
PASSTHROUGH_ENGINE_MODULES = sorted(
    m for m in WORKFLOW_PASSTHROUGH_MODULES if m.startswith("engine.")
)


def contracts() -> dict[str, ActivityDef[Any, Any]]:
    """Every contract declared in ``workflows.activities``, by activity name."""
    found = [value for value in vars(declarations).values() if isinstance(value, ActivityDef)]
    by_name = {contract.name.value: contract for contract in found}
    assert len(by_name) == len(found), "two contracts declare the same activity name"
    return by_name


def registered_name(fn: Callable[..., Any]) -> str | None:
    # The SDK keeps the name on its (private) definition; there is no public accessor.
    definition = activity._Definition.from_callable(fn)
    return None if definition is None or definition.name is None else str(definition.name)


def contract_problems(
    implementations: Iterable[Callable[..., Any]], by_name: Mapping[str, ActivityDef[Any, Any]]
) -> list[str]:
    """How each implementation departs from its contract (empty: none does)."""
    problems = []
    for fn in implementations:
        where = getattr(fn, "__qualname__", repr(fn))
        name = registered_name(fn)
        contract = by_name.get(name) if name is not None else None
        if contract is None:
            problems.append(f"{where} is registered as {name!r}, which no contract declares")
            continue
        hints = typing.get_type_hints(fn)
        params = [hints.get(param) for param in inspect.signature(fn).parameters]
        if params != [contract.arg_type]:
            problems.append(f"{where} takes {params}, {name} declares [{contract.arg_type}]")
        if hints.get("return") is not contract.result_type:
            problems.append(
                f"{where} returns {hints.get('return')}, {name} declares {contract.result_type}"
            )
    return problems


@pytest.fixture
async def registered(tmp_path: Path) -> AsyncIterator[list[Callable[..., Any]]]:
    """Every activity implementation the worker registers, on any queue (clients not used)."""
    resources = WorkerResources.open(make_settings(tmp_path))
    try:
        queues = activities_by_queue("contract-test", resources)
        yield [fn for served in queues.values() for fn in served]
    finally:
        await resources.close()


def test_every_name_has_one_contract() -> None:
    assert sorted(contracts()) == sorted(name.value for name in Activity)


async def test_registered_activities_match_their_contracts(
    registered: list[Callable[..., Any]],
) -> None:
    assert contract_problems(registered, contracts()) == []


async def test_every_contract_has_an_implementation(registered: list[Callable[..., Any]]) -> None:
    implemented = {registered_name(fn) for fn in registered}
    assert sorted(set(contracts()) - implemented) == []


def test_a_renamed_or_retyped_implementation_is_reported() -> None:
    class Drifted:
        @activity.defn(name="extract_texts")
        async def renamed(self, params: ExtractInput) -> ExtractResult:
            raise NotImplementedError

        @activity.defn(name=Activity.EXTRACT_TEXT)
        async def wrong_argument(self, params: ChunkInput) -> ExtractResult:
            raise NotImplementedError

        @activity.defn(name=Activity.FINISH_DOCUMENT)
        async def wrong_result(self, params: FinishInput) -> bool:
            raise NotImplementedError

        @EXTRACT_TEXT.defn
        async def faithful(self, params: ExtractInput) -> ExtractResult:
            raise NotImplementedError

    drifted = Drifted()
    problems = contract_problems(
        [drifted.renamed, drifted.wrong_argument, drifted.wrong_result, drifted.faithful],
        contracts(),
    )
    assert [problem.split(" ", 1)[0] for problem in problems] == [
        Drifted.renamed.__qualname__,
        Drifted.wrong_argument.__qualname__,
        Drifted.wrong_result.__qualname__,
    ]


def modules_loaded_by(module: str) -> set[str]:
    """``sys.modules`` after importing ``module`` in a fresh interpreter."""
    script = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def forbidden_in(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


@pytest.mark.parametrize("module", WORKFLOW_MODULES)
def test_workflow_module_loads_no_io_library(module: str) -> None:
    loaded = modules_loaded_by(module)
    assert forbidden_in(loaded) == []
    # Engine code reaches workflows only through the sandbox's reviewed pass-through
    # list (workers.main.WORKFLOW_PASSTHROUGH_MODULES) and the packages holding it.
    allowed = {
        ".".join(name.split(".")[:depth])
        for name in PASSTHROUGH_ENGINE_MODULES
        for depth in range(1, name.count(".") + 2)
    }
    engine_modules = {m for m in loaded if m == "engine" or m.startswith("engine.")}
    assert sorted(engine_modules - allowed) == []


@pytest.mark.parametrize("module", PASSTHROUGH_ENGINE_MODULES)
def test_passed_through_module_loads_no_io_library(module: str) -> None:
    assert forbidden_in(modules_loaded_by(module)) == []


def test_the_whole_engine_is_not_passed_through() -> None:
    assert "engine" not in WORKFLOW_PASSTHROUGH_MODULES
    assert PASSTHROUGH_ENGINE_MODULES, "workflows import engine.platform.queues at least"
