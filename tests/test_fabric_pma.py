"""The PMA, unimplemented classes, the permissive LID and the Supported link masks at the
engine (no daemon): what the tools see in tests/test_fabric_pma_tools.py, down to the
counters behind it."""

from __future__ import annotations

import pytest

from hcasim.fabric.engine import Delivery, DeliveryKind, MadEngine
from hcasim.fabric.netfile import parse_netfile_text
from hcasim.fabric.pma import ATTRIBUTES
from hcasim.fabric.subnet import RCV_SWITCH_RELAY_ERRORS, Subnet
from hcasim.fabric.topology import PortRef
from hcasim.ib import build, mad, perf, smp_attrs

NET = """\
Switch 4 "s1" # "switch one" enhanced port 0
[1] "h1"[1] # lid 0 4xQDR
[2] "h2"[1]

Hca 2 "h1" # "h1 HCA-1"
[1] "s1"[1] # lid 0 4xQDR

Hca 1 "h2"
[1] "s1"[2]
"""


class Lab:
    """A subnet whose links are up, with h1's port 1 at LID 5 and h2's at LID 6."""

    def __init__(self) -> None:
        self.subnet = Subnet(parse_netfile_text(NET))
        self.engine = MadEngine(self.subnet)
        for node in self.subnet:
            for port in node.ports:
                if port.peer is not None:
                    self.subnet.train(port)
        self.h1 = self.subnet.port(PortRef("h1", 1))
        self.h1.lid = 5
        self.subnet.port(PortRef("h2", 1)).lid = 6

    def send(self, source: str, mad_bytes: bytes, dlid: int | None = None) -> list[Delivery]:
        ref = self.subnet.topology.attach_port(source)
        return self.engine.process(ref, build.sim_request(mad_bytes, dlid), 0.0)

    def perf(self, attr: int, data: bytes = b"", method: int = mad.METHOD_GET) -> tuple[int, bytes]:
        """h1 asks its own PMA (LID 5): (status, data)."""
        out = self.send("h1", build.perf(attr, data, method=method), 5)
        assert [d.kind for d in out] == [DeliveryKind.REPLY]
        raw = out[0].request.mad
        return int.from_bytes(raw[4:6], "big"), raw[64:]


@pytest.fixture
def lab() -> Lab:
    return Lab()


def _select(port: int, counter_select: int = 0) -> bytes:
    return bytes([0, port]) + counter_select.to_bytes(2, "big")


def test_every_optional_attribute_is_answered(lab: Lab) -> None:
    for attr, (layout, _counters) in ATTRIBUTES.items():
        status, data = lab.perf(attr, _select(1))
        assert status == mad.STATUS_OK, hex(attr)
        assert layout.decode(data).port_select == 1  # type: ignore[attr-defined]
        # a CA answers only for the port the query came in on
        assert lab.perf(attr, _select(2))[0] == mad.STATUS_INVALID_FIELD


def test_unimplemented_attributes_and_methods_get_a_status(lab: Lab) -> None:
    for attr in (perf.ATTR_PORT_SAMPLES_CONTROL, perf.ATTR_PORT_SAMPLES_RESULT, 0x0038, 0xFF00):
        assert lab.perf(attr, _select(1))[0] == mad.STATUS_METHOD_ATTR_UNSUPPORTED
    status, _ = lab.perf(perf.ATTR_PORT_COUNTERS_EXTENDED, _select(1), method=0x06)
    assert status == mad.STATUS_METHOD_UNSUPPORTED
    info = perf.ClassPortInfo.decode(lab.perf(mad.ATTR_CLASS_PORT_INFO)[1])
    assert info.capability_mask == perf.PERF_CAP_EXTENDED_WIDTH | perf.PERF_CAP_PORT_XMIT_WAIT


