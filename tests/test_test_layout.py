"""The layout of the tests themselves (issue 8, item 7): a package whose shared code lives in
:mod:`tests.support`; no module under ``tests/`` imports a test module or ``conftest``, and
``conftest.py`` holds fixtures only.

A test module that imports another runs the other's module-level code and ties the two
together; importing ``conftest`` by name works only while its directory is on ``sys.path``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def imported_modules(tree: ast.AST, package: str) -> list[str]:
    """Every module an ``import`` in ``tree`` names, relative ones resolved against
    ``package`` (functions' bodies included)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.append(base)
            # ``from tests import test_x`` imports the module test_x
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def forbidden(module: str) -> bool:
    """Whether ``module`` is a test module or conftest, named from ``tests`` or top level."""
    parts = module.split(".")
    if parts[0] == "tests":
        parts = parts[1:]
    if len(parts) != 1:
        return False  # a package, a name in a module, another package's module
    return parts[0] == "conftest" or parts[0].startswith("test_")


def forbidden_imports(source: str, package: str = "tests") -> list[str]:
    """The test modules and conftest that ``source`` imports."""
    return [m for m in imported_modules(ast.parse(source), package) if forbidden(m)]


def python_files() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def package_of(path: Path) -> str:
    return ".".join(("tests", *path.relative_to(TESTS).parent.parts))


def test_the_checker_sees_every_form() -> None:
    source = (
        "import conftest\n"
        "from conftest import CX3\n"
        "import test_ib_wire\n"
        "from test_fabric_fuzz import corpus\n"
        "from tests.test_ib_wire import NODEINFO_REQUEST\n"
        "from tests import conftest, test_native\n"
        "from .test_daemon import daemon_pid\n"
        "def later():\n"
        "    import tests.conftest\n"
        "import hcasim.testing, pytest\n"
        "from tests.support.flint import CX3\n"
        "from hcasim.fabric import test_points\n"
    )
    assert forbidden_imports(source) == [
        "conftest", "conftest", "test_ib_wire", "test_fabric_fuzz", "tests.test_ib_wire",
        "tests.conftest", "tests.test_native", "tests.test_daemon", "tests.conftest",
    ]


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(TESTS)))
def test_no_module_imports_a_test_module_or_conftest(path: Path) -> None:
    assert forbidden_imports(path.read_text(), package_of(path)) == []


def test_tests_is_a_package_with_helpers_in_support() -> None:
    assert (TESTS / "__init__.py").is_file() and (TESTS / "support" / "__init__.py").is_file()
    top = {p.name for p in TESTS.glob("*.py") if not p.name.startswith("test_")}
    assert top == {"__init__.py", "conftest.py"}


def test_conftest_holds_fixtures_only() -> None:
    tree = ast.parse((TESTS / "conftest.py").read_text())
    others = []
    for node in tree.body[1:]:  # after the docstring
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.FunctionDef) and (
            node.name.startswith("pytest_")
            or any("fixture" in ast.unparse(d) for d in node.decorator_list)
        ):
            continue
        others.append(ast.unparse(node).splitlines()[0])
    assert isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant)
    assert others == []
