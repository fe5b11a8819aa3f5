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
# the interpreter has loaded anyway (no pathlib, no importlib.abc).
import importlib.machinery
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

#: The modules compiled together (one mypyc group): the MAD path from the ibsim endpoint
#: through routing, the SMAs and PMAs to the ConnectX-3 wire firmware and driver events.
MODULES = (
    "hcasim.fabric.engine",
    "hcasim.fabric.firmware",
    "hcasim.fabric.pma",
    "hcasim.fabric.routing",
    "hcasim.fabric.sma",
    "hcasim.fabric.subnet",
    "hcasim.lab.cx3_wire",
    "hcasim.lab.ibsim_server",
    "hcasim.lab.mlx4_driver",
)
#: The layouts' decode and encode functions (:mod:`hcasim.ib.layout` generates them), as a
#: module the build writes and compiles with the rest; not tracked.
CODECS_MODULE = "hcasim.ib._codecs"
#: The group's shared library (mypyc's runtime and the compiled code of every module).
GROUP = "hcasim._native"
MANIFEST = "_native.manifest"
PURE_ENV = "HCASIM_PURE_PYTHON"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_SOURCE_ROOT = os.path.dirname(_PACKAGE_DIR)
_MANIFEST_PATH = os.path.join(_PACKAGE_DIR, MANIFEST)


def source_path(module: str) -> str:
    """The ``.py`` file of one of :data:`MODULES` (or of the generated codecs)."""
    return os.path.join(_SOURCE_ROOT, *module.split(".")) + ".py"


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


def _extensions(module: str) -> list[str]:
    """The paths the module's extension could have (mypyc names the group ``X__mypyc``)."""
    stem = source_path(module)[:-3] + ("__mypyc" if module == GROUP else "")
    return [stem + suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES]


def _built(module: str) -> bool:
    return any(os.path.exists(path) for path in _extensions(module))


def state(honour_env: bool = True) -> str:
    """``"compiled"`` when the compiled build is in use, else why the sources are
    (``honour_env=False``: whether it would be, were ``HCASIM_PURE_PYTHON`` unset)."""
    if honour_env and os.environ.get(PURE_ENV) == "1":
        return f"sources ({PURE_ENV}=1)"
    try:
        with open(_MANIFEST_PATH) as manifest:
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
        import importlib.util

        source = source_path(fullname)
        return importlib.util.spec_from_file_location(
            fullname, source, loader=importlib.machinery.SourceFileLoader(fullname, source))


def guard() -> None:
    """Load the sources instead of a compiled build that is stale, partial or unwanted.

    All modules or none: compiled modules call each other's C code directly, so one
    changed source must take the whole group back to Python.
    """
    if (not os.path.exists(_MANIFEST_PATH) and not _built(GROUP)
            and os.environ.get(PURE_ENV) != "1"):
        return  # nothing was ever built here: the sources are all there is
    if state() != "compiled" and not any(isinstance(f, _SourcesOnly) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourcesOnly())


def _typed(line: str) -> str:
    """A generated ``def`` line with every parameter typed ``Any`` (mypyc compiles only
    what mypy has checked: an untyped function would compile to nothing)."""
    if not line.startswith("def "):
        return line
    name, params = line[4:-2].split("(", 1)
    typed = []
    for param in filter(None, (p.strip() for p in params.split(","))):
        pname, eq, default = param.partition("=")
        typed.append(f"{pname.strip()}: Any" + (f" = {default.strip()}" if eq else ""))
    return f"def {name}({', '.join(typed)}) -> Any:"


def write_codecs() -> str:
    """Write :data:`CODECS_MODULE`: every layout codec the MAD path uses, as factories of
    the same functions :mod:`hcasim.ib.layout` would compile with ``exec``."""
    from hcasim.ib import layout

    for module in MODULES:  # their imports generate the packers they define
        importlib.import_module(module)
    pending = list(layout.Layout.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if "SIZE" in cls.__dict__:
            cls.field_specs()  # generates its codec
    lines = ['"""The layout codecs (hcasim.ib.layout), written by ``python -m hcasim.cli.native',
             'build`` for mypyc to compile.  Generated; not tracked."""', "",
             "from typing import Any", ""]
    table = []
    for key, (name, source, names) in sorted(layout.GENERATED.items()):
        lines += ["", f"def _{key}(env: dict[str, Any]) -> tuple[Any, Any]:  # {name}"]
        lines += [f"    {n}: Any = env[{n!r}]" for n in names]
        lines += [f"    {_typed(line)}" if line else "" for line in source.splitlines()]
        lines += ["    return decode, encode", ""]
        table.append(f"    {key!r}: _{key},")
    lines += ["", "CODECS = {", *table, "}", ""]
    path = source_path(CODECS_MODULE)
    with open(path, "w") as out:
        out.write("\n".join(lines))
    return path


def build(jobs: int = 2) -> None:
    """Compile :data:`MODULES` and the layout codecs in place with mypyc and record their
    digests."""
    from mypyc.build import mypycify

    setup = importlib.import_module("setuptools").setup  # no type stubs in the venv
    if os.path.exists(_MANIFEST_PATH):
        os.unlink(_MANIFEST_PATH)  # a failed build leaves the sources in charge
    # unlinked, not overwritten: a running daemon keeps its mapped copy intact
    for module in (*MODULES, CODECS_MODULE, GROUP):
        for path in _extensions(module):
            if os.path.exists(path):
                os.unlink(path)
    write_codecs()
    digests = source_digests()
    work = os.path.join(os.path.dirname(_SOURCE_ROOT), "build", "native")
    cwd = os.getcwd()
    os.chdir(_SOURCE_ROOT)
    try:
        paths = [os.path.relpath(source_path(m), _SOURCE_ROOT)
                 for m in (*MODULES, CODECS_MODULE)]
        setup(name="hcasim-native",
              ext_modules=mypycify(paths, opt_level="3", group_name=GROUP,
                                   target_dir=os.path.join(work, "c")),
              script_args=["-q", "build_ext", "--inplace", "--parallel", str(jobs),
                           "--build-temp", os.path.join(work, "obj")])
    finally:
        os.chdir(cwd)
    with open(_MANIFEST_PATH, "w") as manifest:
        manifest.write("".join(f"{m} {d}\n" for m, d in digests.items()))
