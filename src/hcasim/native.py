"""The fabric's MAD path compiled to C with mypyc, and the guard that keeps it honest.

The modules in :data:`MODULES` are ordinary, fully typed Python; ``make install`` also
compiles them with mypyc (``python -m hcasim.cli.native build``) into extension modules that
sit beside the sources, which Python then imports instead.  Nothing about their behaviour
changes (the test suite runs against the compiled build, and a differential test checks
it against the sources); they are only faster, which is what lets real OpenSM sweep a
lab at close to the speed it sweeps ibsim (docs/fabric.md §8).

A compiled build that no longer matches its sources would be a trap: an edit to
``engine.py`` that silently does nothing.  So the build records the size and modification
time of every source it compiled (what CPython checks before it trusts a ``.pyc``), and
:func:`guard` (run when :mod:`hcasim` is imported) loads the sources
instead when any of them changed since, when the build is missing a piece, or when
``HCASIM_PURE_PYTHON=1`` asks for the pure-Python path.  Without a C compiler or mypyc,
the build is skipped and the lab runs on the sources alone.
"""

from __future__ import annotations

# Imported by every hcasim process, flint included, before anything else: keep it to what
# the interpreter has loaded anyway (no pathlib, no importlib: the importlib package imports
# warnings, and its machinery's EXTENSION_SUFFIXES is this list of the interpreter's).
import _imp
import os
import sys

# typing costs every process 3 to 9 ms to import; mypy takes this spelling as the same.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import importlib.machinery
    from collections.abc import Sequence
    from types import ModuleType

#: The modules compiled together (one mypyc group): the MAD path from the ibsim endpoint
#: through routing, the SMAs and PMAs to the ConnectX-3 wire firmware and driver events.
MODULES = (
    "hcasim.fabric.engine",
    "hcasim.fabric.pma",
    "hcasim.fabric.routing",
    "hcasim.fabric.sma",
    "hcasim.fabric.subnet",
    "hcasim.hosts.cx3_wire",
    "hcasim.lab.ibsim_server",
    "hcasim.hosts.mlx4_driver",
)
#: The layouts' decode and encode functions (:mod:`hcasim.ib.layout` generates them), as a
#: module the build writes and compiles with the rest; not tracked.
CODECS_MODULE = "hcasim.ib._codecs"
#: The group's shared library (mypyc's runtime and the compiled code of every module).
GROUP = "hcasim._native"
MANIFEST = "_native.manifest"
PURE_ENV = "HCASIM_PURE_PYTHON"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(_PACKAGE_DIR)
MANIFEST_PATH = os.path.join(_PACKAGE_DIR, MANIFEST)


def source_path(module: str) -> str:
    """The ``.py`` file of one of :data:`MODULES` (or of the generated codecs)."""
    return os.path.join(SOURCE_ROOT, *module.split(".")) + ".py"


def source_digests() -> dict[str, str]:
    """Size and modification time of each compiled module's source, as the build records
    them: what CPython itself checks before it trusts a cached ``.pyc``."""
    digests = {}
    for module in (*MODULES, CODECS_MODULE):
        try:
            info = os.stat(source_path(module))
            digests[module] = f"{info.st_size}:{info.st_mtime_ns}"
        except FileNotFoundError:
            digests[module] = "missing"
    return digests


def extension_paths(module: str) -> list[str]:
    """The paths the module's extension could have (mypyc names the group ``X__mypyc``)."""
    stem = source_path(module)[:-3] + ("__mypyc" if module == GROUP else "")
    return [stem + suffix for suffix in _imp.extension_suffixes()]


def _built(module: str) -> bool:
    return any(os.path.exists(path) for path in extension_paths(module))


def state(honour_env: bool = True) -> str:
    """``"compiled"`` when the compiled build is in use, else why the sources are
    (``honour_env=False``: whether it would be, were ``HCASIM_PURE_PYTHON`` unset)."""
    if honour_env and os.environ.get(PURE_ENV) == "1":
        return f"sources ({PURE_ENV}=1)"
    try:
        with open(MANIFEST_PATH) as manifest:
            recorded = dict(line.split(" ", 1) for line in manifest.read().splitlines() if line)
    except FileNotFoundError:
        return "sources (no compiled build)"
    if not all(_built(m) for m in (*MODULES, CODECS_MODULE, GROUP)):
        return "sources (the compiled build is incomplete)"
    stale = [m for m, digest in source_digests().items() if recorded.get(m) != digest]
    if stale:
        return f"sources ({', '.join(stale)} changed since the build; run make install)"
    return "compiled"


class _SourcesOnly:
    """A meta path finder: :data:`MODULES` as their ``.py`` sources, never as extension
    modules, and not the generated codecs at all (the layouts then compile their own)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        """The source spec of one of :data:`MODULES`; ``None`` for any other module."""
        if fullname == CODECS_MODULE:
            raise ModuleNotFoundError(f"{fullname} is part of the unused compiled build",
                                      name=fullname)
        if fullname not in MODULES:
            return None
        import importlib.machinery
        import importlib.util

        source = source_path(fullname)
        return importlib.util.spec_from_file_location(
            fullname, source, loader=importlib.machinery.SourceFileLoader(fullname, source))


def guard() -> None:
    """Load the sources instead of a compiled build that is stale, partial or unwanted.

    All modules or none: compiled modules call each other's C code directly, so one
    changed source must take the whole group back to Python.
    """
    if (not os.path.exists(MANIFEST_PATH) and not _built(GROUP)
            and os.environ.get(PURE_ENV) != "1"):
        return  # nothing was ever built here: the sources are all there is
    if state() != "compiled" and not any(isinstance(f, _SourcesOnly) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourcesOnly())
