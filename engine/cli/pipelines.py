"""``weft pipelines``: register and run pipeline definitions through the REST API.

Everything goes through the SDK's ``WeftClient``, so the command works against
any Weftworks server it can reach (``--api``, else ``WEFT_API_URL``, else this
machine's configured API) with a key (``--api-key``, else ``WEFT_API_KEY``).
It never touches the database or Temporal itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.platform.errors import WeftError
from engine.platform.settings import Settings

if TYPE_CHECKING:
    from engine.sdk import Pipeline, WeftClient

API_URL_ENV = "WEFT_API_URL"
API_KEY_ENV = "WEFT_API_KEY"


class PipelineCommandError(WeftError):
    """A failure of a ``weft pipelines`` command, reported as one line."""


def run_command(settings: Settings, args: argparse.Namespace) -> int:
    from engine.sdk import ApiError, WaitTimeout

    try:
        if args.pipelines_command == "apply":
            return apply(settings, args)
        return run(settings, args)
    except ApiError as exc:
        raise PipelineCommandError(f"the API refused: {exc}") from None
    except WaitTimeout as exc:
        raise PipelineCommandError(str(exc)) from None


def client(settings: Settings, args: argparse.Namespace) -> WeftClient:
    from engine.sdk import WeftClient

    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    url = args.api or os.environ.get(API_URL_ENV) or f"http://{host}:{settings.api_port}"
    key = args.api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise PipelineCommandError(f"an API key is needed: pass --api-key or set {API_KEY_ENV}")
    try:
        return WeftClient(url, api_key=key)
    except ValueError as exc:
        raise PipelineCommandError(str(exc)) from None


# --- apply ---------------------------------------------------------------------------------


def load_definition(path: Path) -> Pipeline | dict[str, Any]:
    """A definition file: auterity's (or z2's) JSON or YAML shape, or a Python file
    with a module-level ``pipeline`` built with the SDK."""
    from engine.sdk import Pipeline

    if not path.is_file():
        raise PipelineCommandError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".py":
        return _from_python(path)
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise PipelineCommandError(f"{path}: not valid JSON: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        body = _yaml(path, text)
    else:
        raise PipelineCommandError(f"{path}: use a .json, .yaml, .yml or .py file")
    if isinstance(body, Pipeline):
        return body
    if not isinstance(body, dict) or "name" not in body:
        raise PipelineCommandError(f"{path}: a definition is an object with a name")
    if "steps" not in body and "definition" not in body:
        raise PipelineCommandError(f"{path}: a definition needs steps (or definition.nodes)")
    return body


def _yaml(path: Path, text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise PipelineCommandError(
            f"{path}: reading YAML needs PyYAML (pip install pyyaml); or use JSON"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineCommandError(f"{path}: not valid YAML: {exc}") from None


def _from_python(path: Path) -> Pipeline | dict[str, Any]:
    from engine.sdk import Pipeline

    name = f"weft_pipeline_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PipelineCommandError(f"{path}: cannot load this Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # it may import its neighbours
    try:
        spec.loader.exec_module(module)
    except WeftError:
        raise  # an invalid pipeline: the engine's own message
    except Exception as exc:  # the user's code failed: one line that says where
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
        raise PipelineCommandError(f"{path}{where}: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(str(path.parent))
    found = getattr(module, "pipeline", None)
    if isinstance(found, Pipeline | dict):
        return found
    raise PipelineCommandError(
        f"{path}: define a module-level `pipeline` (an engine.sdk.Pipeline)"
        + (f", not a {type(found).__name__}" if found is not None else "")
    )


def apply(settings: Settings, args: argparse.Namespace) -> int:
    """Create the workflow (or, with ``--id``, replace that one's definition); print its id."""
    definition = load_definition(Path(args.file))
    with client(settings, args) as api:
        if args.id:
            workflow = api.workflows.update(args.id, definition)
        else:
            workflow = api.workflows.create(definition)
    print(workflow.id)
    return 0


# --- run ---------------------------------------------------------------------------------


def input_data(value: str | None) -> dict[str, Any]:
    """``--input``: a JSON object, or ``@file.json``."""
    if not value:
        return {}
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise PipelineCommandError(f"--input {value}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PipelineCommandError(f"--input is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PipelineCommandError('--input must be a JSON object, e.g. \'{"name": "Ada"}\'')
    return data


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Execute a workflow; print the execution id, or with ``--wait`` its outcome as JSON
    (exit status 1 unless it completed)."""
    values = input_data(args.input)
    with client(settings, args) as api:
        started = api.workflows.execute(args.workflow_id, input_data=values, priority=args.priority)
        if not args.wait:
            print(started.id)
            return 0
        done = api.executions.wait(started.id, timeout=args.timeout)
    outcome = {
        "execution_id": done.id,
        "workflow_id": done.workflow_id,
        "status": done.status,
        "duration": done.duration,
        "outputs": done.output_data,
        "error_code": done.error_code,
        "error": done.error,
    }
    print(json.dumps(outcome, indent=2, ensure_ascii=False, default=str))
    return 0 if done.succeeded else 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """``weft pipelines apply|run`` (``sub``: the top-level subparsers)."""
    group = sub.add_parser("pipelines", help="register and run pipelines through the REST API")
    commands = group.add_subparsers(dest="pipelines_command", required=True)

    def connection(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--api", help=f"the API's base URL (default: ${API_URL_ENV} or "
                            "this machine's WEFT_API_HOST:WEFT_API_PORT)")  # fmt: skip
        parser.add_argument("--api-key", help=f"an API key (default: ${API_KEY_ENV})")

    apply_cmd = commands.add_parser(
        "apply", help="create a workflow from a .json/.yaml definition or a .py SDK file"
    )
    apply_cmd.add_argument("file", help="auterity JSON/YAML, or Python defining `pipeline`")
    apply_cmd.add_argument("--id", help="replace this workflow's definition instead")
    connection(apply_cmd)
    run_cmd = commands.add_parser("run", help="execute a workflow")
    run_cmd.add_argument("workflow_id")
    run_cmd.add_argument("--input", help="input_data: a JSON object or @file.json")
    run_cmd.add_argument("--priority", default="normal", help="urgent, high, normal or low")
    run_cmd.add_argument("--wait", action="store_true", help="wait and print the outcome")
    run_cmd.add_argument("--timeout", type=float, default=600.0, help="seconds to --wait")
    connection(run_cmd)
    return group
