"""The ConnectX-3 on the wire, in process: firewall, M_Key and GUID0, ConfigSpaceAccess,
driver events and MAD_DEMUX (hcasim.hosts.cx3_wire, hcasim.hosts.mlx4_driver).

The subnet is the default lab's, routed by quicksm; MADs go through the MAD engine exactly
as the daemon hands them over (the TID carries the sending client's index in bits 63-48).
"""

from __future__ import annotations

import logging

import pytest

from hcasim.devices.cx3 import (
    CONNECTX3,
    MAD_DEMUX_CONFIG,
    MAD_DEMUX_QUERY_RESTR,
    Cx3Firmware,
    HcrStatus,
)
from hcasim.devices.cx3_registers import CR_LOCKED_VALUE, SEM_FLASH_PROGRAMMING, SEM_TOOLS_HCR
from hcasim.devices.flash import Flash
from hcasim.fabric.engine import DeliveryKind
from hcasim.fabric.subnet import PortChange
from hcasim.fabric.topology import PortRef
from hcasim.hosts import mlx4_driver
from hcasim.hosts.cx3_wire import Cx3Wire
from hcasim.ib import build, mad, smp_attrs, vendor
from tests.support.cx3_rig import CLIENT, KEY, Wire


@pytest.fixture
def wire() -> Wire:
    return Wire()


# -- ConfigSpaceAccess ---------------------------------------------------------------------------


def test_hw_dev_id_in_band_unlocked_and_locked(wire: Wire) -> None:
    # mstmcra lid-N 0xf0014: 0x00a001f5 unlocked, 0xbad0cafe locked (docs/sources.md §4.3, §5.1)
    assert wire.cr("node2", "node1", 0xF0014) == (0, [0x00A001F5])
    assert wire.cr("node2", "node1", 0xF0014, mgmt_class=vendor.CLASS_MLNX_VENDOR_9) == (
        0, [0x00A001F5])
    wire.lock("node1")
    assert wire.cr("node2", "node1", 0xF0014) == (0, [CR_LOCKED_VALUE])
    # a locked CR-space reads 0xbad0cafe everywhere and ignores writes ...
    wire.cr("node2", "node1", 0x1000, values=[0x12345678])
    assert wire.cr("node2", "node1", 0x1000) == (0, [CR_LOCKED_VALUE])
    # ... but the tools semaphore and HCR stay reachable, so hw_access works in-band
    assert wire.cr("node2", "node1", SEM_TOOLS_HCR) == (0, [0])


def test_modifier_count_and_block_access(wire: Wire) -> None:
    wire.cr("node2", "node1", 0x2000, values=list(range(1, 57)))
    status, values = wire.cr("node2", "node1", 0x2000, 56)
    assert status == 0 and values == list(range(1, 57))
    assert wire.cr("node2", "node1", 0x2000, modifier=0x00002000)[0] == mad.STATUS_INVALID_FIELD
    assert wire.cr("node2", "node1", 0x2000, 57, modifier=vendor.pack_cr_modifier(
        0x2000, 57))[0] == mad.STATUS_INVALID_FIELD
    assert wire.cr("node2", "node1", 0xFFFFC, 2)[0] == mad.STATUS_INVALID_FIELD  # past CR
    assert wire.cr("node2", "node1", 0x2002)[0] == mad.STATUS_INVALID_FIELD  # unaligned


def test_mode_2_single_record(wire: Wire) -> None:
    # mode 2: {address, data, mask} records from MAD byte 32 (mtcr_ib_ofed.c:370-411)
    wire.cr("node2", "node1", 0x3000, values=[0xAABBCCDD])
    raw = bytearray(vendor.ConfigSpaceAccessMad(
        base_version=1, mgmt_class=0x0A, class_version=1, method=mad.METHOD_SET, tid=1,
        attr_id=0x50, attr_mod=2 << 22 | 1 << 16).encode())
    raw[32:44] = (0x3000).to_bytes(4, "big") + (0x11223344).to_bytes(4, "big") + bytes(
        [0, 0, 0xFF, 0xFF])
    reply = wire.reply("node2", bytes(raw), wire.lids["node1"])
    assert reply is not None and reply[4:6] == b"\0\0"
    assert wire.cr("node2", "node1", 0x3000) == (0, [0xAABB3344])


