"""The PMA, unimplemented classes, the permissive LID and the Supported link masks at the
engine (no daemon): what the tools see in tests/test_fabric_pma_tools.py, down to the
counters behind it, and the PMA's sampling (PortSamplesControl / PortSamplesResult) on an
engine clock the tests drive (docs/fabric.md §7.1)."""

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

    def send(self, source: str, mad_bytes: bytes, dlid: int | None = None,
             now: float = 0.0) -> list[Delivery]:
        """``source`` sends a MAD at ``now`` on the engine's clock (seconds)."""
        ref = self.subnet.topology.attach_port(source)
        return self.engine.process(ref, build.sim_request(mad_bytes, dlid), now)

    def perf(self, attr: int, data: bytes = b"", method: int = mad.METHOD_GET,
             now: float = 0.0, source: str = "h1", dlid: int = 5) -> tuple[int, bytes]:
        """``source`` (h1: to its own PMA, LID 5; nothing crosses a link) asks the PMA at
        ``dlid``: (status, data)."""
        out = self.send(source, build.perf(attr, data, method=method), dlid, now)
        assert [d.kind for d in out] == [DeliveryKind.REPLY]
        raw = out[0].request.mad
        return int.from_bytes(raw[4:6], "big"), raw[64:]

    def route(self) -> None:
        """Bring the links to Active, give the switch LID 1 and route LIDs 1, 5 and 6, so
        PerfMgt MADs cross the switch."""
        s1 = self.subnet.node("s1")
        s1.ports[0].lid = 1
        for node in self.subnet:
            for port in node.ports:
                if port.peer is not None:
                    port.state = smp_attrs.PORT_STATE_ACTIVE
        assert s1.switch is not None
        table = bytearray(b"\xff" * 64)
        table[1], table[5], table[6] = 0, 1, 2
        s1.switch.set_lft_block(0, bytes(table))
        s1.switch.linear_fdb_top = 6

    def smp_round_trip(self, now: float) -> None:
        """h2 reads h1's NodeInfo by directed route: h1's port 1 receives one packet and
        sends one, as do the switch's ports 1 and 2."""
        out = self.send("h2", build.smp(mad.ATTR_NODE_INFO, path=[1, 1]), now=now)
        assert [d.kind for d in out] == [DeliveryKind.REPLY]


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
    # PortSamplesResultExtended (optional, not implemented), unassigned and vendor IDs
    for attr in (0x001E, 0x0038, 0xFF00):
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


# -- PortSamplesControl / PortSamplesResult ----------------------------------------------

MANDATORY = (perf.SAMPLE_XMIT_DATA, perf.SAMPLE_RCV_DATA, perf.SAMPLE_XMIT_PKTS,
             perf.SAMPLE_RCV_PKTS, perf.SAMPLE_XMIT_WAIT)


def _control(port: int, start: int = 0, interval: int = 0, tag: int = 0,
             selects: tuple[int, ...] = MANDATORY) -> bytes:
    """PortSamplesControl as a Set carries it: PortSelect, the two delays, Tag and the
    CounterSelects (the rest is the PMA's to report)."""
    return perf.PortSamplesControl(
        port_select=port, sample_start=start, sample_interval=interval, tag=tag,
        counter_select=selects + (0,) * (15 - len(selects))).encode()


def _set(lab: Lab, data: bytes, now: float, source: str = "h1",
         dlid: int = 5) -> tuple[int, perf.PortSamplesControl]:
    """Set PortSamplesControl at ``now``: (status, the attribute answered)."""
    status, reply = lab.perf(perf.ATTR_PORT_SAMPLES_CONTROL, data, mad.METHOD_SET, now,
                             source, dlid)
    return status, perf.PortSamplesControl.decode(reply)


def _result(lab: Lab, now: float, source: str = "h1", dlid: int = 5) -> perf.PortSamplesResult:
    """Get PortSamplesResult at ``now``."""
    status, reply = lab.perf(perf.ATTR_PORT_SAMPLES_RESULT, b"", mad.METHOD_GET, now,
                             source, dlid)
    assert status == mad.STATUS_OK
    return perf.PortSamplesResult.decode(reply)


