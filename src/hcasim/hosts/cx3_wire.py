"""The ConnectX-3 firmware on the wire: SMP firewall, M_Key and GUID0 protection, in-band
CR-space access, and the events the firmware sends its host's driver.

One :class:`Cx3Wire` (a :class:`~hcasim.fabric.subnet.NodeFirmware`) is installed on the
fabric node of every lab host whose HCA is a ConnectX-3. It is backed by the same
:class:`~hcasim.devices.cx3.Cx3Firmware` the lab holds, so the control socket (hcasim's
flint) and MADs (the real mstflint in-band) see one device. Facts and choices are in
docs/fabric.md; in short:

- **SMP firewall** (seed: "Preventing drivers on untrusted hosts to receive or transmit
  SMP (QP0) MAD packets"; docs/sources.md §9.4, §11.4): while the firmware's key is
  active, every SMP the host's software sends is discarded, LID-routed or directed route,
  of any hop count (zero included: the kernel would hand it to the firmware locally, and
  the firmware refuses it there too), Get, Set or anything else, and the host's MAD layer
  reports the send as timed out (``Action.TIMED_OUT``: the seed's ``sminfo`` failure, at
  once rather than after libibmad's 3 x 1 s). SMPs from the wire are answered by the
  firmware's SMA; what the SMA does not serve (SMInfo, traps) never reaches the host.
  QP1 (SA, PerfMgt, vendor classes) is not QP0 and passes. The driver's own port query
  (MAD_IFC PortInfo for sysfs, libumad2sim's control channel here) is not an SMP of the
  host's software and is answered, with the M_Key hidden (:meth:`Cx3Fabric.host_port_info`).
- **M_Key hidden** from the host whatever the protection level: the driver's port query
  reads M_Key 0 while the firewall is on (and so would a PortInfo reply to the host,
  should one ever be built: :meth:`Cx3Wire.smp_reply`).
- **GUID0**: while the firewall is on, a GUIDInfo Set that would change GUID0 (the port
  GUID, read-only per IBTA 14.2.5.5) is refused with status 0x001C and changes nothing.
- **ConfigSpaceAccess** (docs/sources.md §4; mstflint v4.21.0-1
  ``mtcr_ul/mtcr_ib_ofed.c:170-177,360-411,500-585``): vendor class 0x0A or 0x09,
  attribute 0x0050, Get/Set of up to 56 dwords (decoded by :mod:`hcasim.hosts.config_space`,
  shared with the ConnectX-6 Dx) through :meth:`Cx3Firmware.cr_read` /
  :meth:`Cx3Firmware.cr_write`, so a locked device reads 0xbad0cafe and ignores writes
  except to the tools HCR and its semaphore. The semaphore owner is the attached ibsim
  client; its semaphores are released when it detaches. The SMP forms (0xFF50-0xFF53) are
  not supported by ConnectX-3 firmware (``mtcr_ib_ofed.c:762-775``) and get a quick
  status 0x000C reply, which is all ``trm_create``'s 0xFF53 probe needs (docs/sources.md §5.1).
- **Events**: when the SM changes the port, the firmware writes PORT_MNG_CHG and
  PORT_CHANGE events to its driver (:mod:`hcasim.hosts.mlx4_driver`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from hcasim.devices.cx3 import Cx3Firmware
from hcasim.devices.cx3_registers import SEMAPHORES
from hcasim.fabric.subnet import (
    DEFAULT_SL2VL,
    Action,
    Answer,
    MadContext,
    NodeFirmware,
    PortChange,
    PortState,
    Subnet,
)
from hcasim.hosts import config_space
from hcasim.hosts.inventory import LabHost
from hcasim.hosts.mlx4_driver import (
    CHANGED_CLIENT_REREG,
    CHANGED_GID_PREFIX,
    CHANGED_LID,
    CHANGED_SM_LID,
    CHANGED_SM_SL,
    PMC_SUBTYPE_GUID_INFO,
    PMC_SUBTYPE_PKEY_TABLE,
    Mlx4Driver,
    PortView,
    port_change_eqe,
    port_info_eqe,
    sl2vl_eqe,
    table_eqe,
)
from hcasim.ib import mad, smp_attrs, vendor

log = logging.getLogger("hcasim.cx3wire")

#: SMP attributes of Mellanox's in-band register and CR access (docs/sources.md §4.4,
#: §5.1, §7.1): ConfigSpaceAccess, AccessRegister and the semaphore-lock query.
VENDOR_SMP_ATTRS = frozenset({vendor.ATTR_SMP_CONFIG_SPACE_ACCESS, 0xFF51,
                              vendor.ATTR_SMP_ACCESS_REGISTER, vendor.ATTR_SMP_SEMAPHORE_LOCK})
#: PortChange flags reported in a PortInfo event, with their ``changed_attr`` bits (the
#: flags as ints: Flag arithmetic is slow on the MAD path).
_PORT_INFO_BITS = (
    (PortChange.SM_LID.value, CHANGED_SM_LID),
    (PortChange.GID_PREFIX.value, CHANGED_GID_PREFIX),
    (PortChange.LID.value, CHANGED_LID),
    (PortChange.CLIENT_REREGISTER.value, CHANGED_CLIENT_REREG),
    (PortChange.SM_SL.value, CHANGED_SM_SL),
)
_PKEY_TABLE: Final = PortChange.PKEY_TABLE.value
_GUID_TABLE: Final = PortChange.GUID_TABLE.value
_SL2VL_TABLE: Final = PortChange.SL2VL_TABLE.value
_PORT_STATE: Final = PortChange.PORT_STATE.value
#: QP0's management classes: the two SMP formats, LID-routed and directed route (IBTA
#: 14.2.1.1-14.2.1.2).
_SMP_CLASSES: Final = (mad.CLASS_SUBN_LID_ROUTED, mad.CLASS_SUBN_DIRECTED_ROUTE)

Owner = Callable[[bytes], object]


def port_view(port: PortState) -> PortView:
    """The local MAD_IFC Get(PortInfo) the firmware answers its driver (M_Key not included)."""
    return PortView(lid=port.lid, sm_lid=port.sm_lid, sm_sl=port.sm_sl, state=port.state,
                    gid_prefix=port.gid_prefix)


class Cx3Wire(NodeFirmware):
    """The fabric-facing half of one ConnectX-3's firmware (module docstring)."""

    def __init__(self, firmware: Cx3Firmware, driver: Mlx4Driver | None, owner_of: Owner,
                 port: PortState | None = None) -> None:
        self.firmware = firmware
        self.driver = driver
        self.owner_of = owner_of
        self._active = port is not None and port.state == smp_attrs.PORT_STATE_ACTIVE
        #: SMPs the host sent that the firewall dropped, and SMPs (SMInfo, traps) it kept
        #: from the host: plain counters, read by the lab's web view outside the MAD path.
        self.dropped_from_host: int = 0
        self.withheld_from_host: int = 0

    @property
    def firewall(self) -> bool:
        """Whether the SMP firewall is on (a key is active; CR unlock does not matter)."""
        return self.firmware.secure.smp_firewall

    # -- QP0 -----------------------------------------------------------------------------------

    def host_send(self, ctx: MadContext) -> Action:
        """Drop every SMP the host sends while the firewall is on (module docstring).

        No exception for a zero-hop directed-route SMP: the kernel hands those to the
        firmware locally (MAD_IFC, docs/sources.md §11.4) rather than to the wire, but an
        untrusted host's local Set would change its own LID or M_Key behind the SM, and a
        local Get would read what the firewall hides, so the firmware refuses them as it
        refuses the rest (docs/fabric.md §2).
        """
        if self.firewall and ctx.raw[1] in _SMP_CLASSES:
            self.dropped_from_host += 1
            return Action.TIMED_OUT
        return Action.PASS

    def smp_received(self, ctx: MadContext) -> Action | Answer:
        """Refuse SMP CR access quickly; keep SMInfo and traps from a firewalled host; GUID0."""
        attr_id = ctx.attr_id  # no header decode on the common path (OpenSM sweeps)
        if attr_id in VENDOR_SMP_ATTRS:
            return Answer(mad.STATUS_METHOD_ATTR_UNSUPPORTED)
        if not self.firewall:
            return Action.PASS
        method = ctx.method
        if not ctx.from_host and (attr_id in (mad.ATTR_SM_INFO, mad.ATTR_NOTICE)
                                  or method == mad.METHOD_TRAP):
            self.withheld_from_host += 1
            return Action.DROP  # the firmware owns QP0: nothing is forwarded to the host
        if attr_id == mad.ATTR_GUID_INFO and method == mad.METHOD_SET and ctx.attr_mod == 0:
            smp = ctx.mad
            if isinstance(smp, mad.Smp | mad.DrSmp):
                return self._guid0_set(ctx.port, smp)
        return Action.PASS

    @staticmethod
    def _guid0_set(port: PortState, smp: mad.Smp | mad.DrSmp) -> Action | Answer:
        if port.m_key and smp.m_key != port.m_key:
            return Action.PASS  # the SMA's M_Key check drops it and raises trap 256
        if int.from_bytes(smp.data[:8], "big") == port.guid:
            return Action.PASS  # GUID0 unchanged: an ordinary alias-GUID Set
        table = port.guid_table()[:smp_attrs.GuidInfo.BLOCK]
        padding = [0] * (smp_attrs.GuidInfo.BLOCK - len(table))
        current = smp_attrs.GuidInfo(tuple(table + padding)).encode()
        log.info("GUIDInfo Set changing GUID0 of %s refused", port.node.id)
        return Answer(mad.STATUS_INVALID_FIELD, current)

    def smp_reply(self, ctx: MadContext, attr_id: int, data: bytearray) -> None:
        """Hide the M_Key from the host, whatever the protection level."""
        if attr_id == mad.ATTR_PORT_INFO and ctx.from_host and self.firewall:
            data[0:8] = bytes(8)

    # -- QP1: vendor ConfigSpaceAccess ----------------------------------------------------------

    def mad_received(self, ctx: MadContext) -> bytes | None:
        """Answer Mellanox vendor classes 0x0A/0x09; other classes are not the firmware's."""
        if ctx.raw[1] not in config_space.VENDOR_CLASSES:
            return None
        owner = self.owner_of(ctx.raw)
        firmware = self.firmware
        return config_space.answer(
            ctx.raw,
            lambda address, count: firmware.cr_read(address, count, owner),
            lambda address, values: firmware.cr_write(address, values, owner),
            ctx.node.id)

    # -- events to the driver -------------------------------------------------------------------

    def port_changed(self, port: PortState, changes: PortChange) -> None:
        """Tell the host's driver what the SM changed (PORT_MNG_CHG and PORT_CHANGE EQEs)."""
        driver = self.driver
        if driver is None:
            return
        number = port.number
        bits = changes.value
        changed_attr = 0
        for flag, bit in _PORT_INFO_BITS:
            if bits & flag:
                changed_attr |= bit
        if changed_attr:
            driver.post_eqe(port_info_eqe(number, sm_lid=port.sm_lid, lid=port.lid,
                                          changed_attr=changed_attr, sm_sl=port.sm_sl,
                                          gid_prefix=port.gid_prefix))
        if bits & _PKEY_TABLE:
            driver.post_eqe(table_eqe(PMC_SUBTYPE_PKEY_TABLE, number, entries_mask=0xFFFFFFFF))
        if bits & _GUID_TABLE:
            driver.post_eqe(table_eqe(PMC_SUBTYPE_GUID_INFO, number, entries_mask=0xFFFFFFFF))
        if bits & _SL2VL_TABLE:
            driver.post_eqe(sl2vl_eqe(number, (port.sl2vl or {}).get(0, DEFAULT_SL2VL)))
        if bits & _PORT_STATE:
            active = port.state == smp_attrs.PORT_STATE_ACTIVE
            if active != self._active:
                self._active = active
                driver.post_eqe(port_change_eqe(number, active))


