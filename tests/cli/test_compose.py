"""docker-compose.yml: the scale-out stack is complete and agrees with the code.

No Docker engine runs here, so the file is parsed and checked against Settings and
the task queues: a renamed setting or queue breaks this test, not a deployment.
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from engine.platform import egress
from engine.platform.queues import ALL_QUEUES, parse_queues
from engine.platform.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROJECT_SERVICES = {"api", "migrate", "worker-io", "worker-cpu", "worker-ml"}
WORKERS = sorted(name for name in PROJECT_SERVICES if name.startswith("worker-"))
VARIABLE = re.compile(r"\$\{(\w+)(:-|:\?)([^}]*)\}")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose["services"]


def substitute(value: str) -> str:
    """Compose interpolation: ``${NAME:-default}`` gives default, ``${NAME:?msg}`` a value."""
    result = VARIABLE.sub(lambda m: m.group(3) if m.group(2) == ":-" else "s" * 40, value)
    assert "${" not in result, f"unsupported interpolation in {value!r}"
    return result


def accepted_env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"WEFT_{name.upper()}")
        if isinstance(field.validation_alias, AliasChoices):
            names.update(c for c in field.validation_alias.choices if isinstance(c, str))
    return names


def command_args(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else list(command)


def test_the_whole_stack_is_there(services: dict[str, dict[str, Any]]) -> None:
    expected = {"postgres", "temporal-schema", "temporal", "temporal-setup", "temporal-ui",
                "redis", "qdrant"} | PROJECT_SERVICES  # fmt: skip
    assert expected <= set(services)


def test_images_are_pinned_and_project_services_build_the_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        image = service["image"]
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest" and any(ch.isdigit() for ch in tag), (name, image)
    built = {name for name, service in services.items() if "build" in service}
    assert built == PROJECT_SERVICES
    for name in built:
        dockerfile = services[name]["build"].get("dockerfile", "Dockerfile")
        assert (ROOT / dockerfile).is_file(), name
    assert (ROOT / ".dockerignore").is_file()


@pytest.mark.parametrize("name", sorted(PROJECT_SERVICES))
def test_project_environment_names_are_real_settings(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    environment = services[name]["environment"]
    unknown = set(environment) - accepted_env_names()
    assert not unknown, f"{name}: not Settings fields: {sorted(unknown)}"
    assert {"DATABASE_URL", "WEFT_DATABASE_URL"} & set(environment)
    assert {"TEMPORAL_ADDRESS", "REDIS_URL", "WEFT_JWT_SECRET", "WEFT_ENCRYPTION_KEYS",
            "WEFT_ENV"} <= set(environment)  # fmt: skip
    assert "weft-data:/data" in services[name]["volumes"]


def test_workers_serve_every_queue_exactly_once(services: dict[str, dict[str, Any]]) -> None:
    served: Counter[str] = Counter()
    for name in WORKERS:
        args = command_args(services[name])
        assert args[:2] == ["weft", "worker"], name
        served.update(parse_queues(args[args.index("--queues") + 1]))
    assert served == Counter(ALL_QUEUES)


def test_ports_healthchecks_and_start_order(services: dict[str, dict[str, Any]]) -> None:
    assert "8000:8000" in services["api"]["ports"]
    assert any(str(port).startswith("8233:") for port in services["temporal-ui"]["ports"])
    for name in ("postgres", "temporal", "redis", "api"):
        assert "healthcheck" in services[name], name
    assert "/api/ready" in " ".join(services["api"]["healthcheck"]["test"])
    depends = services["api"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["temporal"]["condition"] == "service_healthy"
    assert command_args(services["migrate"]) == ["weft", "migrate"]
    assert services["migrate"]["restart"] == "no"


def test_compose_environment_passes_settings_validation(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = {  # a name without a value is passed through from the shell (unset here)
        key: substitute(str(value))
        for key, value in services["api"]["environment"].items()
        if value is not None
    }
    database_url = environment["DATABASE_URL"]
    Settings(database_url=database_url, env="production", jwt_secret="x" * 40,
             encryption_keys=["k" * 40])  # fmt: skip

    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.env == "production"
    assert settings.resolved_database_url.startswith("postgresql+psycopg://weft:weft@postgres")
    assert settings.temporal_target == "temporal:7233"
    assert settings.redis_url == "redis://redis:6379/0"
    assert str(settings.data_dir) == "/data"
    assert settings.vector_index == "qdrant" and settings.qdrant_url == "http://qdrant:6333"


def test_the_image_can_process_documents_with_cpu_torch(
    services: dict[str, dict[str, Any]],
) -> None:
    """Chunking, embeddings, OCR and RAG need the ML extra, the Qdrant index its
    extra; torch comes CPU-only at pyproject's pinned version."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (torch_pin,) = [d for d in pyproject["project"]["optional-dependencies"]["ml"]
                    if d.startswith("torch==")]  # fmt: skip
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG TORCH_VERSION={torch_pin.removeprefix('torch==')}" in dockerfile
    assert '--index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}"' in dockerfile
    assert 'pip install --no-cache-dir ".[${EXTRAS}]"' in dockerfile
    for name in PROJECT_SERVICES:
        args = services[name]["build"]["args"]
        extras = args["EXTRAS"].split(",")
        # Qdrant: the stack's vector index (WEFT_VECTOR_INDEX=qdrant) needs its client.
        assert {"ml", "qdrant"} <= set(extras), name
        assert substitute(args["TORCH_INDEX_URL"]), name  # required: compose refuses without