def test_unknown_vendor_attribute_and_method(wire: Wire) -> None:
    raw = bytearray(vendor.ConfigSpaceAccessMad(
        base_version=1, mgmt_class=0x0A, class_version=1, method=mad.METHOD_GET, tid=1,
        attr_id=0x17).encode())
    reply = wire.reply("node2", bytes(raw), wire.lids["node1"])
    assert reply is not None and int.from_bytes(reply[4:6], "big") == 0x000C
    raw[16:18], raw[3] = b"\x00\x50", 0x06
    reply = wire.reply("node2", bytes(raw), wire.lids["node1"])
    assert reply is not None and int.from_bytes(reply[4:6], "big") == 0x0008


def test_vendor_mads_to_other_nodes_are_not_answered(wire: Wire) -> None:
    # the switch and crypto1 have no ConnectX-3 firmware: the MAD goes to a client at the
    # port or bounces (the daemon never hands a vendor class to an SM client)
    request = bytes.fromhex("010a010100000000000000035f978201005000000f010014") + bytes(232)
    out = wire.send("node2", request, wire.lids["sw1"])
    assert [d.kind for d in out] == [DeliveryKind.FORWARD]


def test_semaphores_belong_to_the_sending_client(wire: Wire) -> None:
    assert wire.cr("node2", "node1", SEM_FLASH_PROGRAMMING) == (0, [0])
    assert wire.cr("node2", "node1", SEM_FLASH_PROGRAMMING, client=CLIENT + 1) == (0, [1])
    fw = wire.firmware["node1"]
    assert fw.holds(wire.owners[CLIENT], SEM_FLASH_PROGRAMMING)
    wire.fabric.client_detached(wire.owners[CLIENT])  # the tool exited without releasing
    assert wire.cr("node2", "node1", SEM_FLASH_PROGRAMMING, client=CLIENT + 1) == (0, [0])


def test_smp_register_access_gets_a_quick_error(wire: Wire) -> None:
    # trm_create's SMP 0xFF53 probe only needs an answer (docs/sources.md §5.1); CX3 has no
    # SMP CR access (mtcr_ib_ofed.c:762-775)
    for attr in (0xFF50, 0xFF52, 0xFF53):
        raw = wire.reply("node2", build.smp(attr), wire.lids["node1"])
        assert raw is not None and int.from_bytes(raw[4:6], "big") == 0x000C


# -- the SMP firewall ------------------------------------------------------------------------------


def _bounced(out: list) -> bool:  # type: ignore[type-arg]
    return [d.kind for d in out] == [DeliveryKind.BOUNCE] and out[0].request.status == 110


def test_firewall_times_out_host_smps_only_while_keyed(wire: Wire) -> None:
    smp = build.smp(mad.ATTR_NODE_INFO)
    assert wire.reply("node1", smp, wire.lids["sm"]) is not None
    wire.lock("node1")
    # LID-routed anywhere, own LID included, and DR beyond the port: the send times out
    assert _bounced(wire.send("node1", smp, wire.lids["sm"]))
    assert _bounced(wire.send("node1", smp, wire.lids["node1"]))
    assert _bounced(wire.send("node1", build.smp(mad.ATTR_NODE_INFO, path=(1,))))
    assert _bounced(wire.send("node1", build.smp(mad.ATTR_SM_INFO, path=())))
    # zero hops too, Get or Set: the port itself is no exception (docs/fabric.md §2)
    port = wire.subnet.port(PortRef("node1", 1))
    before = (port.lid, port.m_key, port.guid_table())
    info = smp_attrs.PortInfo.decode(
        wire.reply("node2", build.smp(mad.ATTR_PORT_INFO),
                   wire.lids["node1"])[64:128])  # type: ignore[index]
    info.lid, info.m_key = 77, 0x6666
    for own in (build.smp(mad.ATTR_NODE_INFO, path=()),
                build.smp(mad.ATTR_PORT_INFO, path=()),
                build.smp(mad.ATTR_PORT_INFO, 1, method=mad.METHOD_SET, path=(),
                          data=info.encode()),
                build.smp(mad.ATTR_PORT_INFO, 1, method=mad.METHOD_SET, data=info.encode()),
                build.smp(mad.ATTR_NODE_INFO, method=mad.METHOD_TRAP_REPRESS, path=())):
        assert _bounced(wire.send("node1", own)), own[:4].hex()
    assert (port.lid, port.m_key, port.guid_table()) == before
    # what the driver knows comes from its own port query, which the firmware answers
    assert wire.fabric.drivers["node1"][0].port.lid == port.lid
    # QP1 is not QP0: PerfMgt and vendor classes still leave the host
    perf = wire.reply("node1", build.perf(mad.ATTR_PORT_COUNTERS, bytes([0, 1]) + bytes(62)),
                      wire.lids["sm"])
    assert perf is not None and perf[4:6] == b"\0\0"
    assert wire.cr("node1", "node2", 0xF0014) == (0, [0x00A001F5])
    # the wire still gets answers from the firmware for node1
    assert wire.reply("node2", smp, wire.lids["node1"]) is not None


