"""MadEngine.process: the whole path of a client's datagram, and the PMA."""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import replace

import pytest

from hcasim.fabric import quicksm
from hcasim.fabric.engine import DeliveryKind, MadEngine
from hcasim.fabric.fattree import fat_tree
from hcasim.fabric.netfile import parse_netfile_text
from hcasim.fabric.pma import counters_of
from hcasim.fabric.subnet import XMIT_DATA, XMIT_DISCARDS, XMIT_PKTS, Subnet, saturated
from hcasim.fabric.topology import PortRef
from hcasim.ib import build, mad, perf, smp_attrs
from hcasim.ib.simproto import SIM_STATUS_TIMEOUT, SimRequest
from tests.support.ib_captures import (
    NODEINFO_REPLY,
    NODEINFO_REQUEST,
    PORTINFO_REPLY,
    PORTINFO_REQUEST,
)

CAPTURE_NET = """\
Switch 4 "sw1"
[1] "hca1"[1]
[2] "hca2"[1]

Hca 2 "hca1"
[1] "sw1"[1]

Hca 1 "hca2"
[1] "sw1"[2]
"""


@pytest.fixture
def engine() -> MadEngine:
    return MadEngine(Subnet(parse_netfile_text(CAPTURE_NET)))


def send(engine: MadEngine, source: str, request: SimRequest, now: float = 0.0) -> list:  # type: ignore[type-arg]
    return engine.process(PortRef(source, 1 if source.startswith("hca") else 0), request, now)


def without_padding(blob: bytes) -> bytes:
    return blob[:20] + bytes(4) + blob[24:]


def test_replays_smpquery_nodeinfo_exactly(engine: MadEngine) -> None:
    out = send(engine, "hca1", SimRequest.decode(NODEINFO_REQUEST))
    assert [d.kind for d in out] == [DeliveryKind.REPLY]
    assert out[0].request.encode() == without_padding(NODEINFO_REPLY)


def test_replays_smpquery_portinfo_one_hop(engine: MadEngine) -> None:
    out = send(engine, "hca1", SimRequest.decode(PORTINFO_REQUEST))
    got = out[0].request.encode()
    want = without_padding(PORTINFO_REPLY)
    assert got[:96] + got[160:] == want[:96] + want[160:]
    # deliberate differences in the data: the GID prefix reads as the IBTA default fe80::
    # before an SM sets it (ibsim shows 0), and the Supported masks are the port's (from
    # the net file: 4x, SDR) where ibsim shows fixed 1x-12x, SDR-QDR
    ours, theirs = smp_attrs.PortInfo.decode(got[96:160]), smp_attrs.PortInfo.decode(want[96:160])
    assert (ours.gid_prefix, theirs.gid_prefix) == (0xFE80000000000000, 0)
    assert (ours.link_width_supported, theirs.link_width_supported) == (0x03, 0x1F)
    assert (ours.link_speed_supported, theirs.link_speed_supported) == (0x1, 0x7)
    assert replace(ours, gid_prefix=0, link_width_supported=0x1F,
                   link_speed_supported=0x7) == theirs


def test_unroutable_lid_bounces_with_110(engine: MadEngine) -> None:
    request = build.sim_request(build.smp(mad.ATTR_NODE_INFO), dlid=999)
    out = send(engine, "hca1", request)
    assert [d.kind for d in out] == [DeliveryKind.BOUNCE]
    assert out[0].request.status == SIM_STATUS_TIMEOUT
    assert out[0].request.mad == request.mad


def test_lid_routed_request_gets_the_senders_lid(engine: MadEngine) -> None:
    quicksm.configure(engine.subnet, PortRef("hca2", 1))
    hca1, sw1 = engine.subnet.port(PortRef("hca1", 1)), engine.subnet.port(PortRef("sw1", 0))
    out = send(engine, "hca1", build.sim_request(build.smp(mad.ATTR_NODE_INFO), dlid=sw1.lid))
    reply = out[0].request
    assert out[0].kind is DeliveryKind.REPLY
    assert (reply.dlid, reply.slid) == (hca1.lid, sw1.lid)  # the slid was filled in, swapped
    assert smp_attrs.NodeInfo.decode(reply.mad[64:]).node_type == smp_attrs.NODE_TYPE_SWITCH


def test_lid_reply_must_come_back(engine: MadEngine) -> None:
    quicksm.configure(engine.subnet, PortRef("hca2", 1))
    sw = engine.subnet.node("sw1").switch
    hca1 = engine.subnet.port(PortRef("hca1", 1))
    hca2_lid = engine.subnet.port(PortRef("hca2", 1)).lid
    assert sw is not None
    block = bytearray(sw.lft_block(0))
    block[hca1.lid] = 0xFF  # no way back to hca1
    sw.set_lft_block(0, bytes(block))
    out = send(engine, "hca1", build.sim_request(build.smp(mad.ATTR_NODE_INFO), dlid=hca2_lid))
    assert out[0].kind is DeliveryKind.BOUNCE and "reply lost" in out[0].note


