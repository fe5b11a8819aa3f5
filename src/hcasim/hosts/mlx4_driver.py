"""The host's mlx4 driver for a ConnectX-3, as far as Secure Host concerns it.

What the Linux driver does (docs/sources.md §9; linux-6.1 sources cited there):

- at start (``mlx4_setup_hca``, ``main.c:2703``) it issues MAD_DEMUX: query restrictions
  (op_mod 2) and then configure (op_mod 0) with the same mailbox (``fw.c:2838-2879``). If
  the four masks at mailbox offsets 0x10, 0x20, 0x40 and 0x70 are all non-zero it sets
  ``MLX4_FLAG_SECURE_HOST`` and warns ``HCA operating in secure-host mode. SMP firewall
  activated.`` (``fw.c:2800-2836``), which dmesg shows after ``mlx4_core <pci address>: ``;
- it reads its port's LID, SM LID, SM SL and state with a local MAD_IFC Get(PortInfo) that
  the firmware answers (``drivers/infiniband/hw/mlx4/main.c:650-736``);
- afterwards it learns what the SM changed from firmware events instead of snooping SMPs:
  EQE type 0x1d PORT_MNG_CHG with subtypes 0x14 GUIDInfo, 0x15 PortInfo (``changed_attr``
  bits 0 SM LID, 1 GID prefix, 2 LID, 3 client reregister, 4 SM SL), 0x16 P_Key table,
  0x17 SL2VL (``include/linux/mlx4/device.h:454-487,949-969``; ``mad.c:1177-1277``), and
  EQE type 0x09 PORT_CHANGE with subtype 4 (active) or 1 (down) and the port number in
  bits 31:28 of the event's third dword (``device.h`` ``MLX4_EVENT_TYPE_PORT_CHANGE``,
  ``MLX4_PORT_CHANGE_SUBTYPE_*``; ``eq.c`` ``mlx4_eq_int``).

An EQE is the 32-byte ``struct mlx4_eqe``: byte 1 type, byte 3 subtype, the event at
bytes 4-27, owner at byte 31 (``device.h`` ``struct mlx4_eqe``). The driver here decodes
the same bytes the firmware model encodes, so both halves are checked against the layout.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hcasim.devices.cx3 import (
    MAD_DEMUX_CONFIG,
    MAD_DEMUX_QUERY_RESTR,
    MAD_DEMUX_SUBN_CLASS,
    Cx3Firmware,
    Eqe,
    HcrStatus,
    MadDemuxMailbox,
    PortChangeEqe,
    PortInfoEqe,
    Sl2VlEqe,
    TableChangeEqe,
)

log = logging.getLogger("hcasim.mlx4")

EQE_SIZE: Final = Eqe.SIZE
EQE_TYPE_PORT_CHANGE: Final = 0x09
EQE_TYPE_PORT_MNG_CHG: Final = 0x1D
PORT_CHANGE_DOWN: Final = 1
PORT_CHANGE_ACTIVE: Final = 4
PMC_SUBTYPE_GUID_INFO: Final = 0x14
PMC_SUBTYPE_PORT_INFO: Final = 0x15
PMC_SUBTYPE_PKEY_TABLE: Final = 0x16
PMC_SUBTYPE_SL2VL: Final = 0x17
# changed_attr bits of a PortInfo PORT_MNG_CHG event (device.h:462-468).
CHANGED_SM_LID = 1 << 0
CHANGED_GID_PREFIX = 1 << 1
CHANGED_LID = 1 << 2
CHANGED_CLIENT_REREG = 1 << 3
CHANGED_SM_SL = 1 << 4
CHANGED_ATTR_NAMES = (
    (CHANGED_SM_LID, "MSTR_SM_LID"),
    (CHANGED_GID_PREFIX, "GID_PFX"),
    (CHANGED_LID, "LID"),
    (CHANGED_CLIENT_REREG, "CLIENT_REREG"),
    (CHANGED_SM_SL, "MSTR_SM_SL"),
)
SUBTYPE_NAMES = {
    PMC_SUBTYPE_GUID_INFO: "GUID_INFO",
    PMC_SUBTYPE_PORT_INFO: "PORT_INFO",
    PMC_SUBTYPE_PKEY_TABLE: "PKEY_TABLE",
    PMC_SUBTYPE_SL2VL: "SL_TO_VL",
}
#: PortInfo PortState names as sysfs prints them (drivers/infiniband/core/sysfs.c:213-232).
PORT_STATES = {0: "NOP", 1: "DOWN", 2: "INIT", 3: "ARMED", 4: "ACTIVE", 5: "ACTIVE_DEFER"}
PORT_STATE_DOWN, PORT_STATE_ACTIVE = 1, 4
#: mlx4_status_to_errno for the command statuses the model returns (mlx4 cmd.c).
_STATUS_ERRNO = {HcrStatus.BUSY: -5, HcrStatus.BAD_OP: -1, HcrStatus.BAD_PARAM: -22,
                 HcrStatus.BAD_SYS_STATE: -6}
SECURE_HOST_MESSAGE = "HCA operating in secure-host mode. SMP firewall activated."
#: Events and log lines ``hcasim driver show`` keeps per device.
HISTORY: Final = 16


def port_info_eqe(
    port: int, *, sm_lid: int, lid: int, changed_attr: int, sm_sl: int, gid_prefix: int
) -> bytes:
    """A PORT_MNG_CHG PortInfo event (subtype 0x15) as the firmware writes it."""
    return PortInfoEqe(EQE_TYPE_PORT_MNG_CHG, PMC_SUBTYPE_PORT_INFO, port, sm_lid, lid,
                       changed_attr, sm_sl & 0xF, gid_prefix).encode()


def table_eqe(subtype: int, port: int, *, block_ptr: int = 0, entries_mask: int = 0) -> bytes:
    """A PORT_MNG_CHG GUIDInfo or P_Key table event (``tbl_change_info``)."""
    return TableChangeEqe(EQE_TYPE_PORT_MNG_CHG, subtype, port, block_ptr,
                          entries_mask).encode()


def sl2vl_eqe(port: int, vls: tuple[int, ...]) -> bytes:
    """A PORT_MNG_CHG SL-to-VL event: 16 four-bit VLs, SL0 in the high nibble of byte 0."""
    return Sl2VlEqe(EQE_TYPE_PORT_MNG_CHG, PMC_SUBTYPE_SL2VL, port,
                    tuple(vl & 0xF for vl in vls[:16])).encode()


def port_change_eqe(port: int, active: bool) -> bytes:
    """A PORT_CHANGE event: the logical link of ``port`` became active or went down."""
    subtype = PORT_CHANGE_ACTIVE if active else PORT_CHANGE_DOWN
    return PortChangeEqe(EQE_TYPE_PORT_CHANGE, subtype, port).encode()


@dataclass
class PortView:
    """What the driver believes about its port."""

    lid: int = 0
    sm_lid: int = 0
    sm_sl: int = 0
    state: int = 0
    gid_prefix: int = 0


def describe_eqe(eqe: bytes) -> str:
    """One line for ``hcasim driver show``: the event's type, subtype and fields."""
    header = Eqe.decode(eqe)
    subtype = header.subtype
    if header.type == EQE_TYPE_PORT_CHANGE:
        port = PortChangeEqe.decode(eqe).port
        what = {PORT_CHANGE_ACTIVE: "ACTIVE", PORT_CHANGE_DOWN: "DOWN"}.get(subtype, "?")
        return f"EQE 0x09 PORT_CHANGE subtype {subtype:#x} {what} port {port}"
    if subtype == PMC_SUBTYPE_PORT_INFO:
        info = PortInfoEqe.decode(eqe)
        names = ",".join(n for bit, n in CHANGED_ATTR_NAMES if info.changed_attr & bit) or "-"
        return (f"{_mng_head(subtype, info.port)} changed_attr {info.changed_attr:#x} "
                f"({names}) mstr_sm_lid {info.sm_lid} port_lid {info.lid} "
                f"mstr_sm_sl {info.sm_sl}")
    if subtype == PMC_SUBTYPE_SL2VL:
        sl2vl = Sl2VlEqe.decode(eqe)
        vls = "".join(f"{vl:x}" for vl in sl2vl.sl2vl)
        return f"{_mng_head(subtype, sl2vl.port)} sl2vl {vls}"
    table = TableChangeEqe.decode(eqe)
    return f"{_mng_head(subtype, table.port)} block_ptr {table.block_ptr}"


