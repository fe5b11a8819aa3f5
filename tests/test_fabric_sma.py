"""The SMA: Get/Set of every attribute, index checks, PortInfo Set rules, M_Key, hooks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hcasim.fabric import quicksm
from hcasim.fabric.engine import Delivery, DeliveryKind, MadEngine
from hcasim.fabric.netfile import parse_netfile_text
from hcasim.fabric.subnet import (
    Action,
    Answer,
    MadContext,
    NodeFirmware,
    PortChange,
    PortState,
    Subnet,
)
from hcasim.fabric.topology import PortRef
from hcasim.ib import build, mad, smp_attrs

NET = """\
Switch 4 "s1" # "switch one" enhanced port 0
[1] "h1"[1]
[2] "h2"[1]
[3] "s2"[3]

Switch 4 "s2"
[1] "h3"[1]
[3] "s1"[3]

vendid=0x2c9
devid=0x1003
Hca 2 "h1" # "h1 HCA-1"
[1] "s1"[1]

Hca 1 "h2"
[1] "s1"[2]

Hca 1 "h3"
[1] "s2"[1]
"""
GET, SET = mad.METHOD_GET, mad.METHOD_SET
OK, BAD_ATTR, BAD_FIELD = mad.STATUS_OK, mad.STATUS_METHOD_ATTR_UNSUPPORTED, \
    mad.STATUS_INVALID_FIELD


class Lab:
    """A subnet with its engine, and a way to send SMPs like smpquery does."""

    def __init__(self, text: str = NET) -> None:
        self.subnet = Subnet(parse_netfile_text(text))
        self.engine = MadEngine(self.subnet)
        self.now = 0.0

    def port(self, node: str, number: int) -> PortState:
        return self.subnet.port(PortRef(node, number))

    def send(self, source: str, mad_bytes: bytes, dlid: int | None = None) -> list[Delivery]:
        ref = self.subnet.topology.attach_port(source)
        return self.engine.process(ref, build.sim_request(mad_bytes, dlid), self.now)

    def query(self, source: str, attr: int, mod: int = 0, *, path: tuple[int, ...] = (),
              lid: int | None = None, method: int = GET, m_key: int = 0,
              data: bytes = b"") -> tuple[int, bytes] | None:
        """(status, 64-byte data) of the reply, or None if nothing came back."""
        smp = build.smp(attr, mod, method=method, path=None if lid else path, m_key=m_key,
                        data=data)
        replies = [d for d in self.send(source, smp, lid) if d.kind is DeliveryKind.REPLY]
        if not replies:
            return None
        raw = replies[0].request.mad
        assert raw[3] == (mad.METHOD_GET_RESP if method in (GET, SET) else method | 0x80)
        status = int.from_bytes(raw[4:6], "big")
        if raw[1] == mad.CLASS_SUBN_DIRECTED_ROUTE:
            assert status & mad.DR_DIRECTION_BIT
            status &= 0x7FFF
        return status, raw[64:128]

    def ok(self, source: str, attr: int, mod: int = 0, **kw: object) -> bytes:
        result = self.query(source, attr, mod, **kw)  # type: ignore[arg-type]
        assert result is not None and result[0] == OK, result
        return result[1]

    def portinfo(self, source: str, mod: int = 0, **kw: object) -> smp_attrs.PortInfo:
        return smp_attrs.PortInfo.decode(self.ok(source, mad.ATTR_PORT_INFO, mod, **kw))

    def set_portinfo(self, source: str, info: smp_attrs.PortInfo, mod: int = 0,
                     **kw: object) -> tuple[int, bytes] | None:
        return self.query(source, mad.ATTR_PORT_INFO, mod, method=SET,  # type: ignore[arg-type]
                          data=info.encode(), **kw)


@pytest.fixture
def lab() -> Lab:
    return Lab()


# -- read-only attributes ----------------------------------------------------------------------


def test_node_info_and_description(lab: Lab) -> None:
    info = smp_attrs.NodeInfo.decode(lab.ok("h1", mad.ATTR_NODE_INFO))
    assert (info.node_type, info.num_ports, info.local_port_num) == (1, 2, 1)
    assert info.node_guid == 0x100000 and info.port_guid == 0x100001
    assert (info.vendor_id, info.device_id, info.revision) == (0x2C9, 0x1003, 0xA1)
    sw = smp_attrs.NodeInfo.decode(lab.ok("h1", mad.ATTR_NODE_INFO, path=(1,)))
    assert (sw.node_type, sw.local_port_num, sw.port_guid) == (2, 1, 0x200000)  # ingress 1
    desc = smp_attrs.NodeDescription.decode(lab.ok("h1", mad.ATTR_NODE_DESC, path=(1,)))
    assert desc.description == "switch one"
    # NodeInfo and NodeDescription are Get-only: a Set is a method/attribute mismatch
    assert lab.query("h1", mad.ATTR_NODE_INFO, method=SET)[0] == BAD_ATTR  # type: ignore[index]
    assert lab.query("h1", mad.ATTR_NODE_DESC, method=SET)[0] == BAD_ATTR  # type: ignore[index]


def test_unknown_attribute_and_method(lab: Lab) -> None:
    assert lab.query("h1", 0x0099) == (BAD_ATTR, bytes(64))
    assert lab.query("h1", mad.ATTR_NODE_INFO, method=0x04)[0] == \
        mad.STATUS_METHOD_UNSUPPORTED  # type: ignore[index]
    # switch-only attributes on a CA
    for attr in (mad.ATTR_SWITCH_INFO, mad.ATTR_LINEAR_FDB, mad.ATTR_MULTICAST_FDB):
        assert lab.query("h1", attr)[0] == BAD_ATTR  # type: ignore[index]


def test_sminfo_goes_to_the_sm_client(lab: Lab) -> None:
    out = lab.send("h1", build.smp(mad.ATTR_SM_INFO, path=(1, 3, 1)))
    assert [d.kind for d in out] == [DeliveryKind.FORWARD]
    assert out[0].port == PortRef("h3", 1)
    forwarded = mad.DrSmp.decode(out[0].request.mad)
    assert forwarded.return_path[:4] == bytes([1, 1, 3, 1])  # written for the responder


# -- PortInfo ------------------------------------------------------------------------------------


def test_portinfo_get(lab: Lab) -> None:
    pi = lab.portinfo("h1")
    assert (pi.local_port_num, pi.port_state, pi.port_phys_state) == (1, 2, 5)
    assert pi.capability_mask == 0x0050C048 and pi.m_key_lease_period == 4089
    assert (pi.link_width_active, pi.link_speed_active, pi.guid_cap) == (2, 1, 32)
    down = lab.portinfo("h1", 2)  # the other port of the CA, not cabled
    assert (down.port_state, down.port_phys_state, down.local_port_num) == (1, 2, 1)
    sw0 = lab.portinfo("h1", 0, path=(1,))  # AM 0 on a switch: port 0
    assert sw0.local_port_num == 1 and sw0.capability_mask == 0xC048
    sw3 = lab.portinfo("h1", 3, path=(1,))
    assert sw3.port_state == smp_attrs.PORT_STATE_INIT and sw3.m_key_lease_period == 0


@pytest.mark.parametrize(("path", "mod"), [((1,), 5), ((1,), 0x7FFFFFFF), ((), 3)])
def test_portinfo_port_out_of_range(lab: Lab, path: tuple[int, ...], mod: int) -> None:
    # s1 has 4 ports, h1 has 2: out-of-range port numbers are InvalidField, never an index
    result = lab.query("h1", mad.ATTR_PORT_INFO, mod, path=path)
    assert result is not None and result[0] == BAD_FIELD


def test_portinfo_set_lid_sm_lid_and_activate(lab: Lab) -> None:
    pi = lab.portinfo("h1")
    new = replace(pi, lid=7, master_sm_lid=1, master_sm_sl=3, gid_prefix=0xFE80000000000001,
                  port_state=0, subnet_timeout=18, client_reregister=1)
    status, data = lab.set_portinfo("h1", new)  # type: ignore[misc]
    got = smp_attrs.PortInfo.decode(data)
    assert status == OK and (got.lid, got.master_sm_lid, got.master_sm_sl) == (7, 1, 3)
    assert got.client_reregister == 0 and got.subnet_timeout == 18
    # Armed needs one step from Init, Active one step from Armed; the peer stays within 1
    assert lab.set_portinfo("h1", replace(got, port_state=4))[0] == BAD_FIELD  # type: ignore
    assert lab.set_portinfo("h1", replace(got, port_state=3))[0] == OK  # type: ignore[index]
    assert lab.port("h1", 1).state == smp_attrs.PORT_STATE_ARMED
    assert lab.set_portinfo("h1", replace(got, port_state=4))[0] == BAD_FIELD  # type: ignore
    peer = lab.set_portinfo("h1", replace(lab.portinfo("h1", 1, path=(1,)), port_state=3),
                            1, path=(1,))
    assert peer is not None and peer[0] == OK
    assert lab.set_portinfo("h1", replace(got, port_state=4))[0] == OK  # type: ignore[index]
    assert lab.port("h1", 1).state == smp_attrs.PORT_STATE_ACTIVE


def test_portinfo_set_is_all_or_nothing(lab: Lab) -> None:
    pi = lab.portinfo("h1")
    for bad in (replace(pi, lid=0xC000), replace(pi, lid=0xBFFF, lmc=1),
                replace(pi, master_sm_lid=0xFFFF), replace(pi, port_state=5),
                replace(pi, operational_vls=5),
                replace(pi, link_width_enabled=0x08), replace(pi, link_speed_enabled=2),
                replace(pi, link_speed_ext_enabled=1), replace(pi, port_state=4)):
        result = lab.set_portinfo("h1", replace(bad, m_key=0x99))
        assert result is not None and result[0] == BAD_FIELD
        assert lab.port("h1", 1).m_key == 0  # nothing else changed either


def test_portinfo_set_other_port_of_a_ca_is_refused(lab: Lab) -> None:
    pi = lab.portinfo("h1", 2)
    assert lab.set_portinfo("h1", replace(pi, lid=9), 2)[0] == BAD_FIELD  # type: ignore
    assert lab.port("h1", 2).lid == 0


def test_portinfo_set_state_on_down_port_is_refused(lab: Lab) -> None:
    s1p4 = lab.portinfo("h1", 4, path=(1,))
    assert lab.set_portinfo("h1", replace(s1p4, port_state=3), 4, path=(1,))[0] == \
        BAD_FIELD  # type: ignore[index]


def test_portinfo_set_down_bounces_link(lab: Lab) -> None:
    lab.port("h1", 1).state = lab.port("s1", 1).state = smp_attrs.PORT_STATE_ACTIVE
    sw = lab.subnet.node("s1").switch
    assert sw is not None
    sw.port_state_change = 0
    pi = lab.portinfo("h1")
    assert lab.set_portinfo("h1", replace(pi, port_state=1))[0] == OK  # type: ignore[index]
    assert lab.port("h1", 1).state == lab.port("s1", 1).state == smp_attrs.PORT_STATE_INIT
    assert sw.port_state_change == 1


def test_portinfo_set_disable_and_enable(lab: Lab) -> None:
    s1p3 = lab.portinfo("h1", 3, path=(1,))
    assert lab.set_portinfo("h1", replace(s1p3, port_phys_state=3), 3, path=(1,))[0] == OK  # type: ignore
    assert lab.port("s1", 3).phys_state == smp_attrs.PHYS_DISABLED
    assert lab.port("s2", 3).phys_state == smp_attrs.PHYS_POLLING
    assert lab.query("h1", mad.ATTR_NODE_INFO, path=(1, 3)) is None  # bounced
    again = lab.portinfo("h1", 3, path=(1,))
    assert lab.set_portinfo("h1", replace(again, port_phys_state=2), 3, path=(1,))[0] == OK  # type: ignore
    assert lab.port("s2", 3).state == smp_attrs.PORT_STATE_INIT
    assert lab.query("h1", mad.ATTR_NODE_INFO, path=(1, 3)) is not None


def test_portinfo_set_widths_renegotiate(lab: Lab) -> None:
    for p in (lab.port("h1", 1), lab.port("s1", 1)):  # hardware able to do 1x-12x
        p.width_supported = 0x1F
    lab.port("s1", 1).width_enabled = 0x1F
    pi = lab.portinfo("h1")
    assert pi.link_width_supported == 0x1F
    bad = lab.set_portinfo("h1", replace(pi, link_width_enabled=0x20))
    assert bad is not None and bad[0] == BAD_FIELD  # not a subset of Supported
    result = lab.set_portinfo("h1", replace(pi, link_width_enabled=0xFF))  # = supported
    assert result is not None and lab.port("h1", 1).width_enabled == 0x1F
    assert lab.port("h1", 1).width_active == 0x08  # 12x, the best both ends enable
    result = lab.set_portinfo("h1", replace(pi, link_width_enabled=0x01))
    assert result is not None and result[0] == OK
    assert lab.port("h1", 1).width_active == lab.port("s1", 1).width_active == 0x01
    assert smp_attrs.PortInfo.decode(result[1]).link_width_enabled == 0x01
    # nothing in common with the peer: the link cannot train and goes down
    lab.port("s1", 1).width_enabled = 0x02
    result = lab.set_portinfo("h1", replace(pi, link_width_enabled=0x11, port_state=0))
    assert result is not None and result[0] == OK
    assert lab.port("h1", 1).state == smp_attrs.PORT_STATE_DOWN


def test_switch_port0_lid(lab: Lab) -> None:
    pi = lab.portinfo("h1", 0, path=(1,))
    assert lab.set_portinfo("h1", replace(pi, lid=3, master_sm_lid=1), 0, path=(1,))[0] == OK  # type: ignore
    assert (lab.port("s1", 0).lid, lab.port("s1", 0).sm_lid) == (3, 1)
    # external switch ports have no LID: Set ignores it there
    p3 = lab.portinfo("h1", 3, path=(1,))
    assert lab.set_portinfo("h1", replace(p3, lid=77), 3, path=(1,))[0] == OK  # type: ignore
    assert lab.port("s1", 3).lid == 0


# -- switch tables -------------------------------------------------------------------------------


def test_switch_info(lab: Lab) -> None:
    info = smp_attrs.SwitchInfo.decode(lab.ok("h1", mad.ATTR_SWITCH_INFO, path=(1,)))
    assert info.linear_fdb_cap == 0xC000 and info.enhanced_port0 == 1
    assert info.port_state_change == 1  # links came up at start
    new = replace(info, linear_fdb_top=100, life_time_value=18, port_state_change=1)
    got = smp_attrs.SwitchInfo.decode(lab.ok("h1", mad.ATTR_SWITCH_INFO, path=(1,), method=SET,
                                      data=new.encode()))
    assert (got.linear_fdb_top, got.life_time_value, got.port_state_change) == (100, 18, 0)
    bad = replace(got, linear_fdb_top=0xC000)
    assert lab.query("h1", mad.ATTR_SWITCH_INFO, path=(1,), method=SET,
                     data=bad.encode())[0] == BAD_FIELD  # type: ignore[index]


def test_linear_forwarding_table_blocks(lab: Lab) -> None:
    block = bytes(range(64))
    assert lab.ok("h1", mad.ATTR_LINEAR_FDB, 2, path=(1,), method=SET, data=block) == block
    assert lab.ok("h1", mad.ATTR_LINEAR_FDB, 2, path=(1,)) == block
    assert lab.ok("h1", mad.ATTR_LINEAR_FDB, 1, path=(1,)) == b"\xff" * 64
    sw = lab.subnet.node("s1").switch
    assert sw is not None and len(sw.linear_fdb) == 192  # grown to the block written
    for bad in (768, 767 + 1, 0xFFFFFFFF):  # 48K entries = blocks 0..767
        assert lab.query("h1", mad.ATTR_LINEAR_FDB, bad, path=(1,), method=SET,
                         data=block)[0] == BAD_FIELD  # type: ignore[index]
    assert lab.query("h1", mad.ATTR_LINEAR_FDB, 767, path=(1,))[0] == OK  # type: ignore


def test_multicast_forwarding_table(lab: Lab) -> None:
    masks = smp_attrs.MulticastForwardingTable(tuple(range(32))).encode()
    assert lab.ok("h1", mad.ATTR_MULTICAST_FDB, 5, path=(1,), method=SET, data=masks) == masks
    assert lab.ok("h1", mad.ATTR_MULTICAST_FDB, 5, path=(1,)) == masks
    assert lab.ok("h1", mad.ATTR_MULTICAST_FDB, 6, path=(1,)) == bytes(64)
    # 1024 MLIDs = blocks 0..31; a 4-port switch has one 16-port mask position
    for mod in (32, 1 << 28):
        assert lab.query("h1", mad.ATTR_MULTICAST_FDB, mod, path=(1,))[0] == BAD_FIELD  # type: ignore


def test_pkey_table(lab: Lab) -> None:
    table = smp_attrs.PKeyTable.decode(lab.ok("h1", mad.ATTR_PKEY_TABLE))
    assert table.pkeys[0] == 0xFFFF and set(table.pkeys[1:]) == {0}
    new = smp_attrs.PKeyTable((0xFFFF, 0x8001) + (0,) * 30).encode()
    assert lab.ok("h1", mad.ATTR_PKEY_TABLE, 1, method=SET, data=new) == new
    assert smp_attrs.PKeyTable.decode(lab.ok("h1", mad.ATTR_PKEY_TABLE, 1)).pkeys[1] == 0x8001
    assert lab.query("h1", mad.ATTR_PKEY_TABLE, 2)[0] == BAD_FIELD  # type: ignore  # 64 = 2 blocks
    # switches: AM[31:16] is the port; port 0 has PartitionCap 8
    sw0 = smp_attrs.PKeyTable.decode(lab.ok("h1", mad.ATTR_PKEY_TABLE, 0, path=(1,)))
    assert sw0.pkeys[:2] == (0xFFFF, 0)
    assert lab.query("h1", mad.ATTR_PKEY_TABLE, 9 << 16, path=(1,))[0] == BAD_FIELD  # type: ignore
    assert lab.query("h1", mad.ATTR_PKEY_TABLE, 3 << 16 | 1, path=(1,))[0] == OK  # type: ignore


def test_sl2vl_and_vlarb(lab: Lab) -> None:
    default = smp_attrs.SlToVlTable.decode(lab.ok("h1", mad.ATTR_SL2VL_TABLE))
    assert default.vls == tuple(range(15)) + (7,)
    new = smp_attrs.SlToVlTable(tuple([1] * 16)).encode()
    lab.ok("h1", mad.ATTR_SL2VL_TABLE, method=SET, data=new)
    assert lab.ok("h1", mad.ATTR_SL2VL_TABLE)[:8] == new
    assert lab.query("h1", mad.ATTR_SL2VL_TABLE, 9 << 8 | 1, path=(1,))[0] == BAD_FIELD  # type: ignore
    assert lab.query("h1", mad.ATTR_SL2VL_TABLE, 1 << 8 | 3, path=(1,))[0] == OK  # type: ignore
    low = smp_attrs.VlArbTable.decode(lab.ok("h1", mad.ATTR_VL_ARB_TABLE, 1 << 16))
    assert list(zip(low.vls, low.weights, strict=True))[:3] == [(0, 0), (1, 4), (2, 4)]
    high = smp_attrs.VlArbTable.decode(lab.ok("h1", mad.ATTR_VL_ARB_TABLE, 3 << 16))
    assert (high.vls[0], high.weights[0]) == (0, 4)
    for mod in (0, 2 << 16, 5 << 16):  # block 0 and 5 do not exist; cap 8 has no block 2
        assert lab.query("h1", mad.ATTR_VL_ARB_TABLE, mod)[0] == BAD_FIELD  # type: ignore


def test_guid_info_guid0_read_only(lab: Lab) -> None:
    block = smp_attrs.GuidInfo.decode(lab.ok("h1", mad.ATTR_GUID_INFO))
    assert block.guids == (0x100001,) + (0,) * 7
    new = smp_attrs.GuidInfo((0xBAD, 0xA1, 0xA2) + (0,) * 5).encode()
    got = smp_attrs.GuidInfo.decode(lab.ok("h1", mad.ATTR_GUID_INFO, method=SET, data=new))
    assert got.guids[:3] == (0x100001, 0xA1, 0xA2)  # GUID0 kept
    assert lab.ok("h1", mad.ATTR_GUID_INFO, 3) is not None  # GUIDCap 32 = blocks 0..3
    assert lab.query("h1", mad.ATTR_GUID_INFO, 4)[0] == BAD_FIELD  # type: ignore[index]
    sw = smp_attrs.GuidInfo.decode(lab.ok("h1", mad.ATTR_GUID_INFO, path=(1,)))
    assert sw.guids[0] == 0x200000


# -- M_Key --------------------------------------------------------------------------------------


def protect(lab: Lab, key: int, bits: int, lease: int = 0, source: str = "h1") -> None:
    pi = lab.portinfo(source)
    result = lab.set_portinfo(source, replace(pi, m_key=key, m_key_protect_bits=bits,
                                              m_key_lease_period=lease))
    assert result is not None and result[0] == OK


def test_m_key_protect_bits_0(lab: Lab) -> None:
    protect(lab, 0x1122, 0)
    assert lab.portinfo("h1", m_key=0x1).m_key == 0x1122  # Get succeeds, key visible
    pi = lab.portinfo("h1")
    assert lab.set_portinfo("h1", replace(pi, lid=5), m_key=0x1) is None  # Set dropped
    assert lab.port("h1", 1).lid == 0 and lab.port("h1", 1).m_key_violations == 1
    assert lab.set_portinfo("h1", replace(pi, lid=5), m_key=0x1122)[0] == OK  # type: ignore


def test_m_key_protect_bits_1_hides_key(lab: Lab) -> None:
    protect(lab, 0x1122, 1)
    assert lab.portinfo("h1", m_key=0x1).m_key == 0
    assert lab.portinfo("h1", m_key=0x1122).m_key == 0x1122
    assert lab.port("h1", 1).m_key_violations == 0


@pytest.mark.parametrize("bits", [2, 3])
def test_m_key_protect_bits_2_and_3_drop_gets(lab: Lab, bits: int) -> None:
    protect(lab, 0x1122, bits)
    assert lab.query("h1", mad.ATTR_PORT_INFO, m_key=0x1) is None
    assert lab.query("h1", mad.ATTR_NODE_INFO, m_key=0x1) is None  # every attribute
    assert lab.port("h1", 1).m_key_violations == 2
    assert lab.query("h1", mad.ATTR_NODE_INFO, m_key=0x1122) is not None


def test_m_key_violations_saturate(lab: Lab) -> None:
    protect(lab, 0x1122, 2)
    lab.port("h1", 1).m_key_violations = 0xFFFE
    for _ in range(3):
        lab.query("h1", mad.ATTR_NODE_INFO, m_key=7)
    assert lab.port("h1", 1).m_key_violations == 0xFFFF


def test_m_key_lease_expiry(lab: Lab) -> None:
    protect(lab, 0x1122, 2, lease=60)
    lab.now = 100.0
    assert lab.query("h1", mad.ATTR_NODE_INFO, m_key=7) is None  # starts the lease timer
    assert lab.port("h1", 1).m_key_lease_deadline == 160.0
    lab.now = 159.0
    assert lab.query("h1", mad.ATTR_NODE_INFO, m_key=7) is None  # timer keeps running
    assert lab.port("h1", 1).m_key_lease_deadline == 160.0
    lab.now = 160.0
    assert lab.query("h1", mad.ATTR_NODE_INFO, m_key=7) is not None  # expired: bits 0
    assert lab.port("h1", 1).m_key_protect_bits == 0


def test_m_key_valid_request_stops_the_lease(lab: Lab) -> None:
    protect(lab, 0x1122, 2, lease=60)
    assert lab.query("h1", mad.ATTR_NODE_INFO, m_key=7) is None
    assert lab.port("h1", 1).m_key_lease_deadline is not None
    assert lab.query("h1", mad.ATTR_NODE_INFO, m_key=0x1122) is not None
    assert lab.port("h1", 1).m_key_lease_deadline is None
    lab.now = 1000.0
    assert lab.query("h1", mad.ATTR_NODE_INFO, m_key=7) is None  # still protected


def test_m_key_lease_zero_never_expires(lab: Lab) -> None:
    protect(lab, 0x1122, 2, lease=0)
    assert lab.query("h1", mad.ATTR_NODE_INFO, m_key=7) is None
    assert lab.port("h1", 1).m_key_lease_deadline is None


def test_switch_m_key_lives_on_port_0(lab: Lab) -> None:
    pi = lab.portinfo("h1", 0, path=(1,))
    lab.set_portinfo("h1", replace(pi, m_key=0x55, m_key_protect_bits=2), 0, path=(1,))
    assert lab.query("h1", mad.ATTR_PORT_INFO, 3, path=(1,)) is None  # any port of s1
    assert lab.port("s1", 0).m_key_violations == 1
    assert lab.query("h1", mad.ATTR_PORT_INFO, 3, path=(1,), m_key=0x55) is not None


def test_bad_m_key_trap_256_reaches_the_sm() -> None:
    lab = Lab()
    lids = quicksm.configure(lab.subnet, PortRef("h3", 1))
    h1_lid = lab.port("h1", 1).lid
    sm_lid = lab.port("h3", 1).lid
    protect(lab, 0x1122, 2)
    out = lab.send("h2", build.smp(mad.ATTR_PORT_INFO, 1, path=(1, 1), m_key=0xBAD))
    assert [d.kind for d in out] == [DeliveryKind.FORWARD]  # no reply, one trap
    trap = out[0]
    assert trap.port == PortRef("h3", 1) and trap.note == "trap"
    assert (trap.request.dlid, trap.request.slid) == (sm_lid, h1_lid)
    smp = mad.Smp.decode(trap.request.mad)
    assert (smp.mgmt_class, smp.method, smp.attr_id) == (0x01, mad.METHOD_TRAP, 0x0002)
    notice = smp_attrs.Notice.decode(smp.data)
    assert (notice.is_generic, notice.notice_type, notice.producer_type) == (1, 2, 1)
    assert (notice.trap_number, notice.issuer_lid) == (256, h1_lid)
    details = smp_attrs.BadMKeyDetails.decode(notice.data_details)
    assert (details.lid, details.method, details.attr_id, details.m_key) == \
        (h1_lid, GET, mad.ATTR_PORT_INFO, 0xBAD)
    assert (details.dr_notice, details.dr_hop_count, details.dr_slid) == (1, 2, 0xFFFF)
    assert details.dr_return_path == bytes([1, 2]) + bytes(28)
    assert len(lids) == 5


def test_trap_repress_needs_the_m_key(lab: Lab) -> None:
    protect(lab, 0x1122, 1)
    repress = build.smp(mad.ATTR_NOTICE, method=mad.METHOD_TRAP_REPRESS, path=(), m_key=9)
    assert lab.send("h1", repress) == []
    assert lab.port("h1", 1).m_key_violations == 1
    good = build.smp(mad.ATTR_NOTICE, method=mad.METHOD_TRAP_REPRESS, path=(), m_key=0x1122)
    assert lab.send("h1", good) == [] and lab.port("h1", 1).m_key_violations == 1


# -- firmware hooks ------------------------------------------------------------------------------


class Firewall(NodeFirmware):
    """A toy firmware exercising every hook."""

    def __init__(self) -> None:
        self.changes: list[tuple[int, PortChange]] = []

    def host_send(self, ctx: MadContext) -> Action:
        smp = ctx.mad
        local = isinstance(smp, mad.DrSmp) and smp.hop_count == 0
        return Action.PASS if local else Action.DROP

    def smp_received(self, ctx: MadContext) -> Action | Answer:
        if ctx.mad.attr_id == mad.ATTR_GUID_INFO and ctx.mad.method == SET:
            return Answer(mad.STATUS_INVALID_FIELD, bytes(64))
        if ctx.mad.attr_id == mad.ATTR_SWITCH_INFO:
            return Action.DROP
        return Action.PASS

    def smp_reply(self, ctx: MadContext, attr_id: int, data: bytearray) -> None:
        if attr_id == mad.ATTR_PORT_INFO and ctx.from_host:
            data[0:8] = bytes(8)

    def mad_received(self, ctx: MadContext) -> bytes | None:
        reply = bytearray(ctx.raw)
        reply[3] = mad.METHOD_GET_RESP
        reply[32:36] = b"\x00\xa0\x01\xf5"
        return bytes(reply)

    def port_changed(self, port: PortState, changes: PortChange) -> None:
        self.changes.append((port.number, changes))


def test_firmware_hooks(lab: Lab) -> None:
    fw = Firewall()
    lab.subnet.set_firmware("h1", fw)
    protect(lab, 0x77, 0)  # local 0-hop SMPs still pass
    assert lab.portinfo("h1").m_key == 0  # hidden from the host
    assert lab.portinfo("h2", path=(1, 1)).m_key == 0x77  # visible from the wire
    assert lab.query("h1", mad.ATTR_NODE_INFO, path=(1,)) is None  # host SMPs dropped
    assert lab.query("h2", mad.ATTR_GUID_INFO, path=(1, 1), method=SET,
                     data=bytes(64)) == (BAD_FIELD, bytes(64))
    assert (1, PortChange.M_KEY) in fw.changes
    vendor_get = bytes.fromhex("010a010100000000000000035f978201005000000f010014") + bytes(232)
    lids = quicksm.configure(lab.subnet, PortRef("h2", 1))
    h1_lid = next(lid for lid, p in lids.items() if p.node.id == "h1")
    out = lab.engine.process(PortRef("h2", 1), build.sim_request(vendor_get, h1_lid), 0.0)
    assert out[0].kind is DeliveryKind.REPLY and out[0].request.mad[32:36] == b"\x00\xa0\x01\xf5"


def test_port_changed_reports_sm_changes(lab: Lab) -> None:
    fw = Firewall()
    lab.subnet.set_firmware("h2", fw)
    pi = lab.portinfo("h2")
    lab.set_portinfo("h2", replace(pi, lid=4, master_sm_lid=2, client_reregister=1))
    assert fw.changes[-1] == (1, PortChange.LID | PortChange.SM_LID
                              | PortChange.CLIENT_REREGISTER)


def test_enabling_everything_supported_keeps_the_cabled_speed() -> None:
    """A 4xEDR link stays 4xEDR when an SM enables every supported width and speed (the
    net file's tag describes the ports' hardware)."""
    lab = Lab('Switch 4 "s"\n[1] "h"[1] # "h" lid 0 4xEDR\n\n'
              'Hca 1 "h"\n[1] "s"[1] # lid 0 lmc 0 "s" lid 0 4xEDR\n')
    for source, path, mod in (("h", (), 0), ("h", (1,), 1)):
        pi = lab.portinfo(source, mod, path=path)
        assert (pi.link_width_supported, pi.link_speed_ext_supported) == (0x03, 0x03)
        new = replace(pi, link_width_enabled=0xFF, link_speed_enabled=0xF,
                      link_speed_ext_enabled=31, port_state=0)
        result = lab.set_portinfo(source, new, mod, path=path)
        assert result is not None and result[0] == OK
    h = lab.port("h", 1)
    assert (h.width_active, h.speed_active, h.ext_speed_active) == (0x02, 0x4, 0x2)
