"""``python -m hcasim.cli.native build|state``: compile the MAD path with mypyc, or say
whether the compiled build is in use (``make install`` runs ``build``)."""

from __future__ import annotations

import importlib
import os
import sys

from hcasim.native import (
    CODECS_MODULE,
    GROUP,
    MANIFEST_PATH,
    MODULES,
    SOURCE_ROOT,
    extension_paths,
    source_digests,
    source_path,
    state,
)


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
    for key, (name, source, names) in sorted(layout.generated().items()):
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
    if os.path.exists(MANIFEST_PATH):
        os.unlink(MANIFEST_PATH)  # a failed build leaves the sources in charge
    # unlinked, not overwritten: a running daemon keeps its mapped copy intact
    for module in (*MODULES, CODECS_MODULE, GROUP):
        for path in extension_paths(module):
            if os.path.exists(path):
                os.unlink(path)
    write_codecs()
    digests = source_digests()
    work = os.path.join(os.path.dirname(SOURCE_ROOT), "build", "native")
    cwd = os.getcwd()
    os.chdir(SOURCE_ROOT)
    try:
        paths = [os.path.relpath(source_path(m), SOURCE_ROOT)
                 for m in (*MODULES, CODECS_MODULE)]
        setup(name="hcasim-native",
              ext_modules=mypycify(paths, opt_level="3", group_name=GROUP,
                                   target_dir=os.path.join(work, "c")),
              script_args=["-q", "build_ext", "--inplace", "--parallel", str(jobs),
                           "--build-temp", os.path.join(work, "obj")])
    finally:
        os.chdir(cwd)
    with open(MANIFEST_PATH, "w") as manifest:
        manifest.write("".join(f"{m} {d}\n" for m, d in digests.items()))


def main(argv: list[str] | None = None) -> int:
    """Build the compiled MAD path or report its state; 2 on a usage error."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["build"]:
        build()
        print(f"hcasim: compiled {len(MODULES)} modules and the layout codecs: "
              f"{state(honour_env=False)}")
        return 0
    if args == ["state"]:
        print(state())
        return 0
    print("usage: python -m hcasim.cli.native build|state", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