def _with_lid_routed_start(smp: bytes, dr_slid: int) -> bytes:
    blob = bytearray(smp)
    blob[32:34] = dr_slid.to_bytes(2, "big")  # DrSLID: where the answer is LID-routed to
    return bytes(blob)


def test_directed_route_with_a_lid_routed_start(engine: MadEngine) -> None:
    # iblinkinfo -S GUID: LID-routed to the switch, then directed from it (IBTA 14.2.2.1)
    quicksm.configure(engine.subnet, PortRef("hca2", 1))
    hca1, sw1 = engine.subnet.port(PortRef("hca1", 1)), engine.subnet.port(PortRef("sw1", 0))
    smp = _with_lid_routed_start(build.smp(mad.ATTR_NODE_INFO, path=(2,)), hca1.lid)
    out = send(engine, "hca1", SimRequest(sw1.lid, 0, 0, 0, 0, 256, smp))
    assert [d.kind for d in out] == [DeliveryKind.REPLY]
    reply = mad.DrSmp.decode(out[0].request.mad)
    assert reply.method == mad.METHOD_GET_RESP and reply.direction == 1
    info = smp_attrs.NodeInfo.decode(out[0].request.mad[64:])
    assert info.node_guid == engine.subnet.node("hca2").guid  # sw1 port 2's neighbour
    # hop count 0: the switch at the DLID answers itself
    smp = _with_lid_routed_start(build.smp(mad.ATTR_NODE_INFO, path=()), hca1.lid)
    out = send(engine, "hca1", SimRequest(sw1.lid, 0, 0, 0, 0, 256, smp))
    assert smp_attrs.NodeInfo.decode(out[0].request.mad[64:]).node_type == \
        smp_attrs.NODE_TYPE_SWITCH
    # a CA relays no directed route: bounced, as an unroutable SMP is
    hca2 = engine.subnet.port(PortRef("hca2", 1))
    smp = _with_lid_routed_start(build.smp(mad.ATTR_NODE_INFO, path=(1,)), hca1.lid)
    out = send(engine, "hca1", SimRequest(hca2.lid, 0, 0, 0, 0, 256, smp))
    assert [d.kind for d in out] == [DeliveryKind.BOUNCE]
    assert out[0].request.status == SIM_STATUS_TIMEOUT
    # an answer that cannot be LID-routed back to DrSLID is lost, and says so
    smp = _with_lid_routed_start(build.smp(mad.ATTR_NODE_INFO, path=(2,)), 999)
    out = send(engine, "hca1", SimRequest(sw1.lid, 0, 0, 0, 0, 256, smp))
    assert out[0].kind is DeliveryKind.BOUNCE and "reply lost" in out[0].note


@pytest.mark.parametrize("corrupt", ["hop_pointer", "direction", "dr_slid", "base_version",
                                     "class_version", "dlid"])
def test_malformed_mads_get_no_reply(engine: MadEngine, corrupt: str) -> None:
    blob = bytearray(build.smp(mad.ATTR_NODE_INFO, path=(1,)))
    request = build.sim_request(bytes(blob))
    if corrupt == "hop_pointer":
        blob[6] = 1
    elif corrupt == "direction":
        blob[4] = 0x80
    elif corrupt == "dr_slid":
        blob[32:34] = b"\x00\x05"
    elif corrupt == "base_version":
        blob[0] = 2
    elif corrupt == "class_version":
        blob[2] = 3
    request = SimRequest(5 if corrupt == "dlid" else 0xFFFF, 0xFFFF, 0, 0, 0, 256, bytes(blob))
    assert send(engine, "hca1", request) == []


def test_client_response_is_forwarded_back(engine: MadEngine) -> None:
    # an SMInfo Get from hca2 to hca1 goes to hca1's SM client with the return path ...
    out = send(engine, "hca2", build.sim_request(build.smp(mad.ATTR_SM_INFO, path=(1, 1))))
    assert [(d.kind, d.port) for d in out] == [(DeliveryKind.FORWARD, PortRef("hca1", 1))]
    request = mad.DrSmp.decode(out[0].request.mad)
    # ... and the SM's GetResp walks ReturnPath back to hca2
    response = mad.DrSmp.decode(out[0].request.mad)
    response.method, response.direction = mad.METHOD_GET_RESP, 1
    back = send(engine, "hca1", build.sim_request(response.encode()))
    assert [(d.kind, d.port) for d in back] == [(DeliveryKind.FORWARD, PortRef("hca2", 1))]
    assert request.return_path[:3] == bytes([1, 2, 1])


