"""Packaging tells the truth: pyproject declares what mcal_utils imports, its pins admit the tested
versions of requirements*.txt, and environment.yml mirrors them."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML and packaging come with the report's Jupyter stack
pytest.importorskip("packaging")
from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DISTRIBUTION_OF = {"sklearn": "scikit-learn", "modAL": "modal-python", "PIL": "pillow",
                   "jupyter_server_mathjax": "jupyter-server-mathjax"}
# modules whose third-party imports may come from an extra instead of the runtime dependencies
EXTRA_OF_MODULE = {"mcal_utils/modal.py": "modal"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins(*files: str) -> dict[str, str]:
    pins = {}
    for name in files:
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                dist, version = line.split("==")
                pins[canonicalize_name(dist)] = version.strip()
    return pins


def _declared(requirements: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in requirements]
    return {canonicalize_name(r.name): r for r in reqs if canonicalize_name(r.name) != "mcal-utils"}


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("mcal_utils", "__future__")}


def test_requires_python_is_3_11():
    assert _pyproject()["requires-python"] == ">=3.11"


def test_every_import_of_the_package_is_declared():
    project = _pyproject()
    runtime = _declared(project["dependencies"])
    extras = {name: _declared(reqs) for name, reqs in project["optional-dependencies"].items()}
    missing = []
    for path in sorted((ROOT / "mcal_utils").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        allowed = set(runtime) | set(extras.get(EXTRA_OF_MODULE.get(relative, ""), {}))
        for module in _third_party_imports(path):
            dist = canonicalize_name(DISTRIBUTION_OF.get(module, module))
            if dist not in allowed:
                missing.append(f"{relative}: {module} ({dist})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_declared_requirements_admit_the_tested_pins():
    project = _pyproject()
    pins = _pins("requirements.txt", "requirements-dev.txt", "constraints.txt")
    declared = list(project["dependencies"]) + [r for reqs in project["optional-dependencies"].values() for r in reqs]
    for name, req in _declared(declared).items():
        assert name in pins, f"{name} is declared in pyproject.toml but pinned nowhere in requirements*.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"pyproject.toml's {req} excludes the tested {name}=={pins[name]}"
    assert str(_declared(project["dependencies"])["torch"].specifier) == f"=={pins['torch']}"


def test_environment_yml_mirrors_the_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python == ["python=3.11"]
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    mirrored = {canonicalize_name(a): b for a, b in (line.split("==") for line in pip_lines if "==" in line)}
    pins = _pins("requirements.txt", "requirements-dev.txt")
    assert mirrored == pins, {k: (mirrored.get(k), pins.get(k)) for k in set(mirrored) ^ set(pins) | {
        k for k in set(mirrored) & set(pins) if mirrored[k] != pins[k]}}
    assert "-e ." in pip_lines


@pytest.mark.parametrize("path", ["README.md", "docs/REFERENCES.md"])
def test_the_repository_stands_alone(path):
    """No pointer to files outside the repository: a clone has nothing beside it."""
    text = (ROOT / path).read_text()
    assert not re.search(r"\.\./shared|shared/(seeds|reference)", text)
