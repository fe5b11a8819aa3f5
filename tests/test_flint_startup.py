"""What ``flint -qq q`` loads: none of the modules its start-up was cut free of (docs/flint.md,
section 4) may come back onto that path unnoticed.

flint runs on a lab host as scripts run it (``hcasim exec``), as the console script does
(``from hcasim.cli.flint import main; sys.exit(main())``), and reports on stderr which
modules it imported beyond those the interpreter had loaded when it started. No timing is
asserted: ``bench/flint_startup.py`` measures the time.
"""

from __future__ import annotations

import sys

import pytest

from hcasim.testing import LabHandle

CX3 = "/dev/mst/mt4099_pci_cr0"

#: flint's console script, reporting the modules it loaded on stderr.
PROBE = (
    "import sys\n"
    "before = set(sys.modules)\n"
    "from hcasim.cli.flint import main\n"
    "try:\n"
    "    status = main()\n"
    "finally:\n"
    "    sys.stderr.write(' '.join(sorted(set(sys.modules) - before)))\n"
    "sys.exit(status)\n"
)

#: Modules kept off the path, and why each was (what it cost, measured with -X importtime).
KEPT_OFF = {
    "typing": "2 to 9 ms; annotations are strings, typing is imported for mypy only",
    "dataclasses": "with inspect, 6 ms; hcasim.ib.layout.Layout builds the layout classes",
    "inspect": "imported by dataclasses",
    "ast": "imported by inspect",
    "dis": "imported by inspect",
    "json": "imports re and enum; hcasim.lab.protocol uses json's C half",
    "re": "with enum, 3 ms",
    "enum": "imported by re and socket",
    "socket": "builds enums of its constants; the control client uses _socket",
    "selectors": "imported by socket",
    "base64": "imports re; the control client uses binascii",
    "contextlib": "1 ms; hcasim.api.mst.HeldSemaphore is a plain class",
    "hashlib": "loads OpenSSL, 3 to 4 ms; needed only with compiled codecs",
    "functools": "with types; fs2's memo of parsed images is a dict",
    "importlib": "imports warnings; the compiled-path guard asks _imp for the suffixes",
    "argparse": "flint takes its command line apart itself (hcasim.cli.flint_args)",
    "pathlib": "os.path does",
    "subprocess": "nothing on the path starts a process",
    "threading": "nothing on the path needs it",
    "hcasim.devices.cx3": "the firmware model: the tools need only cx3_registers",
    "hcasim.devices.flash": "the flash model, only for small image files",
    "hcasim.ib._codecs": "the compiled codecs are for the daemon",
}


def loaded_by_flint(lab: LabHandle, host: str, *args: str) -> tuple[str, set[str]]:
    """Run flint with ``args`` on ``host``; its stdout and the modules it imported."""
    result = lab.run(host, sys.executable, "-c", PROBE, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, set(result.stderr.split())


@pytest.mark.parametrize("args", [("-d", CX3, "-qq", "q"), ("-d", CX3, "q")],
                         ids=["-qq q", "q"])
def test_query_loads_none_of_the_heavy_modules(hcasim_lab: LabHandle,
                                               args: tuple[str, ...]) -> None:
    stdout, loaded = loaded_by_flint(hcasim_lab, "node1", *args)
    assert stdout == hcasim_lab.flint("node1", *args).stdout  # the probe is flint
    assert "PSID:                  MT_1090120019\n" in stdout
    assert {"hcasim.api.mst", "hcasim.devices.fs2"} <= loaded  # the query did run
    crept_back = {name: KEPT_OFF[name] for name in sorted(loaded & KEPT_OFF.keys())}
    assert crept_back == {}
