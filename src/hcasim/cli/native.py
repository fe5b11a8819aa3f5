"""``python -m hcasim.cli.native build|state``: compile the MAD path with mypyc, or say
whether the compiled build is in use (``make install`` runs ``build``)."""

from __future__ import annotations

import sys

from hcasim.native import MODULES, build, state


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
