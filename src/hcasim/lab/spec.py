"""What a lab is made of: hosts, their devices and firmware, and the cabling.

A lab definition is plain JSON so the store can keep it: ``{"netfile": <text>,
"hosts": [{"name", "device", "ini": {"cr_protection_en": bool}, "guid"}]}``. The default lab
is built here; ``hcasim up --topology NET [--lab LAB]`` builds one from an ibsim net file
and a TOML lab file (format in docs/user-guide.md).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcasim.devices.cx3 import KINDS as CX3_KINDS
from hcasim.devices.mlx5.firmware import MST_NAME as MLX5_CRYPTO_MST_NAME
from hcasim.fabric.netfile import format_netfile

#: Device kinds a lab file may name, by mst name: the ConnectX-3 and ConnectX-3 Pro
#: (hcasim.devices.cx3) and the ConnectX-6 Dx with the crypto engine
#: (hcasim.devices.mlx5.firmware). hcasim.lab.device_models has a model for each, built from
#: this tuple.
DEVICE_KINDS: tuple[str, ...] = (*CX3_KINDS, MLX5_CRYPTO_MST_NAME)
DEFAULT_FW_VERSION = (2, 42, 5000)
DEFAULT_PSID = {"mt4099": "MT_1090120019", "mt4103": "MT_1090111023"}
#: FW release date printed by flint q (day, month, year); any fixed date will do.
DEFAULT_RELEASE_DATE = (5, 9, 2017)


class SpecError(Exception):
    """A topology or lab file is malformed; the message names file, line and reason."""


@dataclass(frozen=True)
class HostSpec:
    """One host of the lab and the HCA in it."""

    name: str
    device: str
    cr_protection_en: bool
    guid: int
    switch_port: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form kept in the store."""
        return {
            "name": self.name,
            "device": self.device,
            "ini": {"cr_protection_en": self.cr_protection_en},
            "guid": self.guid,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostSpec:
        """Rebuild a host from its stored JSON form."""
        return cls(
            name=str(data["name"]),
            device=str(data["device"]),
            cr_protection_en=bool(data["ini"]["cr_protection_en"]),
            guid=int(data["guid"]),
        )


#: The default lab: switch sw1, four ConnectX-3 hosts (secure-host issue) and crypto1 with a
#: ConnectX-6 Dx (mt4125, verbs device mlx5_0; crypto issue) on the next free switch port.
_DEFAULT_HOSTS = (
    ("sm", "mt4099", False),
    ("node1", "mt4099", True),
    ("node2", "mt4099", True),
    ("node3", "mt4103", False),
    ("crypto1", "mt4125", False),
)
#: Node GUIDs of the default lab's HCAs: Mellanox OUI 0x0002c9, ConnectX-3 style
#: 0002c903xxxxxxx0 with port GUIDs +1/+2 (ibsim assigns CA port GUID = node GUID + port).
_DEFAULT_GUID_BASE = 0x0002C90300A1B200
_DEFAULT_SWITCH_GUID = 0x0002C90200A1B000
#: NodeInfo VendorID/DeviceID: Mellanox (IEEE OUI 0x0002c9) and the PCI device ids
#: (rdma-core v44.0 providers/mlx4/mlx4.c:68,72; providers/mlx5/mlx5.c for 0x101d).
MELLANOX_VENDOR_ID = 0x0002C9
SWITCHX_DEVICE_ID = 0xC738  # SwitchX, a 36-port FDR switch of the ConnectX-3 era
PCI_DEVICE_IDS = {"mt4099": 0x1003, "mt4103": 0x1007, "mt4125": 0x101D}


def default_lab() -> dict[str, Any]:
    """Return the definition of the default lab."""
    hosts = [
        HostSpec(name, device, secure, _DEFAULT_GUID_BASE + 0x10 * (i + 1), switch_port=i + 1)
        for i, (name, device, secure) in enumerate(_DEFAULT_HOSTS)
    ]
    lines = [
        "# hcasim default lab: one 36-port switch, four ConnectX-3 hosts, one ConnectX-6 Dx",
        "",
        f"vendid={MELLANOX_VENDOR_ID:#x}",
        f"devid={SWITCHX_DEVICE_ID:#x}",
        f"switchguid={_DEFAULT_SWITCH_GUID:#018x}",
        'Switch 36 "sw1" # "sw1 36-port switch" enhanced port 0 lid 0',
    ]
    lines += [f'[{h.switch_port}] "{h.name}"[1] # lid 0 4xQDR' for h in hosts]
    for h in hosts:
        lines += [
            "",
            f"vendid={MELLANOX_VENDOR_ID:#x}",
            f"devid={PCI_DEVICE_IDS[h.device]:#x}",
            # Real cards' system image GUID is base+3, as the flash image's (docs/fs2-image.md).
            f"sysimgguid={h.guid + 3:#018x}",
            f"caguid={h.guid:#018x}",
            f'Hca 2 "{h.name}" # "{h.name} HCA-1"',
            f'[1] "sw1"[{h.switch_port}] # lid 0 4xQDR',
        ]
    return {"netfile": "\n".join(lines) + "\n", "hosts": [h.to_json() for h in hosts]}


def lab_from_files(netfile: Path, labfile: Path | None) -> dict[str, Any]:
    """Build a lab definition from a net file and an optional TOML lab file."""
    from hcasim.fabric.netfile import MAX_NETFILE_BYTES, NetFileError, parse_netfile_text
    from hcasim.fabric.topology import NodeKind

    text = read_text(netfile, MAX_NETFILE_BYTES)
    try:
        topology = parse_netfile_text(text, str(netfile), include_dir=netfile.parent)
    except NetFileError as exc:
        raise SpecError(str(exc)) from None
    cas = {node.id: node for node in topology.nodes if node.kind is NodeKind.CA}
    if not cas:
        raise SpecError(f"{netfile}: no hosts (a lab needs at least one Hca or Ca node)")
    for name in cas:
        check_host_name(name, str(netfile))
    _parsed[text] = topology  # the ibsim endpoint takes it instead of parsing again
    settings = _read_labfile(labfile) if labfile else {}
    for name in settings:
        if name not in cas:
            raise SpecError(f"{labfile}: host {name!r} is not a CA in {netfile}")
    hosts = []
    for name, node in cas.items():
        device, secure = settings.get(name, ("mt4099", False))
        hosts.append(HostSpec(name, device, secure, node.guid).to_json())
    # Stored self-contained: include lines are resolved now, relative to the net file.
    return {"netfile": format_netfile(topology), "hosts": hosts}


#: The topology :func:`lab_from_files` parsed last, by net-file text (one entry).
_parsed: dict[str, Any] = {}


def take_parsed_topology(text: str) -> Any:
    """The topology :func:`lab_from_files` already parsed from ``text`` in this process,
    or None; handed out once (a 20,000-host net file takes seconds to parse)."""
    topology = _parsed.pop(text, None)
    _parsed.clear()
    return topology


#: The longest host name (Linux ``HOST_NAME_MAX``).
HOST_NAME_MAX = 64


def check_host_name(name: str, where: str) -> None:
    """Refuse a host name that could not serve as one.

    A host's name names files too (``HOME/opensm-HOST``) and travels in environment
    variables (``SIM_HOST``), so it must be a single, printable path component: 1 to
    HOST_NAME_MAX bytes, no ``/``, no control character, not ``.`` or ``..``.
    """
    if (
        not name
        or len(name.encode("utf-8", "surrogatepass")) > HOST_NAME_MAX
        or "/" in name
        or name in (".", "..")
        or not name.isprintable()
    ):
        raise SpecError(
            f"{where}: host name {name!r} cannot name a host (1 to {HOST_NAME_MAX} bytes, "
            "printable, no '/', not '.' or '..')"
        )


#: Largest lab file or firmware ini read, in bytes (net files: MAX_NETFILE_BYTES).
MAX_LAB_FILE_BYTES = 1024 * 1024


def read_text(path: Path, limit: int = MAX_LAB_FILE_BYTES) -> str:
    """A lab's input file as UTF-8 text of at most ``limit`` bytes; anything else (unreadable,
    larger, not UTF-8) is one SpecError line."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)  # never more: /dev/zero is a file too
    except OSError as exc:
        raise SpecError(f"{path}: {exc.strerror}") from None
    if len(data) > limit:
        raise SpecError(f"{path}: larger than {limit} bytes")
    try:
        # A byte-order mark (editors on other systems write one) is no part of the text.
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        ) from None


def _read_labfile(path: Path) -> dict[str, tuple[str, bool]]:
    from hcasim.devices.firmware_ini import IniError, parse_ini

    try:
        data = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: {exc}") from None
    except RecursionError:
        raise SpecError(f"{path}: arrays or tables nested too deeply") from None
    hosts = data.get("hosts", {})
    unknown = set(data) - {"hosts"}
    if unknown:
        raise SpecError(f"{path}: unknown table {sorted(unknown)[0]!r} (expected [hosts.NAME])")
    if not isinstance(hosts, dict):
        raise SpecError(f"{path}: 'hosts' must be a table of [hosts.NAME] tables")
    result: dict[str, tuple[str, bool]] = {}
    for name, entry in hosts.items():
        if not isinstance(entry, dict):
            raise SpecError(f"{path}: hosts.{name} must be a table")
        extra = set(entry) - {"device", "firmware_ini"}
        if extra:
            raise SpecError(f"{path}: hosts.{name}: unknown key {sorted(extra)[0]!r}")
        device = entry.get("device", "mt4099")
        if device not in DEVICE_KINDS:
            raise SpecError(
                f"{path}: hosts.{name}: unknown device {device!r} "
                f"(known: {', '.join(DEVICE_KINDS)})"
            )
        secure = False
        if "firmware_ini" in entry:
            ini_name = entry["firmware_ini"]
            if not isinstance(ini_name, str) or not ini_name or "\0" in ini_name:
                raise SpecError(f"{path}: hosts.{name}: firmware_ini must be a file name")
            ini_path = path.parent / ini_name
            try:
                ini = parse_ini(read_text(ini_path), str(ini_path))
            except SpecError as exc:
                raise SpecError(f"{path}: hosts.{name}: {exc}") from None
            except IniError as exc:
                raise SpecError(str(exc)) from None
            secure = ini.cr_protection_en
        result[name] = (device, secure)
    return result