def test_firewall_stays_on_while_cr_space_is_unlocked(wire: Wire) -> None:
    wire.lock("node1")
    assert wire.firmware["node1"].hw_access(unlock=True, key=KEY) == HcrStatus.OK
    assert not wire.firmware["node1"].secure.cr_locked
    assert _bounced(wire.send("node1", build.smp(mad.ATTR_NODE_INFO), wire.lids["sm"]))


def test_sminfo_and_traps_never_reach_a_firewalled_host(wire: Wire) -> None:
    sminfo = build.smp(mad.ATTR_SM_INFO)
    assert [d.kind for d in wire.send("node2", sminfo, wire.lids["node1"])] == [
        DeliveryKind.FORWARD]
    wire.lock("node1")
    assert wire.send("node2", sminfo, wire.lids["node1"]) == []


def _protect(wire: Wire, host: str, key: int, bits: int) -> None:
    port = wire.subnet.port(PortRef(host, 1))
    port.m_key, port.m_key_protect_bits = key, bits


@pytest.mark.parametrize("bits", [0, 1])
def test_m_key_hidden_from_the_host_whatever_the_level(wire: Wire, bits: int) -> None:
    _protect(wire, "node1", 0x77, bits)
    get = build.smp(mad.ATTR_PORT_INFO, path=(), m_key=0x77)
    raw = wire.reply("node1", get)
    assert raw is not None and smp_attrs.PortInfo.decode(raw[64:128]).m_key == 0x77  # no key yet
    wire.lock("node1")
    assert _bounced(wire.send("node1", get))  # the host's own SMPs are dropped
    # the driver's port query (libumad2sim's control channel stands for it) hides it
    data = wire.engine.port_info_data(PortRef("node1", 1))
    assert data[:8] == (0x77).to_bytes(8, "big")
    assert wire.fabric.host_port_info(PortRef("node1", 1), data)[:8] == bytes(8)
    # from the wire the IBTA rules hold: level 0 shows it, level 1 only with the key
    raw = wire.reply("node2", build.smp(mad.ATTR_PORT_INFO), wire.lids["node1"])
    assert raw is not None and smp_attrs.PortInfo.decode(raw[64:128]).m_key == (0x77 if bits == 0
                                                                        else 0)
    raw = wire.reply("node2", build.smp(mad.ATTR_PORT_INFO, m_key=0x77), wire.lids["node1"])
    assert raw is not None and smp_attrs.PortInfo.decode(raw[64:128]).m_key == 0x77


def _guid_set(wire: Wire, source: str, guids: list[int], m_key: int = 0,
              dlid: int | None = None) -> bytes | None:
    data = smp_attrs.GuidInfo(tuple(guids + [0] * (8 - len(guids)))).encode()
    smp = build.smp(mad.ATTR_GUID_INFO, 0, method=mad.METHOD_SET, m_key=m_key, data=data,
                    path=None if dlid else ())
    return wire.reply(source, smp, dlid)


