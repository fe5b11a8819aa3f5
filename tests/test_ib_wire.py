"""Known byte strings: datagrams captured from the real tools (kept in
:mod:`tests.support.ib_captures`), decoded and re-encoded.

The captures were taken with strace from Debian ibsim 0.10 and infiniband-diags 44
(``smpquery`` under libumad2sim.so, SIM_HOST=hca1) on this net file::

    Switch 4 "sw1"
    [1] "hca1"[1]
    [2] "hca2"[1]

    Hca 2 "hca1"
    [1] "sw1"[1]

    Hca 1 "hca2"
    [1] "sw1"[2]

smpquery printed NodeInfo of hca1 as SystemGuid/Guid 0x100000, PortGuid 0x100001,
PartCap 64, Revision 0xa1, LocalPort 1, NumPorts 2, and PortInfo of sw1 port 1 reached
by "0,1" as CapMask 0xc048, MkeyLeasePeriod 4089, LocalPort 1, LinkState Active,
PhysLinkState LinkUp, SubnetTimeout 31, RespTimeVal 8 (see the assertions).
"""

from __future__ import annotations

from hcasim.ib import mad, simproto, smp_attrs, vendor
from tests.support.ib_captures import (
    CONNECT_REPLY,
    CONNECT_REQUEST,
    GET_VENDOR_REPLY,
    NODEINFO_REPLY,
    NODEINFO_REQUEST,
    PORTINFO_REPLY,
    PORTINFO_REQUEST,
)


def test_captures_have_the_wire_sizes() -> None:
    for blob in (NODEINFO_REQUEST, NODEINFO_REPLY, PORTINFO_REQUEST, PORTINFO_REPLY):
        assert len(blob) == simproto.SIM_REQUEST_SIZE
    for blob in (CONNECT_REQUEST, CONNECT_REPLY, GET_VENDOR_REPLY):
        assert len(blob) == simproto.SIM_CTL_SIZE


def test_dr_nodeinfo_request() -> None:
    req = simproto.SimRequest.decode(NODEINFO_REQUEST)
    assert (req.dlid, req.slid, req.dqp, req.sqp, req.status) == (0xFFFF, 0xFFFF, 0, 0, 0)
    assert req.length == 256
    smp = mad.DrSmp.decode(req.mad)
    assert (smp.base_version, smp.mgmt_class, smp.class_version, smp.method) == (1, 0x81, 1, 1)
    assert (smp.direction, smp.status, smp.hop_pointer, smp.hop_count) == (0, 0, 0, 0)
    assert smp.tid == 0x000000015EDD1FA5  # umad2sim put agent id 1 in bits 32-47
    assert smp.attr_id == mad.ATTR_NODE_INFO and smp.attr_mod == 0 and smp.m_key == 0
    assert (smp.dr_slid, smp.dr_dlid) == (mad.PERMISSIVE_LID, mad.PERMISSIVE_LID)
    # re-encoding gives the datagram back, except the 4 padding bytes (offset 20)
    again = bytearray(NODEINFO_REQUEST)
    again[20:24] = bytes(4)
    assert req.encode() == bytes(again)
    assert smp.encode() == req.mad


def test_dr_nodeinfo_reply() -> None:
    reply = simproto.SimRequest.decode(NODEINFO_REPLY)
    smp = mad.DrSmp.decode(reply.mad)
    assert smp.method == mad.METHOD_GET_RESP and smp.direction == 1 and smp.status == 0
    assert smp.return_path[0] == 1  # ReturnPath[0] = the requester's port
    info = smp_attrs.NodeInfo.decode(smp.data)
    assert info == smp_attrs.NodeInfo(
        base_version=1, class_version=1, node_type=smp_attrs.NODE_TYPE_CA, num_ports=2,
        system_image_guid=0x100000, node_guid=0x100000, port_guid=0x100001,
        partition_cap=64, device_id=0, revision=0xA1, local_port_num=1, vendor_id=0)
    assert info.encode() + bytes(24) == smp.data


def test_dr_portinfo_one_hop() -> None:
    request = mad.DrSmp.decode(simproto.SimRequest.decode(PORTINFO_REQUEST).mad)
    assert request.hop_count == 1 and request.initial_path[:2] == b"\x00\x01"
    assert request.attr_id == mad.ATTR_PORT_INFO
    smp = mad.DrSmp.decode(simproto.SimRequest.decode(PORTINFO_REPLY).mad)
    assert smp.hop_count == 1 and smp.hop_pointer == 0  # ibsim never moves the pointer
    assert smp.return_path[:2] == b"\x01\x01"
    pi = smp_attrs.PortInfo.decode(smp.data)
    assert pi.capability_mask == 0xC048 and pi.m_key_lease_period == 4089
    assert pi.local_port_num == 1 and pi.port_state == smp_attrs.PORT_STATE_ACTIVE
    assert pi.port_phys_state == smp_attrs.PHYS_LINK_UP and pi.link_down_default_state == 2
    assert (pi.link_width_enabled, pi.link_width_supported, pi.link_width_active) == (2, 31, 2)
    assert (pi.link_speed_supported, pi.link_speed_active, pi.link_speed_enabled) == (7, 1, 1)
    assert (pi.neighbor_mtu, pi.vl_cap, pi.mtu_cap, pi.operational_vls) == (1, 4, 3, 4)
    assert (pi.vl_arbitration_high_cap, pi.vl_arbitration_low_cap) == (8, 8)
    assert (pi.guid_cap, pi.subnet_timeout, pi.resp_time_value) == (1, 31, 8)
    assert pi.encode() == smp.data