def test_counters_count_the_wire_and_reset_per_attribute(lab: Lab) -> None:
    # two SMPs (VL15) from h2 to h1 and back: h1 port 1 received 2 and sent 2
    for _ in range(2):
        assert lab.send("h2", build.smp(mad.ATTR_NODE_INFO, path=[1, 1]))[0].kind \
            is DeliveryKind.REPLY
    ext = perf.PortCountersExtended.decode(lab.perf(perf.ATTR_PORT_COUNTERS_EXTENDED,
                                                    _select(1))[1])
    assert (ext.port_xmit_pkts, ext.port_rcv_pkts, ext.port_xmit_data) == (2, 2, 144)
    assert ext.port_unicast_rcv_pkts == 2 and ext.port_multicast_rcv_pkts == 0
    vl = perf.PortVLOpPackets.decode(lab.perf(perf.ATTR_PORT_VL_OP_PACKETS, _select(1))[1])
    assert vl.packets == (0,) * 15 + (2,)
    sl = perf.PortRcvDataSL.decode(lab.perf(perf.ATTR_PORT_RCV_DATA_SL, _select(1))[1])
    assert sl.data_sl == (144,) + (0,) * 15
    # clearing PortRcvData (bit 1) of PortCountersExtended leaves the rest, and the other
    # attributes, alone
    status, data = lab.perf(perf.ATTR_PORT_COUNTERS_EXTENDED, _select(1, 0x0002),
                            method=mad.METHOD_SET)
    ext = perf.PortCountersExtended.decode(data)
    assert status == mad.STATUS_OK and (ext.port_rcv_data, ext.port_xmit_data) == (0, 144)
    sl = perf.PortRcvDataSL.decode(lab.perf(perf.ATTR_PORT_RCV_DATA_SL, _select(1))[1])
    assert sl.data_sl[0] == 144
    pc = perf.PortCounters.decode(lab.perf(perf.ATTR_PORT_COUNTERS, _select(1))[1])
    assert pc.port_rcv_data == 144


def test_dr_first_hop_to_a_missing_port_counts_nothing(lab: Lab) -> None:
    # h2 has one port: its own SMI drops the SMP, no switch relayed anything
    assert lab.send("h2", build.smp(mad.ATTR_NODE_INFO, path=[2]))[0].kind \
        is DeliveryKind.BOUNCE
    assert lab.subnet.port(PortRef("h2", 1)).counters is None
    # the switch cannot relay to port 9: its ingress port 2 counts the relay error
    assert lab.send("h2", build.smp(mad.ATTR_NODE_INFO, path=[1, 9]))[0].kind \
        is DeliveryKind.BOUNCE
    counters = lab.subnet.port(PortRef("s1", 2)).counters
    assert counters is not None and counters[RCV_SWITCH_RELAY_ERRORS] == 1


def test_permissive_lid_is_answered_by_the_neighbour(lab: Lab) -> None:
    out = lab.send("h2", build.smp(mad.ATTR_NODE_INFO), mad.PERMISSIVE_LID)
    assert [d.kind for d in out] == [DeliveryKind.REPLY]
    info = smp_attrs.NodeInfo.decode(out[0].request.mad[64:128])
    assert info.node_type == 2 and info.node_guid == lab.subnet.node("s1").guid
    # directed-route replies and GMPs to 0xFFFF still bounce
    out = lab.send("h2", build.perf(mad.ATTR_CLASS_PORT_INFO), mad.PERMISSIVE_LID)
    assert [d.kind for d in out] == [DeliveryKind.BOUNCE]


def test_unimplemented_class_gets_status_0x0c(lab: Lab) -> None:
    cc = bytearray(build.perf(0x0011))
    cc[1] = 0x21  # congestion control: nobody serves it, so the engine hands it on
    out = lab.send("h1", bytes(cc), 5)
    assert [d.kind for d in out] == [DeliveryKind.FORWARD]
    answer = lab.engine.unclaimed(out[0], lab.h1)
    assert answer.kind is DeliveryKind.REPLY
    raw = answer.request.mad
    assert raw[3] == mad.METHOD_GET_RESP and int.from_bytes(raw[4:6], "big") == 0x000C
    # an SMP nobody takes (SMInfo without an SM) still bounces, as ibsim does
    out = lab.send("h2", build.smp(mad.ATTR_SM_INFO, path=[1, 1]))
    answer = lab.engine.unclaimed(out[0], lab.subnet.port(PortRef("h2", 1)))
    assert answer.kind is DeliveryKind.BOUNCE


def test_supported_link_masks_are_legal_on_every_port(lab: Lab) -> None:
    s1 = lab.subnet.node("s1")
    for port in s1.ports:  # port 0, the QDR link, the SDR link, the unconnected ports
        assert port.width_supported == 0x03  # 1x or 4x (IBTA: 4x alone is reserved)
        assert port.speed_supported == 0x07  # SDR to QDR: the switch's QDR link
    h2 = lab.subnet.port(PortRef("h2", 1))
    assert (h2.width_supported, h2.speed_supported) == (0x03, 0x01)