def _mng_head(subtype: int, port: int) -> str:
    return (f"EQE 0x1d PORT_MNG_CHG subtype {subtype:#x} "
            f"{SUBTYPE_NAMES.get(subtype, 'UNKNOWN')} port {port}")


class Mlx4Driver:
    """The mlx4 driver instance for one ConnectX-3 on one host.

    ``query_port`` stands for the local MAD_IFC Get(PortInfo) the firmware answers; it is
    used only at start, after which the port view follows the firmware's events.
    """

    def __init__(
        self,
        host: str,
        ident: str,
        firmware: Cx3Firmware,
        query_port: Callable[[], PortView],
        pci_address: str = "0000:01:00.0",
    ) -> None:
        self.host = host
        self.ident = ident
        self.firmware = firmware
        self.query_port = query_port
        self.pci_address = pci_address
        self.secure_host = False
        self.port = PortView()
        self.events: deque[str] = deque(maxlen=HISTORY)
        self.dmesg: deque[str] = deque(maxlen=HISTORY)
        self.starts = 0
        #: Called as ``listener(host, line)`` for each kernel log line and each event the
        #: driver handles (the lab's web view keeps them in its timeline).
        self.listeners: list[Callable[[str, str], None]] = []

    def _log(self, level: int, message: str) -> None:
        line = f"mlx4_core {self.pci_address}: {message}"
        self.dmesg.append(line)
        log.log(level, "%s: %s", self.host, line)
        for listener in self.listeners:
            listener(self.host, line)

    def start(self, boot: bool = False) -> None:
        """Driver load (lab start, driver restart, host reboot): MAD_DEMUX, then the port.

        ``boot``: the host (re)booted, so its kernel log starts empty.
        """
        self.starts += 1
        if boot:
            self.dmesg.clear()
        self.secure_host = False
        self.events.clear()
        status, mailbox = self.firmware.mad_demux(MAD_DEMUX_QUERY_RESTR, MAD_DEMUX_SUBN_CLASS)
        if status != HcrStatus.OK:
            err = _STATUS_ERRNO.get(status, -5)
            self._log(logging.WARNING, f"MLX4_CMD_MAD_DEMUX: query restrictions failed ({err})")
        else:
            demux = MadDemuxMailbox.decode(mailbox)
            masks = {"set": demux.set, "getresp": demux.getresp, "trap": demux.trap,
                     "traprepress": demux.traprepress}
            for name, value in masks.items():
                log.debug("%s: SMP firewall %s_attribute_mask = %#x", self.host, name, value)
            secure = all(masks.values())
            status, _ = self.firmware.mad_demux(MAD_DEMUX_CONFIG, MAD_DEMUX_SUBN_CLASS, mailbox)
            if status != HcrStatus.OK:
                err = _STATUS_ERRNO.get(status, -5)
                self._log(logging.WARNING, f"MLX4_CMD_MAD_DEMUX: configure failed ({err})")
            elif secure:
                self.secure_host = True
                self._log(logging.WARNING, SECURE_HOST_MESSAGE)
        self.port = self.query_port()

    def post_eqe(self, eqe: bytes) -> None:
        """The firmware wrote an event queue entry; handle it as mlx4's EQ handler would."""
        if len(eqe) != EQE_SIZE:
            return
        header = Eqe.decode(eqe)
        etype, subtype = header.type, header.subtype
        described = describe_eqe(eqe)
        self.events.append(described)
        for listener in self.listeners:
            listener(self.host, described)
        if etype == EQE_TYPE_PORT_CHANGE:
            if subtype == PORT_CHANGE_ACTIVE:
                self.port.state = PORT_STATE_ACTIVE
            elif subtype == PORT_CHANGE_DOWN:
                self.port.state = PORT_STATE_DOWN
            return
        if etype != EQE_TYPE_PORT_MNG_CHG:
            return
        if subtype == PMC_SUBTYPE_PORT_INFO:
            info = PortInfoEqe.decode(eqe)
            changed = info.changed_attr
            if changed & (CHANGED_SM_LID | CHANGED_SM_SL):  # update_sm_ah (mad.c:1193-1198)
                self.port.sm_lid = info.sm_lid
                self.port.sm_sl = info.sm_sl
            if changed & CHANGED_LID:
                self.port.lid = info.lid
            if changed & CHANGED_GID_PREFIX:
                self.port.gid_prefix = info.gid_prefix
        elif subtype not in SUBTYPE_NAMES:
            self._log(logging.WARNING,
                      f"Unsupported subtype {subtype:#x} for Port Management Change event")

    def show(self) -> dict[str, Any]:
        """What ``hcasim driver show`` prints (no key material: the driver never has any)."""
        return {
            "device": self.ident,
            "ibdev": "mlx4_0",
            "model": self.firmware.kind.description,
            "mst": f"/dev/mst/{self.firmware.mst_name}_pci_cr0",
            "secure_host": self.secure_host,
            "port": {
                "number": 1,
                "lid": self.port.lid,
                "sm_lid": self.port.sm_lid,
                "sm_sl": self.port.sm_sl,
                "state": PORT_STATES.get(self.port.state, str(self.port.state)),
                "gid_prefix": f"{self.port.gid_prefix:#018x}",
            },
            "events": list(self.events),
            "log": list(self.dmesg),
        }