def test_temporal_runs_the_server_image_after_its_schema_job(
    services: dict[str, dict[str, Any]],
) -> None:
    images = {name: service["image"] for name, service in services.items()}
    assert not [image for image in images.values() if "auto-setup" in image]
    server_version = images["temporal"].removeprefix("temporalio/server:")
    assert images["temporal"].startswith("temporalio/server:")
    schema = services["temporal-schema"]
    assert schema["image"].startswith(f"temporalio/admin-tools:{server_version}")
    assert services["temporal"]["depends_on"]["temporal-schema"]["condition"] == (
        "service_completed_successfully"
    )
    script = "\n".join(schema["command"])
    for word in ("create", "setup-schema", "update-schema", "temporal_visibility"):
        assert word in script
    setup = "\n".join(services["temporal-setup"]["command"])
    assert "namespace create" in setup  # auto-setup used to create `default`


def test_qdrant_server_matches_the_client_and_workers_have_healthchecks(
    services: dict[str, dict[str, Any]],
) -> None:
    server = services["qdrant"]["image"].rsplit(":v", 1)[1].split(".")[:2]
    client = importlib.metadata.version("qdrant-client").split(".")[:2]
    assert server == client
    assert "/readyz" in " ".join(services["qdrant"]["healthcheck"]["test"])
    for name in PROJECT_SERVICES - {"migrate"}:
        depends = services[name]["depends_on"]
        assert depends["qdrant"]["condition"] == "service_healthy", name
    for name in WORKERS:
        test = services[name]["healthcheck"]["test"]
        queues = command_args(services[name])[command_args(services[name]).index("--queues") + 1]
        assert test == ["CMD", "weft", "worker", "--queues", queues, "--check"], name


def test_the_egress_policy_reaches_the_compose_ollama_by_name(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = services["api"]["environment"]
    assert "WEFT_PROVIDERS" in environment  # passed through from the operator's shell
    monkeypatch.setenv("WEFT_EGRESS_ALLOWED_HOSTS", environment["WEFT_EGRESS_ALLOWED_HOSTS"])
    settings = Settings(_env_file=None)
    # The compose network's addresses are private: only the named service is let through.
    assert egress.denial_reason(ipaddress.ip_address("172.18.0.5"), "ollama", settings) is None
    assert egress.denial_reason(ipaddress.ip_address("172.18.0.2"), "redis", settings) == "private"
