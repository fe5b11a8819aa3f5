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


def run_as_flint(
    argv: list[str], *, cwd: str | None = None, input: bytes = b"", timeout: float = 30
) -> tuple[int, bytes, bytes]:
    """Run the installed mstflint with argv[0] "flint", the name hcasim's flint goes by, so
    that getopt's messages (which name argv[0]) can be compared byte for byte."""
    result = subprocess.run(
        ["flint", *argv], executable=MSTFLINT, input=input, capture_output=True,
        timeout=timeout, cwd=cwd,
    )
    return result.returncode, result.stdout, result.stderr


def run_our_flint(
    argv: list[str], *, cwd: str | None = None, input: bytes = b"", timeout: float = 30,
    env: dict[str, str] | None = None,
) -> tuple[int, bytes, bytes]:
    """Run hcasim's flint outside any lab host (images and command lines need none), from
    the same sources as the tests, whatever the working directory."""
    import os
    import sys

    import hcasim

    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(hcasim.__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "hcasim.cli.flint", *argv], input=input,
        capture_output=True, timeout=timeout, cwd=cwd, env=env,
    )
    return result.returncode, result.stdout, result.stderr


class Cx3State:
    """Puts node1's ConnectX-3 into a known secure-host state through the control socket,
    so that the real mstflint and hcasim's flint each start from the same device."""

    def __init__(self, socket_path: str, base_image: bytes) -> None:
        self.socket_path = socket_path
        self.base_image = base_image

    def _device(self):  # type: ignore[no-untyped-def]
        from hcasim.api.client import ControlClient
        from hcasim.api.mst import MstDevice

        client = ControlClient(self.socket_path, host="node1")
        reply = client.call("open", path=CX3)
        return MstDevice(client, str(reply["handle"]), int(reply["device_id"]), CX3)

    def _restart_driver(self) -> None:
        from hcasim.api.client import ControlClient

        with ControlClient(self.socket_path) as control:
            control.call("driver_restart", host="node1")

    def _write_flash(self, image: bytes) -> None:
        from hcasim.devices.cx3_registers import SEM_FLASH_PROGRAMMING

        device = self._device()
        try:
            if device.locked:
                device.hcr_command(0x60, 0, int(KEY, 16))  # HW_ACCESS enable
            with device.semaphore(SEM_FLASH_PROGRAMMING):
                device.write_flash_image(image)
        finally:
            device.close()

    def enter(self, state: str, flash: bytes | None = None) -> None:
        """``clean`` (no key), ``keyed`` (a key on flash, not active yet), ``locked`` (the
        key active: CR-space locked) or ``enabled`` (locked, then hw_access enable).

        ``flash``: in state ``clean``, then written over the flash of the running device
        (what a failed or foreign burn may leave there)."""
        from hcasim.devices.hw_key import image_with_key

        self._write_flash(self.base_image)
        self._restart_driver()
        if state == "clean":
            if flash is not None:
                self._write_flash(flash)
            return
        assert flash is None, "other flash contents only in state clean"
        self._write_flash(image_with_key(self.base_image, int(KEY, 16)))
        if state == "keyed":
            return
        self._restart_driver()
        if state == "enabled":
            device = self._device()
            try:
                device.hcr_command(0x60, 0, int(KEY, 16))
            finally:
                device.close()
