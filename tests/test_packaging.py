"""The project's packaging: what each install kind holds, that every import is declared where
it is needed, that a core install works without the extras, and that environment.yml agrees."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import toolkit

ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-]+)")

# Declared, yet imported by no file: each one's use, said once.
NOT_IMPORTED = {
    "ipykernel": "the kernel the demo and the notebooks run in",
    "voila": "serves the launch form as a page (toolkit app)",
    "jupyterlab": "make lab",
    "nbval": "a pytest plugin (make test runs the notebooks with it)",
    "pytest-timeout": "a pytest plugin (timeout = 300 in pyproject.toml)",
    "ruff": "the linter (make lint)",
    "pandas-stubs": "pandas' types, read by mypy",
    "types-requests": "requests' types, read by mypy",
    "types-defusedxml": "defusedxml's types, read by mypy",
    "types-tqdm": "tqdm's types, read by mypy",
    "py-spy": "a sampling profiler run on a sandbox's process (bench/README.md)",
}
# Where a file sits -> the groups of pyproject.toml its imports may come from (longest match).
AREAS = {
    "toolkit": {"core"},  # core, send, io, errors: a script or a cron job installs only these
    "toolkit/view": {"core", "notebook"},
    "toolkit/core/spark.py": {"core", "spark"},  # the Spark bridge: imported only for a Spark DataFrame
    "toolkit/sandbox": {"core", "sandbox"},
    "toolkit/cli": {"core", "notebook", "sandbox"},  # each command imports its extra on use
    "tests": {"core", "notebook", "sandbox", "spark", "duckdb", "dev"},
    "bench": {"core", "notebook", "sandbox", "spark", "duckdb", "dev"},
    "conftest.py": {"core", "notebook", "sandbox", "spark", "duckdb", "dev"},
    "notebooks": {"core", "notebook", "sandbox", "spark", "duckdb", "dev"},
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    match = _NAME.match(requirement)
    assert match, requirement
    return _canonical(match.group(1))


@cache
def _groups() -> dict[str, dict[str, str]]:
    """pyproject.toml's requirements by group (core, notebook, sandbox, dev): name -> requirement."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    return {
        group: {_name(r): r.replace(" ", "") for r in requirements if _name(r) != "toolkit"}
        for group, requirements in groups.items()
    }


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


