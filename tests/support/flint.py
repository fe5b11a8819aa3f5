"""flint and mstflint in the tests: device names, the key, how to run the installed mstflint,
and the outputs the flows expect."""

from __future__ import annotations

import shutil
import subprocess

from hcasim.testing import run_exact

CX3 = "/dev/mst/mt4099_pci_cr0"
CX3_CONF = "/dev/mst/mt4099_pciconf0"
CX3PRO = "/dev/mst/mt4103_pci_cr0"
KEY = "1a1a1a1a2b2b2b2b"
MSTFLINT = shutil.which("mstflint") or "/usr/bin/mstflint"


def rendered(text: str) -> str:
    """What a terminal shows: each line after its last carriage return."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def mstflint(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed mstflint 4.21."""
    return run_exact([MSTFLINT, *args], None, input, 60)


def locked_query_error(dev: str) -> str:
    """flint's output for q on a locked device (mstflint 4.21, docs/sources.md §8.6)."""
    return (
        f"-E- Cannot open Device: {dev}. HW access is disabled on the device. \n"
        f'-E- Run "flint -d {dev} hw_access enable [key]" in order to enable HW access.\n'
    )


def locked_access_error(dev: str) -> str:
    """flint's output for set_key on a locked device."""
    return (
        "-E- Failed to open Device: HW access is disabled on the device. \n"
        f'-E- Run "flint -d {dev} hw_access enable [key]" in order to enable HW access.\n'
    )


SET_KEY_OUTPUT = (
    "\rSetting the HW Key   - OK  \n"
    "\rRestoring signature  - OK\n"
    "\n-I- New key was updated successfully in the flash. In order to activate the new key "
    "you should reboot or restart the driver.\n"
)
ENABLED = "-I- The Secure Host was disabled successfully on the device.\n"
WRONG_KEY = (
    "-E- Failed to execute command hw_access. Enable HW access failed: The given key is incorrect\n"
)
