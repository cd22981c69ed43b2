"""The package's import graph, read from the source with ``ast``: every ``import`` counts,
function-local and ``if TYPE_CHECKING:`` ones included (a cycle hidden in a function is
still a cycle a reader has to untangle).

Layers (docs/ARCHITECTURE.md): ``toolkit.core`` (no I/O) <- ``toolkit.send`` <- ``toolkit.view`` /
``toolkit.cli``; ``toolkit.sandbox`` shares only ``toolkit.core.contract``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import toolkit

ROOT = Path(toolkit.__file__).parent


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``where`` (file:line)."""

    source: str
    target: str
    where: str

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}  ({self.where})"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The toolkit module ``name`` refers to: itself, else its longest known prefix."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> Iterator[Edge]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):  # every node: module level, in functions, under TYPE_CHECKING
        where = f"{path.relative_to(ROOT.parent)}:{node.lineno}" if hasattr(node, "lineno") else str(path)
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name``, mod
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names
            ]
        else:
            continue
        for name in names:
            target = _resolve(name) if name.startswith("toolkit") else None
            if target is not None and target != module:
                yield Edge(module, target, where)


EDGES: list[Edge] = sorted(
    {e for m, p in MODULES.items() for e in _imports(m, p)}, key=lambda e: (e.source, e.target, e.where)
)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in {"core", "send", "view", "cli", "sandbox"} else ""


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a list."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_walker_sees_local_and_type_checking_imports() -> None:
    """The graph is not vacuous: it holds the imports a reader would find, hidden ones included."""
    assert len(MODULES) > 30 and "toolkit.send.client" in MODULES and "toolkit.core.contract" in MODULES
    sources = {(e.source, e.target) for e in EDGES}
    assert ("toolkit.send.client", "toolkit.send.launch") in sources  # module level
    assert ("toolkit.sandbox.app", "toolkit.core.contract") in sources
    assert ("toolkit.sandbox.app", "toolkit.sandbox.engine") in sources  # a relative import
    assert ("toolkit.send.protocol", "toolkit.core.plan") in sources  # under TYPE_CHECKING
    assert ("toolkit.view.notebook", "toolkit.sandbox") in sources  # inside a function
    cycle = [Edge("toolkit.a", "toolkit.b", "x:1"), Edge("toolkit.b", "toolkit.a", "x:2")]
    assert _cycles(cycle) == [["toolkit.a", "toolkit.b"]]


def test_no_import_cycle() -> None:
    """No two toolkit modules import each other, directly or around a loop, not even in a function."""
    cycles = _cycles(EDGES)
    lines = []
    for component in cycles:
        members = set(component)
        lines.append("cycle among " + ", ".join(component) + ":")
        lines += [f"    {e}" for e in EDGES if e.source in members and e.target in members]
    assert not cycles, "\n".join(lines)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("core", {"send", "view", "cli", "sandbox"}),
        ("send", {"view", "cli", "sandbox"}),
    ],
)
def test_layers_point_one_way(layer: str, forbidden: set[str]) -> None:
    """The core never imports the send side or above; the send side never imports view, cli or sandbox."""
    bad = [e for e in EDGES if _layer(e.source) == layer and _layer(e.target) in forbidden]
    assert not bad, f"toolkit.{layer} must not import {sorted(forbidden)}:\n" + "\n".join(
        f"    {e}" for e in bad
    )


def test_the_sandbox_shares_only_the_contract() -> None:
    """The sandbox is a stand-in for the platform: of the toolkit it knows the contract alone."""
    bad = [
        e
        for e in EDGES
        if _layer(e.source) == "sandbox"
        and _layer(e.target) != "sandbox"
        and e.target != "toolkit.core.contract"
    ]
    assert not bad, "toolkit.sandbox may import only toolkit.core.contract:\n" + "\n".join(
        f"    {e}" for e in bad
    )