def _imports(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports: module level, function-local
    and ``TYPE_CHECKING`` alike (relative imports left out)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def _sources() -> list[Path]:
    return sorted(
        [*(ROOT / "toolkit").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py"),
         ROOT / "conftest.py"]
    )  # fmt: skip


def _area(path: Path) -> set[str]:
    relative = path.relative_to(ROOT).as_posix()
    best = max((a for a in AREAS if relative == a or relative.startswith(a + "/")), key=len)
    return AREAS[best]


def _third_party(path: Path) -> set[str]:
    # helpers such as sandbox_helpers, and bench scripts importing each other (launch_e2e -> plan_throughput)
    local = {p.stem for folder in ("tests", "bench") for p in (ROOT / folder).rglob("*.py")}
    return {
        n for n in _imports(path) if n not in sys.stdlib_module_names and n != "toolkit" and n not in local
    }


@cache
def _installed() -> dict[str, set[str]]:
    """Installed top-level module -> the packages that provide it."""
    return {m: {_canonical(d) for d in ds} for m, ds in importlib.metadata.packages_distributions().items()}


def _distributions(module: str) -> set[str]:
    return _installed().get(module, set())


def test_environment_lists_the_same_packages_as_pyproject() -> None:
    """environment.yml and pyproject.toml (core, extras and dev) name the same packages."""
    pyproject = {k: v for group in _groups().values() for k, v in group.items()}
    environment = _environment()
    assert sorted(set(pyproject) - set(environment)) == [], "in pyproject.toml only"
    assert sorted(set(environment) - set(pyproject)) == [], "in environment.yml only"
    assert {k: environment[k] for k in pyproject} == pyproject, "with other lower bounds"


def test_environment_installs_the_package_itself_with_its_dev_extra() -> None:
    """The conda environment is the dev install: the package and every extra."""
    assert '- -e ".[dev]"' in (ROOT / "environment.yml").read_text()
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert "toolkit[notebook,sandbox,spark,duckdb]" in dev


def test_every_import_is_declared_in_a_group_its_place_may_use() -> None:
    """Each third-party import (function-local and TYPE_CHECKING ones too) comes from a package
    pyproject.toml declares, in a group installed wherever that file runs."""
    groups = _groups()
    problems = []
    for path in _sources():
        allowed = set().union(*(groups[g] for g in _area(path)))
        for module in sorted(_third_party(path)):
            dists = _distributions(module)
            where = f"{path.relative_to(ROOT)} imports {module}"
            if not dists:
                problems.append(f"{where}, which no installed package provides")
            elif not dists & allowed:
                declared = sorted(g for g, names in groups.items() if dists & set(names))
                problems.append(f"{where} ({', '.join(sorted(dists))}): declared in {declared or 'no group'}, "
                                f"not in {sorted(_area(path))}")  # fmt: skip
    assert problems == []


def test_every_declared_package_is_imported_or_says_why_not() -> None:
    """No declaration outlives its use: each declared package is imported somewhere, or is a
    tool or plugin listed with its reason."""
    imported = set()
    for path in _sources():
        for module in _third_party(path):
            imported |= _distributions(module)
    declared = {name for group in _groups().values() for name in group}
    assert sorted(declared - imported - set(NOT_IMPORTED)) == []
    assert sorted(set(NOT_IMPORTED) - declared) == []


@cache
def _outside_a_core_install() -> list[str]:
    """The installed top-level modules a core install would not have: none of their packages is
    in the closure of the core requirements."""
    wanted = [_name(r) for r in _groups()["core"].values()]
    closure: set[str] = {"toolkit"}
    while wanted:
        name = wanted.pop()
        if name in closure:
            continue
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:  # not for this platform (colorama)
            continue
        closure.add(name)
        for requirement in requirements:
            if "extra ==" not in requirement.partition(";")[2]:  # an extra's needs are not installed
                wanted.append(_name(requirement))
    return sorted(
        module
        for module, dists in _installed().items()
        if not dists & closure and module not in sys.stdlib_module_names
    )


CORE_INSTALL_SCRIPT = r"""
import json, os, sys

at_start = set(sys.modules)  # what site.py loaded (setuptools' _distutils_hack .pth)
blocked = set(json.loads(os.environ["BLOCKED"]))


class NotInACoreInstall:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInACoreInstall())
import toolkit

out = {"file": toolkit.__file__}
plan = toolkit.plan(toolkit.sample_customers(40), toolkit.Mapping({"email": "email"}), toolkit.Trigger(96))
launch = toolkit.Client.from_env().launch(plan, label="cron", progress=False).wait(progress=False)
out["valid"], out["imported"] = plan.n_valid, launch.summary()["imported"]
for name, attempt in (("view", "import toolkit.view"), ("sandbox", "from toolkit.sandbox import serve")):
    try:
        exec(attempt)
    except ImportError as exc:
        out[name] = [type(exc).__name__, str(exc)]
from toolkit.cli import main

out["sandbox_command"] = main(["sandbox", "--port", "0"])
out["loaded"] = sorted(m for m in set(sys.modules) - at_start if m.partition(".")[0] in blocked)
print(json.dumps(out))
"""


def test_a_core_install_plans_and_launches_and_names_the_missing_extras(sb: Any, tmp_path: Path) -> None:
    """With only the core requirements importable (the extras' packages blocked), a script
    plans and launches against the platform; the notebook views and the sandbox say which
    extra to install."""
    blocked = _outside_a_core_install()
    assert {"ipywidgets", "matplotlib", "fastapi", "uvicorn", "starlette", "pydantic", "pytest"} <= set(
        blocked
    )
    env = {
        **os.environ,
        "BLOCKED": json.dumps(blocked),
        "PYTHONPATH": str(ROOT),
        "TOOLKIT_API_URL": sb.url,
        "TOOLKIT_API_TOKEN": sb.token,
        "TOOLKIT_JOURNAL": str(tmp_path / "journal.sqlite"),
    }
    done = subprocess.run(
        [sys.executable, "-c", CORE_INSTALL_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["file"].startswith(str(ROOT))
    assert out["imported"] == out["valid"] > 30
    assert out["view"][0] == "MissingExtraError" and "pip install 'toolkit[notebook]'" in out["view"][1]
    assert (
        out["sandbox"][0] == "ModuleNotFoundError" and "pip install 'toolkit[sandbox]'" in out["sandbox"][1]
    )
    assert out["sandbox_command"] == 2 and "pip install 'toolkit[sandbox]'" in done.stderr
    assert out["loaded"] == []


def test_package_is_typed_and_exports_a_curated_api() -> None:
    """py.typed ships, and every name of toolkit.__all__ exists."""
    assert (ROOT / "toolkit" / "py.typed").exists()
    for name in toolkit.__all__:
        assert hasattr(toolkit, name), name
    for contract_name in ("Mapping", "Subscription", "Trigger", "plan", "Plan", "Batch", "sample_customers"):
        assert contract_name in toolkit.__all__