def test_sim_ctl_connect_and_vendor() -> None:
    ctl = simproto.SimCtl.decode(CONNECT_REQUEST)
    assert ctl.magic == simproto.SIM_MAGIC and ctl.type == simproto.SimCtlType.CONNECT
    assert ctl.len == 44
    info = simproto.SimClientInfo.decode(ctl.data)
    assert (info.id, info.qp, info.issm, info.nodeid) == (0x5097, 0, 0, "hca1")
    assert ctl.encode() == CONNECT_REQUEST
    reply = simproto.SimCtl.decode(CONNECT_REPLY)
    assert simproto.SimClientInfo.decode(reply.data).id == 0
    built = simproto.SimCtl(magic=simproto.SIM_MAGIC, clientid=0, type=1, len=44,
                            data=simproto.SimClientInfo(id=0, nodeid="hca1").encode())
    assert built.encode() == CONNECT_REPLY
    vendor_reply = simproto.SimVendor.decode(simproto.SimCtl.decode(GET_VENDOR_REPLY).data)
    assert (vendor_reply.vendor_id, vendor_reply.vendor_part_id) == (0, 0)
    assert (vendor_reply.hw_ver, vendor_reply.fw_ver) == (0xA1, 1)


def test_mstmcra_config_space_read() -> None:
    # mstmcra lid-1 0xf0014 (docs/sources.md §4.2, observed) and the reply that made
    # it print 0x00a001f5 (docs/sources.md §4.3)
    request = bytes.fromhex("010a010100000000000000035f978201005000000f010014") + bytes(232)
    msg = vendor.ConfigSpaceAccessMad.decode(request)
    assert msg.mgmt_class == vendor.CLASS_MLNX_VENDOR_A and msg.attr_id == 0x50
    assert vendor.unpack_cr_modifier(msg.attr_mod) == (0xF0014, 1, 0)
    assert vendor.pack_cr_modifier(0xF0014, 1) == 0x0F010014
    assert vendor.pack_cr_modifier(0xF0014, 4) == 0x0F040014
    assert vendor.pack_cr_modifier(0x80780, 7) == 0x08070780
    assert vendor.pack_cr_modifier(0x1000, 1) == 0x00011000
    assert msg.vs_key == 0 and msg.encode() == request
    reply = vendor.ConfigSpaceAccessMad(
        base_version=1, mgmt_class=0x0A, class_version=1, method=mad.METHOD_GET_RESP,
        tid=msg.tid, attr_id=0x50, attr_mod=msg.attr_mod,
        data=vendor.ConfigSpaceAccessMad.pack_dwords([0x00A001F5]))
    blob = reply.encode()
    assert blob[:16] == bytes.fromhex("010a018100000000000000035f978201")
    assert blob[32:36] == bytes.fromhex("00a001f5")
    assert vendor.ConfigSpaceAccessMad.decode(blob).dwords() == (0x00A001F5,)


def test_trap_256_details_sit_where_linux_puts_them() -> None:
    details = smp_attrs.BadMKeyDetails(lid=5, dr_slid=0xFFFF, method=2, attr_id=0x15,
                                       attr_mod=1, m_key=0x1122334455667788, dr_notice=1,
                                       dr_hop_count=2, dr_return_path=b"\x01\x03")
    notice = smp_attrs.Notice(is_generic=1, notice_type=smp_attrs.NOTICE_TYPE_SECURITY,
                              producer_type=smp_attrs.NODE_TYPE_CA,
                              trap_number=smp_attrs.TRAP_BAD_M_KEY, issuer_lid=5,
                              data_details=details.encode())
    blob = notice.encode()
    assert blob[0] == 0x82 and blob[1:4] == b"\0\0\x01"  # generic, security, CA
    assert blob[4:6] == b"\x01\x00" and blob[6:8] == b"\x00\x05"
    # ntc_256: 2 reserved bytes, then lid at Notice byte 12, dr_slid 14, method 16,
    # attr_id 18, attr_mod 20, mkey 24, dr_trunc_hop 33, dr_rtn_path 34
    assert blob[12:14] == b"\x00\x05" and blob[14:16] == b"\xff\xff" and blob[16] == 2
    assert blob[18:20] == b"\x00\x15" and blob[20:24] == b"\0\0\0\x01"
    assert blob[24:32] == bytes.fromhex("1122334455667788")
    assert blob[33] == 0x82 and blob[34:36] == b"\x01\x03"