def test_samples_control_reports_the_mechanism(lab: Lab) -> None:
    status, data = lab.perf(perf.ATTR_PORT_SAMPLES_CONTROL, _select(1))
    assert status == mad.STATUS_OK
    assert perf.PortSamplesControl.decode(data) == perf.PortSamplesControl(
        port_select=1, tick=250, counter_width=4,  # 1 us ticks, 32-bit counters
        counter_masks=(1,) * 5 + (0,) * 5,  # counters 0-4 take the mandatory quantities
        sample_status=perf.SAMPLE_STATUS_DONE, counter_select=MANDATORY + (0,) * 10)
    assert _result(lab, 0.0) == perf.PortSamplesResult()  # nothing sampled yet
    # ClassPortInfo is unchanged: no capability bit speaks of sampling
    info = perf.ClassPortInfo.decode(lab.perf(mad.ATTR_CLASS_PORT_INFO)[1])
    assert info.capability_mask == perf.PERF_CAP_EXTENDED_WIDTH | perf.PERF_CAP_PORT_XMIT_WAIT


def test_a_sample_counts_what_crossed_the_port_in_its_interval(lab: Lab) -> None:
    # start 1 ms after the Set, count for 2 ms: from t=10.001 to t=10.003
    status, control = _set(lab, _control(1, 1000, 2000, 0x1234), 10.0)
    assert status == mad.STATUS_OK
    assert (control.sample_status, control.port_select, control.sample_start,
            control.sample_interval, control.tag) == (perf.SAMPLE_STATUS_STARTED, 1, 1000,
                                                      2000, 0x1234)
    assert control.counter_select == MANDATORY + (0,) * 10
    lab.smp_round_trip(10.0005)  # during the start delay: not counted
    result = _result(lab, 10.0006)
    assert (result.tag, result.sample_status, result.counters) == (
        0x1234, perf.SAMPLE_STATUS_STARTED, (0,) * 15)
    lab.smp_round_trip(10.0012)
    # a PortCounters reset in the middle does not disturb the sample
    assert lab.perf(perf.ATTR_PORT_COUNTERS, _select(1, 0xFFFF), mad.METHOD_SET,
                    10.0015)[0] == mad.STATUS_OK
    lab.smp_round_trip(10.0018)
    result = _result(lab, 10.002)
    assert (result.sample_status, result.counters) == (perf.SAMPLE_STATUS_RUNNING, (0,) * 15)
    lab.smp_round_trip(10.0035)  # after the end: not counted either
    result = _result(lab, 10.004)
    # two MADs received and two sent, 72 words each; nothing waited
    assert (result.tag, result.sample_status) == (0x1234, perf.SAMPLE_STATUS_DONE)
    assert result.counters == (144, 144, 2, 2, 0) + (0,) * 10
    status, data = lab.perf(perf.ATTR_PORT_SAMPLES_CONTROL, _select(1), now=10.004)
    assert perf.PortSamplesControl.decode(data).sample_status == perf.SAMPLE_STATUS_DONE
    # the result stays until the next Set starts a sample
    assert _result(lab, 99.0).counters[:5] == (144, 144, 2, 2, 0)
    assert _set(lab, _control(1, 5, 5, 0x0002), 100.0)[0] == mad.STATUS_OK
    assert _result(lab, 100.0).counters == (0,) * 15


