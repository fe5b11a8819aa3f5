"""The sysfs a lab host shows the real mstflint: its own ConnectX-3 PCI functions only.

mstflint 4.21 finds a device given by PCI address (``mstflint -d 01:00.0``) through files
under ``/sys/bus/pci/devices`` (docs/secure-host.md, "The real mstflint on the local
path"): it lists the directory, reads each function's ``vendor`` and ``device``, reads the
first bytes of ``config`` and then reaches CR-space through the address and data registers
of that same ``config`` file. The PCI preload (preload/hcapci.c) turns those paths to a
directory of this lab home; this module writes the files there, from the ``pci`` list of
the daemon's ``hello`` reply, so that the tool sees exactly the host's own devices.

Only ``config`` is more than a plain file: the preload answers its gateway registers
(0x58, 0x5c) from the device model; every other byte is the header written here.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

#: Mellanox's PCI vendor id.
MELLANOX_VENDOR: Final = 0x15B3
#: PCI class of a ConnectX-3 as lspci reports it: network controller, "other" (0x0280).
NETWORK_OTHER_CLASS: Final = 0x028000
#: Size of the config file sysfs gives root for a conventional PCI function.
CONFIG_SIZE: Final = 256
#: Where, relative to the host's PCI root, the preload puts ``/sys/bus/pci/devices``.
DEVICES_DIR: Final = Path("sys/bus/pci/devices")

_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


def config_header(device_id: int) -> bytes:
    """The 256-byte config space of a Mellanox function as the file shows it.

    Vendor and device id (little-endian, as PCI registers are), the class code, and a
    zero capability pointer: no vendor-specific capability, so mstflint takes the old
    address/data gateway of a ConnectX-3 (mtcr_ul/mtcr_ul_com.c, mtcr_pciconf_open).
    """
    header = bytearray(CONFIG_SIZE)
    header[0:4] = (MELLANOX_VENDOR | device_id << 16).to_bytes(4, "little")
    header[8:12] = (NETWORK_OTHER_CLASS << 8).to_bytes(4, "little")
    header[0x2C:0x30] = MELLANOX_VENDOR.to_bytes(4, "little")  # subsystem vendor, id 0
    return bytes(header)


def write_pci_sysfs(root: Path, functions: Iterable[Mapping[str, Any]]) -> None:
    """Write the host's PCI functions under ``root`` (replacing what an earlier run left).

    ``functions`` are the daemon's ``{"address": "0000:01:00.0", "device_id": 4099}``.
    """
    devices = root / DEVICES_DIR
    wanted = {}
    for function in functions:
        address, device_id = function["address"], function["device_id"]
        if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
            raise ValueError(f"bad PCI address {address!r}")
        wanted[address] = int(device_id)
    devices.mkdir(parents=True, exist_ok=True)
    for stale in devices.iterdir():
        if stale.name not in wanted:
            shutil.rmtree(stale)
    for address, device_id in wanted.items():
        function_dir = devices / address
        function_dir.mkdir(exist_ok=True)
        (function_dir / "vendor").write_text(f"{MELLANOX_VENDOR:#06x}\n")
        (function_dir / "device").write_text(f"{device_id:#06x}\n")
        (function_dir / "class").write_text(f"{NETWORK_OTHER_CLASS:#08x}\n")
        (function_dir / "config").write_bytes(config_header(device_id))