class Cx3Fabric:
    """Every ConnectX-3 of a lab on its fabric: wire firmware, drivers, semaphore owners."""

    def __init__(self, hosts: Iterable[LabHost], subnet: Subnet,
                 clients: Mapping[int, object]) -> None:
        """Put the ConnectX-3 of each of ``hosts`` on ``subnet``; ``clients`` maps the ibsim
        endpoint's client indexes to the attached clients that own semaphores."""
        self.subnet = subnet
        self.clients = clients
        self.drivers: dict[str, list[Mlx4Driver]] = {}
        self.firmwares: list[Cx3Firmware] = []
        self.hosts: list[str] = []
        for host in hosts:
            try:
                node = subnet.node(host.name)
            except KeyError:
                continue  # a host without a fabric node has no wire to protect
            for device in host.devices:
                firmware = device.firmware
                if not isinstance(firmware, Cx3Firmware) or node.is_switch:
                    continue
                port = node.ports[0]
                driver = Mlx4Driver(host.name, device.ident, firmware,
                                    functools.partial(port_view, port))
                subnet.set_firmware(node.id, Cx3Wire(firmware, driver, self.owner_of, port))
                self.drivers.setdefault(host.name, []).append(driver)
                self.firmwares.append(firmware)
                self.hosts.append(host.name)
                break  # one HCA per fabric node

    def owner_of(self, raw: bytes) -> object:
        """The attached client that sent a MAD (the server tags TID bits 63-48 with it)."""
        index = int.from_bytes(raw[8:10], "big")
        return self.clients.get(index, self)

    def start_drivers(self, host: str | None = None, boot: bool = True) -> None:
        """Load the driver of every ConnectX-3 (lab start: every host boots), or of one
        host's (``boot``: after a reboot rather than a driver restart)."""
        for name, drivers in self.drivers.items():
            if host is None or name == host:
                for driver in drivers:
                    driver.start(boot=boot)

    def host_event(self, host: str, event: str) -> None:
        """A lab host event: a reboot or a driver restart loads the driver again."""
        if event in ("reboot", "driver_restart"):
            self.start_drivers(host, boot=event == "reboot")

    def client_detached(self, client: object) -> None:
        """An ibsim client went away: release the semaphores it held (and commit flash)."""
        for firmware, host in zip(self.firmwares, self.hosts, strict=True):
            held = [f"{sem:#x}" for sem in SEMAPHORES if firmware.holds(client, sem)]
            if held:
                log.info("%s: semaphores %s released: their owner detached", host,
                         ", ".join(held))
            firmware.release(client)

    def host_port_info(self, ref: Any, data: bytes) -> bytes:
        """A host reads its port's PortInfo on libumad2sim's control channel (for its fake
        sysfs): like the local MAD_IFC path, the M_Key reads 0 while the firewall is on."""
        firmware = self.subnet.node(ref.node).firmware
        if isinstance(firmware, Cx3Wire) and firmware.firewall:
            return bytes(8) + data[8:]
        return data

    def show_drivers(self, host: str) -> list[dict[str, Any]]:
        """What the mlx4 drivers of one host know (no key material); none for a host
        without a ConnectX-3 on the fabric."""
        return [driver.show() for driver in self.drivers.get(host, [])]