def test_a_sample_without_delay_starts_at_the_set(lab: Lab) -> None:
    lab.route()
    # h2 sets h1's PMA across the switch: the Set arrived before the sample started, its
    # reply leaves inside it
    status, control = _set(lab, _control(1, 0, 1000, 7), 0.0, source="h2")
    assert (status, control.sample_status) == (mad.STATUS_OK, perf.SAMPLE_STATUS_RUNNING)
    result = _result(lab, 0.002, source="h2")  # arrives after the end: not counted
    assert result.sample_status == perf.SAMPLE_STATUS_DONE
    assert result.counters == (72, 0, 1, 0, 0) + (0,) * 10
    # no interval: done at once, nothing counted, whatever the start delay (as qib's
    # software-timed PMA does)
    status, control = _set(lab, _control(1, 500, 0, 8), 1.0, source="h2")
    assert (status, control.sample_status) == (mad.STATUS_OK, perf.SAMPLE_STATUS_DONE)
    assert _result(lab, 1.0).counters == (0,) * 15


def test_a_set_while_a_sample_runs_changes_nothing(lab: Lab) -> None:
    assert _set(lab, _control(1, 0, 1_000_000, 1), 0.0)[0] == mad.STATUS_OK  # for 1 s
    status, control = _set(lab, _control(1, 0, 10, 2, (perf.SAMPLE_RCV_PKTS,) * 5), 0.5)
    # answered with the sample in progress, as the Linux PMAs answer it
    assert (status, control.sample_status, control.tag, control.sample_interval) == (
        mad.STATUS_OK, perf.SAMPLE_STATUS_RUNNING, 1, 1_000_000)
    assert control.counter_select[:5] == MANDATORY
    # once it is done, a Set starts the next one
    status, control = _set(lab, _control(1, 0, 10, 2, (perf.SAMPLE_RCV_PKTS,) * 5), 1.5)
    assert (status, control.tag, control.counter_select[:5]) == (
        mad.STATUS_OK, 2, (perf.SAMPLE_RCV_PKTS,) * 5)
    assert _result(lab, 1.5).tag == 2


@pytest.mark.parametrize("selects", [
    (0x0006,) + MANDATORY[1:],  # not a mandatory quantity: the lab cannot count it
    (0,) + MANDATORY[1:],  # counter 0 exists and must count something
    MANDATORY + (perf.SAMPLE_XMIT_DATA,),  # counter 5 does not exist (CounterMask 0)
], ids=["unknown code", "nothing for counter 0", "counter 5"])
def test_counter_selects_the_lab_cannot_count_are_refused(lab: Lab,
                                                          selects: tuple[int, ...]) -> None:
    status, _ = _set(lab, _control(1, 0, 10, 9, selects), 0.0)
    assert status == mad.STATUS_INVALID_FIELD
    control = perf.PortSamplesControl.decode(
        lab.perf(perf.ATTR_PORT_SAMPLES_CONTROL, _select(1), now=0.0)[1])
    assert (control.sample_status, control.tag) == (perf.SAMPLE_STATUS_DONE, 0)


def test_port_select_names_a_port_this_pma_answers_for(lab: Lab) -> None:
    # a CA samples only the port the request came in on
    assert lab.perf(perf.ATTR_PORT_SAMPLES_CONTROL, _select(2))[0] == mad.STATUS_INVALID_FIELD
    assert _set(lab, _control(2, 0, 10), 0.0)[0] == mad.STATUS_INVALID_FIELD
    # the switch's PMA (port 0, LID 1) samples any of its ports: port 1 leads to h1
    lab.route()
    assert lab.perf(perf.ATTR_PORT_SAMPLES_CONTROL, _select(9), source="h2",
                    dlid=1)[0] == mad.STATUS_INVALID_FIELD
    status, control = _set(lab, _control(1, 1000, 1000, 3), 0.0, source="h2", dlid=1)
    assert (status, control.port_select) == (mad.STATUS_OK, 1)
    lab.smp_round_trip(0.0015)
    result = _result(lab, 0.003, source="h2", dlid=1)
    assert result.counters[:5] == (72, 72, 1, 1, 0)
    # the result is read-only
    status, _ = lab.perf(perf.ATTR_PORT_SAMPLES_RESULT, b"", mad.METHOD_SET, 0.004)
    assert status == mad.STATUS_METHOD_ATTR_UNSUPPORTED