def test_guid0_set_is_refused_while_keyed(wire: Wire) -> None:
    port = wire.subnet.port(PortRef("node1", 1))
    wire.lock("node1")
    assert _guid_set(wire, "node1", [0x1234, 0x5678]) is None  # the host's: dropped
    assert port.guid_table()[:2] == [port.guid, 0]  # nothing changed, alias included
    raw = _guid_set(wire, "node2", [0x1234, 0x5678], dlid=wire.lids["node1"])
    assert raw is not None and int.from_bytes(raw[4:6], "big") == 0x001C
    # a Set that keeps GUID0 is an ordinary alias-GUID Set
    raw = _guid_set(wire, "node2", [port.guid, 0x5678], dlid=wire.lids["node1"])
    assert raw is not None and raw[4:6] == b"\0\0" and port.guid_table()[1] == 0x5678
    # without the M_Key the SMA's own check comes first: dropped, violation counted
    _protect(wire, "node1", 0x99, 1)
    assert _guid_set(wire, "node2", [0x1234], dlid=wire.lids["node1"]) is None
    assert port.m_key_violations == 1


def test_guid0_without_a_key_follows_ibta(wire: Wire) -> None:
    port = wire.subnet.port(PortRef("node1", 1))
    raw = _guid_set(wire, "node2", [0x1234, 0x5678], dlid=wire.lids["node1"])
    assert raw is not None and raw[4:6] == b"\0\0"  # GUID0 read-only, silently kept
    assert port.guid_table()[:2] == [port.guid, 0x5678]


# -- the driver ----------------------------------------------------------------------------------


def test_mad_demux_masks_follow_the_firewall(wire: Wire) -> None:
    fw = wire.firmware["node1"]
    status, box = fw.mad_demux(MAD_DEMUX_QUERY_RESTR, 0x01)
    assert status == HcrStatus.OK and box == bytes(len(box))
    assert fw.mad_demux(MAD_DEMUX_CONFIG, 0x02)[0] == HcrStatus.BAD_PARAM
    assert fw.mad_demux(3, 0x01)[0] == HcrStatus.BAD_PARAM
    wire.lock("node1")
    status, box = fw.mad_demux(MAD_DEMUX_QUERY_RESTR, 0x01)
    for offset in (0x10, 0x20, 0x40, 0x70):  # fw.c:2800-2836
        assert box[offset:offset + 4] == b"\xff\xff\xff\xff"
    assert fw.mad_demux(MAD_DEMUX_CONFIG, 0x01, box) == (HcrStatus.OK, b"")


def test_driver_start_logs_secure_host_mode(wire: Wire, caplog: pytest.LogCaptureFixture) -> None:
    driver = wire.fabric.drivers["node1"][0]
    assert not driver.secure_host and not driver.dmesg
    with caplog.at_level(logging.INFO, logger="hcasim.mlx4"):
        wire.lock("node1")
    assert driver.secure_host
    line = ("mlx4_core 0000:01:00.0: HCA operating in secure-host mode. SMP firewall "
            "activated.")
    assert list(driver.dmesg) == [line]
    assert f"node1: {line}" in caplog.messages
    # the port as the firmware answered the driver's local PortInfo query at the start
    port = wire.subnet.port(PortRef("node1", 1))
    assert (driver.port.lid, driver.port.sm_lid) == (port.lid, port.sm_lid) != (0, 0)
    assert driver.show()["port"]["state"] == "ACTIVE" and not driver.events


