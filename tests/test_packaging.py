"""The project's packaging: environment.yml and pyproject.toml list the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import toolkit

ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)")


def _name(requirement: str) -> str:
    match = _NAME.match(requirement)
    assert match, requirement
    return match.group(1).lower().replace("_", "-")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return {_name(r): r.replace(" ", "") for r in requirements}


def _environment() -> dict[str, str]:
    found: dict[str, str] = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        item = re.match(r"^  - ([^#\s][^#]*?)\s*$", line)  # top-level entries only, not pip's
        if item and not item.group(1).endswith(":"):
            found[_name(item.group(1))] = item.group(1).replace(" ", "")
    found.pop("python", None)
    found.pop("pip", None)
    return found


def test_environment_lists_the_same_packages_as_pyproject() -> None:
    pyproject, environment = _pyproject(), _environment()
    assert sorted(set(pyproject) - set(environment)) == [], "in pyproject.toml only"
    assert sorted(set(environment) - set(pyproject)) == [], "in environment.yml only"


def test_environment_pins_the_same_lower_bounds_as_pyproject() -> None:
    pyproject, environment = _pyproject(), _environment()
    assert {k: environment[k] for k in pyproject} == pyproject


def test_environment_installs_the_package_itself_with_its_dev_extra() -> None:
    assert '- -e ".[dev]"' in (ROOT / "environment.yml").read_text()


def test_package_is_typed_and_exports_a_curated_api() -> None:
    assert (ROOT / "toolkit" / "py.typed").exists()
    for name in toolkit.__all__:
        assert hasattr(toolkit, name), name
    for contract_name in ("Mapping", "Subscription", "Trigger", "plan", "Plan", "Batch", "sample_customers"):
        assert contract_name in toolkit.__all__
