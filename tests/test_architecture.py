"""The layout keeps its promises: a newcomer can trust the folder names.

These read the source (no imports), so a change that breaks a rule fails here
with the module and the line that broke it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "api", "workers", "workflows")
# The only modules of engine/ allowed outside a capability package.
ENGINE_ROOTS = {"__init__.py", "py.typed"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every first-party module ``path`` imports (at any depth, outside
    ``if TYPE_CHECKING``), with its line."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    known = {module_name(p) for p in sources()}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:  # `from engine.ai import chat` imports engine.ai.chat
                candidate = f"{node.module}.{alias.name}"
                yield (candidate if candidate in known else node.module), node.lineno


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sources():
        graph[module_name(path)] = {target for target, _ in imports(path)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_circles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_circle() -> None:
    # The check above is only as good as this: a planted circle is found.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_engine_modules_live_in_capability_packages() -> None:
    loose = [p.name for p in (ROOT / "engine").iterdir() if p.is_file()]
    assert set(loose) <= ENGINE_ROOTS, f"modules outside a capability package: {loose}"
    for package in (p for p in (ROOT / "engine").iterdir() if p.is_dir()):
        if package.name.startswith(("_", ".")):
            continue
        assert (package / "__init__.py").exists(), f"engine/{package.name} is not a package"
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc, f"engine/{package.name}/__init__.py should say what the capability holds"


def _calls(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            yield name, node.lineno


def test_routes_hold_no_run_options_and_build_no_providers() -> None:
    """A route calls one engine service; start options and provider clients live there."""
    forbidden = {
        "start_workflow", "execute_workflow", "run_attributes", "RunOptions",
        "embedding_provider", "provider_client", "decrypt_secret", "endpoint_embedder",
    }  # fmt: skip
    found = [
        f"{path.relative_to(ROOT)}:{line} calls {name}"
        for path in sorted((ROOT / "api").rglob("*.py"))
        for name, line in _calls(path)
        if name in forbidden
    ]
    assert not found, "\n".join(found)


def test_workflow_modules_import_no_io_and_no_workers_or_api() -> None:
    """Workflow code is deterministic: no I/O libraries, and only pure engine modules."""
    io_libraries = {"sqlalchemy", "httpx", "redis", "aiosqlite", "psycopg", "boto3", "os"}
    found = []
    for path in sorted((ROOT / "workflows").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if (
                    top in io_libraries
                    or top in ("api", "workers")
                    or name.startswith(
                        ("engine.db", "engine.storage", "engine.vectors", "engine.identity")
                    )
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not found, "\n".join(found)


def test_imports_flow_one_way() -> None:
    """engine never imports api or workers; workers never import api."""
    found = []
    for path in sources():
        source = module_name(path)
        for target, line in imports(path):
            layer, target_layer = source.split(".")[0], target.split(".")[0]
            if (layer == "engine" and target_layer in ("api", "workers") and
                    not source.startswith("engine.cli")) or (
                layer == "workers" and target_layer == "api"
            ):  # fmt: skip
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not found, "\n".join(found)
