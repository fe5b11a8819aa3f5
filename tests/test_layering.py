"""The package layering of docs/design-notes.md: imports run only downward, and never round.

Every ``import`` in ``src/hcasim`` counts, including those inside functions and under
``TYPE_CHECKING``: a deferred import is still a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Each concern's packages, from the bottom up; a module may import its own layer or lower.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("hcasim", "hcasim.native"),  # the package root and the compiled-path guard
    ("hcasim.ib",),  # wire formats
    ("hcasim.devices",),  # firmware models
    ("hcasim.fabric",),  # topology, subnet state, routing, agents
    ("hcasim.hosts",),  # a device on the wire, and its host's driver
    ("hcasim.lab",),  # the daemon and its services
    ("hcasim.api", "hcasim.mlx5dv"),  # clients
    ("hcasim.cli", "hcasim.testing"),  # command lines and the pytest plugin
)


def module_name(path: Path) -> str:
    """The dotted name of a source file under ``src``."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    """Every module of the hcasim package, generated ones excluded."""
    found = {module_name(p): p for p in (SRC / "hcasim").rglob("*.py")}
    return {name: path for name, path in found.items() if not name.endswith("._codecs")}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The hcasim modules one module imports (a package for ``from package import name``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != name}


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the deepest package that holds ``module``."""
    best, depth = -1, -1
    for index, packages in enumerate(LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and len(package) > depth:
                best, depth = index, len(package)
    return best


def graph() -> dict[str, set[str]]:
    """The import graph of ``src/hcasim``."""
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in all_modules() if layer_of(m) < 0)
    assert unplaced == []


def test_imports_only_run_downward() -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if layer_of(target) > layer_of(module)
    )
    assert upward == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles(graph()) == []


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_cycle_finder_finds_cycles(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(edges) == expected


def test_an_upward_import_is_seen(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from hcasim.lab import daemon\n")
    modules = {"hcasim.ib.mod": source, "hcasim.lab.daemon": source}
    targets = imports_of("hcasim.ib.mod", source, modules)
    assert targets == {"hcasim.lab.daemon"}
    assert layer_of("hcasim.lab.daemon") > layer_of("hcasim.ib.mod")


def test_every_package_says_what_lives_there() -> None:
    undocumented = sorted(
        module_name(p)
        for p in (SRC / "hcasim").rglob("__init__.py")
        if ast.get_docstring(ast.parse(p.read_text())) is None
    )
    assert undocumented == []