def test_firmware_host_send_can_swallow(engine: MadEngine) -> None:
    from hcasim.fabric.subnet import Action, MadContext, NodeFirmware

    class Mute(NodeFirmware):
        def host_send(self, ctx: MadContext) -> Action:
            assert ctx.from_host and ctx.port.node.id == "hca1"
            return Action.DROP

    engine.subnet.set_firmware("hca1", Mute())
    assert send(engine, "hca1", build.sim_request(build.smp(mad.ATTR_NODE_INFO, path=()))) == []


def test_vendor_mad_without_firmware_goes_to_clients(engine: MadEngine) -> None:
    quicksm.configure(engine.subnet, PortRef("hca2", 1))
    lid = engine.subnet.port(PortRef("hca1", 1)).lid
    vendor = bytes.fromhex("010a010100000000000000035f978201005000000f010014") + bytes(232)
    out = send(engine, "hca2", build.sim_request(vendor, lid))
    assert [(d.kind, d.port) for d in out] == [(DeliveryKind.FORWARD, PortRef("hca1", 1))]


# -- PerfMgt -------------------------------------------------------------------------------


def perf_query(engine: MadEngine, source: str, dlid: int, attr: int, data: bytes = b"",
               method: int = mad.METHOD_GET) -> tuple[int, bytes]:
    out = send(engine, source, build.sim_request(build.perf(attr, data, method=method), dlid))
    assert out[0].kind is DeliveryKind.REPLY, out
    raw = out[0].request.mad
    return int.from_bytes(raw[4:6], "big"), raw[64:]


def test_pma_class_port_info_and_counters(engine: MadEngine) -> None:
    quicksm.configure(engine.subnet, PortRef("hca2", 1))
    sw_lid = engine.subnet.port(PortRef("sw1", 0)).lid
    hca1_lid = engine.subnet.port(PortRef("hca1", 1)).lid
    status, data = perf_query(engine, "hca2", sw_lid, mad.ATTR_CLASS_PORT_INFO)
    cpi = perf.ClassPortInfo.decode(data)
    assert status == 0 and cpi.capability_mask & perf.PERF_CAP_ALL_PORT_SELECT
    assert cpi.resp_time_value == 0x12
    ask = perf.PortCounters(port_select=1).encode()
    status, data = perf_query(engine, "hca2", hca1_lid, perf.ATTR_PORT_COUNTERS, ask)
    counters = perf.PortCounters.decode(data)
    assert status == 0 and counters.port_select == 1
    assert counters.port_rcv_pkts >= 1 and counters.port_rcv_data == 72 * counters.port_rcv_pkts
    # Set clears the selected counters
    clear = perf.PortCounters(port_select=1, counter_select=0xFFFF).encode()
    status, data = perf_query(engine, "hca2", hca1_lid, perf.ATTR_PORT_COUNTERS, clear,
                              mad.METHOD_SET)
    assert perf.PortCounters.decode(data).port_rcv_pkts == 0
    # a CA only reports the port the MAD arrived on
    wrong = perf.PortCounters(port_select=2).encode()
    assert perf_query(engine, "hca2", hca1_lid, perf.ATTR_PORT_COUNTERS, wrong)[0] == \
        mad.STATUS_INVALID_FIELD
    # a switch sums all ports with PortSelect 0xFF
    everything = perf.PortCounters(port_select=0xFF).encode()
    status, data = perf_query(engine, "hca2", sw_lid, perf.ATTR_PORT_COUNTERS, everything)
    assert status == 0 and perf.PortCounters.decode(data).port_xmit_pkts > 0


def test_counters_saturate() -> None:
    subnet = Subnet(parse_netfile_text(CAPTURE_NET))
    a, b = subnet.port(PortRef("hca1", 1)), subnet.port(PortRef("sw1", 1))
    subnet.count_hop(a, b)
    assert a.counters is not None
    a.counters[XMIT_PKTS] = 0xFFFFFFFF - 1
    a.counters[XMIT_DATA] = 0xFFFFFFFF - 100
    for _ in range(3):
        subnet.count_hop(a, b)
    shown = saturated(a)
    assert shown[XMIT_PKTS] == shown[XMIT_DATA] == 0xFFFFFFFF
    a.counters[XMIT_DISCARDS] = 0xFFFF
    subnet.count_error(a, XMIT_DISCARDS)
    assert saturated(a)[XMIT_DISCARDS] == 0xFFFF  # 16-bit counter
    assert counters_of([a, a])[XMIT_PKTS] == 0xFFFFFFFF


# -- SM capability and the control channel ----------------------------------------------------


