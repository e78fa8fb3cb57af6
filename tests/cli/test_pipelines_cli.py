"""`weft pipelines apply|run` as a user runs them: subprocesses against the API on a
loopback port, with a real worker behind it.

The commands go through the SDK's HTTP client only and never load the Temporal
SDK, so their exit is clean (sdk-python#300 aborts only processes that started
its runtime): the tests hold them to exit status 0.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from engine.platform.settings import Settings
from tests.cli.test_cli import weft
from tests.conftest import DocStack, free_port, worker_stack
from tests.fake_providers import serve_app

AUTERITY_JSON = {
    "name": "Greeter from JSON",
    "category": "demo",
    "steps": [
        {"id": "hello", "type": "transform", "config": {"output": "Hello {{name}}"}},
        {"id": "shout", "type": "transform", "dependencies": ["hello"],
         "config": {"output": "{{steps.hello.output | upper}}"}},
    ],
}  # fmt: skip
PYTHON_FILE = """\
from engine.sdk import Pipeline

pipeline = Pipeline("Greeter from Python", category="demo")
hello = pipeline.transform("hello", output=f"Hello {pipeline.input('name')}")
pipeline.transform("shout", output=hello.output.piped("upper"))
"""
YAML_FILE = """\
name: Greeter from YAML
steps:
  - id: hello
    type: transform
    config:
      output: "Hi {{name}}"
"""


@dataclass
class Cli:
    url: str
    api: DocStack
    folder: Path

    async def weft(self, *args: str, key: str | None = None) -> subprocess.CompletedProcess:
        """``weft`` in a subprocess, off this event loop (the API is served on it)."""
        connection = ["--api", self.url, "--api-key", key or self.api.tenant.key]
        return await asyncio.to_thread(weft, *args, *connection, cwd=self.folder)

    def write(self, name: str, text: str) -> str:
        path = self.folder / name
        path.write_text(text)
        return str(path)


@pytest.fixture
async def cli(
    settings: Settings, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[Cli]:
    async with (
        worker_stack(settings, temporal_env, "cli") as api,
        serve_app(create_app(api.settings), lifespan="on") as url,
    ):
        folder = tmp_path / "work"
        folder.mkdir()
        yield Cli(url, api, folder)


async def read_workflow(cli: Cli, workflow_id: str) -> dict:
    response = await cli.api.http.get(f"/api/workflows/{workflow_id}", headers=cli.api.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_apply_registers_json_python_and_yaml_definitions(cli: Cli) -> None:
    path = cli.write("greeter.json", json.dumps(AUTERITY_JSON))
    from_json = await cli.weft("pipelines", "apply", path)
    assert from_json.returncode == 0, from_json.stderr
    json_id = from_json.stdout.strip()
    assert json_id.startswith("wf_") and from_json.stderr == ""
    stored = await read_workflow(cli, json_id)
    assert stored["name"] == "Greeter from JSON" and stored["category"] == "demo"
    assert [s["dependencies"] for s in stored["steps"]] == [[], ["hello"]]

    from_python = await cli.weft("pipelines", "apply", cli.write("greeter.py", PYTHON_FILE))
    assert from_python.returncode == 0, from_python.stderr
    python_id = from_python.stdout.strip()
    stored = await read_workflow(cli, python_id)
    assert stored["name"] == "Greeter from Python"
    assert stored["steps"][1]["config"] == {"output": "{{steps.hello.output | upper}}"}
    assert stored["steps"][1]["dependencies"] == ["hello"]

    from_yaml = await cli.weft("pipelines", "apply", cli.write("greeter.yaml", YAML_FILE))
    assert from_yaml.returncode == 0, from_yaml.stderr
    assert (await read_workflow(cli, from_yaml.stdout.strip()))["name"] == "Greeter from YAML"

    # --id replaces that workflow's definition (its id stays).
    edited = {**AUTERITY_JSON, "name": "Greeter, edited"}
    again = await cli.weft(
        "pipelines", "apply", cli.write("edited.json", json.dumps(edited)), "--id", json_id
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == json_id
    assert (await read_workflow(cli, json_id))["name"] == "Greeter, edited"


async def test_run_executes_and_waits_for_the_outcome(cli: Cli) -> None:
    applied = await cli.weft("pipelines", "apply", cli.write("greeter.py", PYTHON_FILE))
    workflow_id = applied.stdout.strip()

    waited = await cli.weft("pipelines", "run", workflow_id, "--input", '{"name": "Ada"}', "--wait")
    assert waited.returncode == 0, waited.stderr
    outcome = json.loads(waited.stdout)
    assert outcome["status"] == "completed" and outcome["workflow_id"] == workflow_id
    assert outcome["outputs"] == {"hello": "Hello Ada", "shout": "HELLO ADA"}

    cli.write("input.json", '{"name": "Bo"}')
    started = await cli.weft("pipelines", "run", workflow_id, "--input", "@input.json")
    assert started.returncode == 0, started.stderr
    execution_id = started.stdout.strip()
    assert execution_id.startswith("exe_")
    response = await cli.api.http.get(f"/api/executions/{execution_id}", headers=cli.api.headers)
    assert response.json()["input_data"] == {"name": "Bo"}


@pytest.mark.parametrize(
    ("files", "args", "words"),
    [
        ({"bad.json": json.dumps({"name": "x", "steps": [{"type": "teleport"}]})},
         ["pipelines", "apply", "bad.json"], "the API refused: VALIDATION_ERROR (HTTP 422)"),
        ({"empty.py": "x = 1\n"}, ["pipelines", "apply", "empty.py"],
         "define a module-level `pipeline`"),
        ({"loose.py": "from engine.sdk import Pipeline\npipeline = Pipeline('x')\n"},
         ["pipelines", "apply", "loose.py"], "a workflow needs at least one step"),
        ({"broken.json": "{"}, ["pipelines", "apply", "broken.json"], "not valid JSON"),
        ({"notes.txt": "hi"}, ["pipelines", "apply", "notes.txt"], "use a .json, .yaml"),
        ({}, ["pipelines", "apply", "missing.json"], "no such file"),
        ({}, ["pipelines", "run", "wf_nope"], "WORKFLOW_NOT_FOUND (HTTP 404)"),
        ({}, ["pipelines", "run", "wf_nope", "--input", "[1]"], "must be a JSON object"),
    ],
)  # fmt: skip
async def test_failures_are_one_line_errors(
    cli: Cli, files: dict[str, str], args: list[str], words: str
) -> None:
    for name, text in files.items():
        cli.write(name, text)
    result = await cli.weft(*args)
    assert result.returncode == 1, result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("weft: error: ") and words in line, line


async def test_a_wrong_key_or_an_unreachable_api_is_reported(cli: Cli) -> None:
    path = cli.write("greeter.json", json.dumps(AUTERITY_JSON))
    denied = await cli.weft("pipelines", "apply", path, key="znt_wrong")
    assert denied.returncode == 1 and "INVALID_API_KEY (HTTP 401)" in denied.stderr

    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = await asyncio.to_thread(
        weft, "pipelines", "apply", path, "--api", nowhere, "--api-key", "k", cwd=cli.folder
    )
    assert unreachable.returncode == 1
    assert f"cannot reach the API at {nowhere}" in unreachable.stderr
    keyless = await asyncio.to_thread(
        weft, "pipelines", "apply", path, "--api", cli.url, cwd=cli.folder
    )
    assert keyless.returncode == 1 and "an API key is needed" in keyless.stderr
    assert "Traceback" not in denied.stderr + unreachable.stderr + keyless.stderr