def test_sm_changes_become_port_events(wire: Wire) -> None:
    driver = wire.fabric.drivers["node2"][0]
    port = wire.subnet.port(PortRef("node2", 1))
    port.state = smp_attrs.PORT_STATE_INIT
    info = smp_attrs.PortInfo.decode(wire.reply("node2", build.smp(mad.ATTR_PORT_INFO, path=()))[
        64:128])  # type: ignore[index]
    info.lid, info.master_sm_lid, info.master_sm_sl = 9, 1, 3
    info.client_reregister = 1
    info.port_state = smp_attrs.PORT_STATE_ARMED
    smp = build.smp(mad.ATTR_PORT_INFO, method=mad.METHOD_SET, data=info.encode(),
                    path=(1, 3))
    assert wire.reply("sm", smp) is not None
    info.port_state = smp_attrs.PORT_STATE_ACTIVE
    info.client_reregister = 0
    smp = build.smp(mad.ATTR_PORT_INFO, method=mad.METHOD_SET, data=info.encode(),
                    path=(1, 3))
    assert wire.reply("sm", smp) is not None
    assert list(driver.events) == [
        "EQE 0x1d PORT_MNG_CHG subtype 0x15 PORT_INFO port 1 changed_attr 0x1d "
        "(MSTR_SM_LID,LID,CLIENT_REREG,MSTR_SM_SL) mstr_sm_lid 1 port_lid 9 mstr_sm_sl 3",
        "EQE 0x09 PORT_CHANGE subtype 0x4 ACTIVE port 1",
    ]
    assert (driver.port.lid, driver.port.sm_lid, driver.port.sm_sl) == (9, 1, 3)
    assert driver.show()["port"]["state"] == "ACTIVE"


def test_table_events(wire: Wire) -> None:
    driver = wire.fabric.drivers["node2"][0]
    fw = wire.subnet.node("node2").firmware
    assert isinstance(fw, Cx3Wire)
    port = wire.subnet.port(PortRef("node2", 1))
    fw.port_changed(port, PortChange.PKEY_TABLE | PortChange.GUID_TABLE
                    | PortChange.SL2VL_TABLE | PortChange.M_KEY)
    assert [e.split(" port")[0] for e in driver.events] == [
        "EQE 0x1d PORT_MNG_CHG subtype 0x16 PKEY_TABLE",
        "EQE 0x1d PORT_MNG_CHG subtype 0x14 GUID_INFO",
        "EQE 0x1d PORT_MNG_CHG subtype 0x17 SL_TO_VL",
    ]  # no event for an M_Key change: mlx4 has none (docs/sources.md §9.3)
    assert driver.events[-1].endswith("sl2vl 0123456789abcde7")


def test_eqe_layout() -> None:
    # struct mlx4_eqe: type byte 1, subtype byte 3, port_mgmt_change.port byte 7, then
    # mstr_sm_lid, port_lid, changed_attr, 3 reserved, mstr_sm_sl, gid_prefix
    eqe = mlx4_driver.port_info_eqe(1, sm_lid=0x0102, lid=0x0304, changed_attr=0x15,
                                    sm_sl=5, gid_prefix=0xFE80000000000000)
    assert eqe.hex() == ("001d0015" "00000001" "01020304" "00000015" "00000005"
                         "fe80000000000000" "00000000")
    # PORT_CHANGE: port in bits 31:28 of the event's third dword (eq.c mlx4_eq_int)
    assert mlx4_driver.port_change_eqe(2, True)[12:16] == b"\x20\0\0\0"
    driver = mlx4_driver.Mlx4Driver("h", "h/mt4099", Cx3Firmware(CONNECTX3, Flash()),
                                    mlx4_driver.PortView)
    driver.post_eqe(bytes(31))  # not an EQE: ignored
    bad = bytearray(32)
    bad[1], bad[3] = 0x1D, 0x42
    driver.post_eqe(bytes(bad))
    assert list(driver.dmesg) == [
        "mlx4_core 0000:01:00.0: Unsupported subtype 0x42 for Port Management Change event"]


def test_show_drivers(wire: Wire) -> None:
    shown = wire.fabric.show_drivers("node1")
    assert [d["mst"] for d in shown] == ["/dev/mst/mt4099_pci_cr0"]
    assert wire.fabric.show_drivers("node3") == []  # no ConnectX-3 model on its node here


def test_control_channel_port_info_hides_the_m_key(wire: Wire) -> None:
    data = bytes(range(64))
    ref = PortRef("node1", 1)
    assert wire.fabric.host_port_info(ref, data) == data
    wire.lock("node1")
    assert wire.fabric.host_port_info(ref, data) == bytes(8) + data[8:]
    assert wire.fabric.host_port_info(PortRef("node3", 1), data) == data  # no CX3 model here