def test_set_is_sm_sends_trap_144(engine: MadEngine) -> None:
    quicksm.configure(engine.subnet, PortRef("hca2", 1))
    hca1 = engine.subnet.port(PortRef("hca1", 1))
    out = engine.set_is_sm(PortRef("hca1", 1), True)
    assert hca1.capability_mask & smp_attrs.CAP_IS_SM
    assert [(d.kind, d.port) for d in out] == [(DeliveryKind.FORWARD, PortRef("hca2", 1))]
    notice = smp_attrs.Notice.decode(mad.Smp.decode(out[0].request.mad).data)
    assert (notice.trap_number, notice.notice_type, notice.issuer_lid) == (144, 4, hca1.lid)
    assert notice.data_details[6:10] == hca1.capability_mask.to_bytes(4, "big")
    assert engine.set_is_sm(PortRef("hca1", 1), True) == []  # no change, no trap
    assert engine.set_is_sm(PortRef("sw1", 0), True) == []  # port 0: no CapMaskNotice


def test_control_channel_reads(engine: MadEngine) -> None:
    ref = PortRef("hca1", 1)
    info = smp_attrs.NodeInfo.decode(engine.node_info_data(ref))
    assert (info.node_guid, info.local_port_num, len(engine.node_info_data(ref))) == \
        (0x100000, 1, 64)
    assert smp_attrs.PortInfo.decode(engine.port_info_data(ref)).local_port_num == 1
    assert engine.pkeys_data(ref)[:4] == b"\xff\xff\x00\x00"
    assert engine.vendor_data(ref) == (0, 0, 0xA1)


# -- scale -----------------------------------------------------------------------------------


def test_twenty_thousand_hca_subnet_is_modest() -> None:
    topology = fat_tree(20000, 40)
    tracemalloc.start()
    start = time.process_time()
    subnet = Subnet(topology)
    elapsed = time.process_time() - start
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ports = sum(len(n.ports) for n in subnet)
    assert ports > 80000
    assert used / ports < 700, used / ports  # bytes per port, tables not allocated
    assert elapsed < 10.0
    engine = MadEngine(subnet)
    request = build.sim_request(build.smp(mad.ATTR_PORT_INFO, 1, path=(1, 30, 1)))
    out = engine.process(PortRef("H00001", 1), request, 0.0)
    assert out[0].kind is DeliveryKind.REPLY


def test_link_changes_raise_trap_128() -> None:
    engine = MadEngine(Subnet(parse_netfile_text(CAPTURE_NET)))
    quicksm.configure(engine.subnet, PortRef("hca2", 1))
    sw = engine.subnet.node("sw1")
    assert sw.switch is not None
    sw.switch.port_state_change = 0
    out = engine.set_link(PortRef("hca1", 1), enabled=False)
    assert [(d.kind, d.port) for d in out] == [(DeliveryKind.FORWARD, PortRef("hca2", 1))]
    notice = smp_attrs.Notice.decode(mad.Smp.decode(out[0].request.mad).data)
    assert (notice.trap_number, notice.producer_type, notice.notice_type) == (128, 2, 1)
    assert notice.issuer_lid == sw.ports[0].lid
    assert notice.data_details[:2] == sw.ports[0].lid.to_bytes(2, "big")
    assert sw.switch.port_state_change == 1
    hca1 = engine.subnet.port(PortRef("hca1", 1))
    assert (hca1.phys_state, engine.subnet.port(PortRef("sw1", 1)).phys_state) == \
        (smp_attrs.PHYS_DISABLED, smp_attrs.PHYS_POLLING)
    assert engine.set_link(PortRef("hca1", 1), enabled=False) == []  # already down
    back = engine.set_link(PortRef("hca1", 1), enabled=True)
    assert len(back) == 1 and hca1.state == smp_attrs.PORT_STATE_INIT
    with pytest.raises(ValueError):
        engine.set_link(PortRef("sw1", 0), enabled=False)


def test_portinfo_disable_from_the_sm_raises_trap_128() -> None:
    from dataclasses import replace

    engine = MadEngine(Subnet(parse_netfile_text(CAPTURE_NET)))
    quicksm.configure(engine.subnet, PortRef("hca2", 1))
    get = build.sim_request(build.smp(mad.ATTR_PORT_INFO, 1, path=(1,)))
    current = smp_attrs.PortInfo.decode(send(engine, "hca2", get)[0].request.mad[64:128])
    disable = replace(current, port_phys_state=smp_attrs.PHYS_DISABLED)
    out = send(engine, "hca2", build.sim_request(build.smp(
        mad.ATTR_PORT_INFO, 1, method=mad.METHOD_SET, path=(1,), data=disable.encode())))
    assert [d.kind for d in out] == [DeliveryKind.REPLY, DeliveryKind.FORWARD]
    assert out[1].note == "trap" and out[1].port == PortRef("hca2", 1)
