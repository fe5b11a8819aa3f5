"""Directed-route and LID routing rules (IBTA 14.2.2, 18.2.4.3; docs/sources.md §2.2-2.3)."""

from __future__ import annotations

import pytest

from hcasim.fabric import quicksm
from hcasim.fabric.netfile import parse_netfile_text
from hcasim.fabric.routing import NoRoute, route_dr_in, route_dr_out, route_lid
from hcasim.fabric.subnet import (
    RCV_SWITCH_RELAY_ERRORS,
    XMIT_DATA,
    XMIT_DISCARDS,
    XMIT_PKTS,
    Subnet,
)
from hcasim.fabric.topology import PortRef
from hcasim.ib import smp_attrs

NET = """\
Switch 4 "s1"
[1] "h1"[1]
[2] "h2"[1]
[3] "s2"[3]

Switch 4 "s2"
[1] "h3"[1]
[3] "s1"[3]

Hca 2 "h1"
[1] "s1"[1]

Hca 1 "h2"
[1] "s1"[2]

Hca 1 "h3"
[1] "s2"[1]
"""


@pytest.fixture
def subnet() -> Subnet:
    return Subnet(parse_netfile_text(NET))


def port(subnet: Subnet, node: str, number: int) -> object:
    return subnet.port(PortRef(node, number))


def path(*hops: int) -> bytes:
    return bytes([0, *hops]) + bytes(63 - len(hops))


def test_initial_link_states(subnet: Subnet) -> None:
    h1 = subnet.port(PortRef("h1", 1))
    assert (h1.state, h1.phys_state) == (smp_attrs.PORT_STATE_INIT, smp_attrs.PHYS_LINK_UP)
    h1p2 = subnet.port(PortRef("h1", 2))
    assert (h1p2.state, h1p2.phys_state) == (smp_attrs.PORT_STATE_DOWN, smp_attrs.PHYS_POLLING)
    s1p0 = subnet.port(PortRef("s1", 0))
    assert (s1p0.state, s1p0.phys_state) == (smp_attrs.PORT_STATE_ACTIVE, smp_attrs.PHYS_LINK_UP)
    assert (h1.width_active, h1.speed_active) == (0x02, 0x1)  # 4x SDR default


def test_dr_zero_hops_is_local(subnet: Subnet) -> None:
    h1 = subnet.port(PortRef("h1", 1))
    route = route_dr_out(subnet, h1, 0, path())
    assert route.target is h1
    assert route.return_path[0] == 1  # ReturnPath[0] = the requester's port


def test_dr_records_ingress_ports(subnet: Subnet) -> None:
    h1 = subnet.port(PortRef("h1", 1))
    route = route_dr_out(subnet, h1, 3, path(1, 3, 1))  # h1 -> s1 -> s2 -> h3
    assert route.target is subnet.port(PortRef("h3", 1))
    assert route.return_path[:4] == bytes([1, 1, 3, 1])
    # and the reply walks back along ReturnPath[3..1]
    back = route_dr_in(subnet, route.target, 3, route.return_path)
    assert back is h1


def test_dr_egress_port_zero_is_the_switch_sma(subnet: Subnet) -> None:
    h1 = subnet.port(PortRef("h1", 1))
    route = route_dr_out(subnet, h1, 2, path(1, 0))
    assert route.target is subnet.port(PortRef("s1", 0))
    assert route.return_path[:3] == bytes([1, 1, 0])


def test_dr_through_a_ca_fails(subnet: Subnet) -> None:
    h2 = subnet.port(PortRef("h2", 1))
    with pytest.raises(NoRoute, match="not a switch"):
        route_dr_out(subnet, h2, 3, path(1, 1, 1))  # h2 -> s1 -> h1 -> (h1 is a CA)


def test_dr_needs_link_up_but_not_active(subnet: Subnet) -> None:
    h1 = subnet.port(PortRef("h1", 1))
    assert h1.state == smp_attrs.PORT_STATE_INIT
    route_dr_out(subnet, h1, 1, path(1))  # Init is fine for SMPs
    with pytest.raises(NoRoute, match="port 4 is not LinkUp"):
        route_dr_out(subnet, h1, 2, path(1, 4))  # s1 port 4 has no cable
    s1p4 = subnet.port(PortRef("s1", 4))
    assert s1p4.counters is not None and s1p4.counters[XMIT_DISCARDS] == 1
    with pytest.raises(NoRoute, match="has no port 9"):
        route_dr_out(subnet, h1, 2, path(1, 9))
    with pytest.raises(NoRoute, match="bad hop count"):
        route_dr_out(subnet, h1, 64, bytes(64))


def test_dr_through_a_disabled_link(subnet: Subnet) -> None:
    subnet.take_down(subnet.port(PortRef("s2", 3)), disable=True)
    with pytest.raises(NoRoute):
        route_dr_out(subnet, subnet.port(PortRef("h1", 1)), 2, path(1, 3))
    s1p3 = subnet.port(PortRef("s1", 3))
    assert (s1p3.state, s1p3.phys_state) == (smp_attrs.PORT_STATE_DOWN, smp_attrs.PHYS_POLLING)
    assert subnet.node("s1").switch.port_state_change == 1  # type: ignore[union-attr]


def test_hops_are_counted(subnet: Subnet) -> None:
    h1 = subnet.port(PortRef("h1", 1))
    route_dr_out(subnet, h1, 1, path(1))
    assert h1.counters is not None
    assert (h1.counters[XMIT_PKTS], h1.counters[XMIT_DATA]) == (1, 72)


def test_lid_routing_follows_lfts(subnet: Subnet) -> None:
    lids = quicksm.configure(subnet, PortRef("h1", 1))
    by_port = {(p.node.id, p.number): lid for lid, p in lids.items()}
    h1 = subnet.port(PortRef("h1", 1))
    h3 = subnet.port(PortRef("h3", 1))
    assert route_lid(subnet, h1, by_port[("h3", 1)], vl15=False) is h3
    assert route_lid(subnet, h3, by_port[("s1", 0)]) is subnet.port(PortRef("s1", 0))
    assert route_lid(subnet, h1, by_port[("h1", 1)]) is h1  # own LID: local
    with pytest.raises(NoRoute, match="invalid DLID"):
        route_lid(subnet, h1, 0)


def test_lid_routing_misses(subnet: Subnet) -> None:
    quicksm.configure(subnet, PortRef("h1", 1))
    h1 = subnet.port(PortRef("h1", 1))
    with pytest.raises(NoRoute, match="no route to LID 200"):
        route_lid(subnet, h1, 200)  # above LinearFDBTop
    s1 = subnet.node("s1").switch
    assert s1 is not None
    s1.linear_fdb_top = 300
    with pytest.raises(NoRoute, match="no route to LID 200"):
        route_lid(subnet, h1, 200)  # entry 0xFF
    s1p1 = subnet.port(PortRef("s1", 1))
    assert s1p1.counters is not None and s1p1.counters[RCV_SWITCH_RELAY_ERRORS] == 2


def test_lid_routing_active_rule(subnet: Subnet) -> None:
    lids = quicksm.configure(subnet, PortRef("h1", 1))
    h3_lid = next(lid for lid, p in lids.items() if p.node.id == "h3")
    subnet.port(PortRef("s2", 1)).state = smp_attrs.PORT_STATE_ARMED
    h1 = subnet.port(PortRef("h1", 1))
    # SMPs (VL15) need the link up; other MADs need Active on both ends
    assert route_lid(subnet, h1, h3_lid, vl15=True).node.id == "h3"
    with pytest.raises(NoRoute, match="no usable link"):
        route_lid(subnet, h1, h3_lid, vl15=False)


def test_lid_routing_loop_is_cut(subnet: Subnet) -> None:
    lids = quicksm.configure(subnet, PortRef("h1", 1))
    h3_lid = next(lid for lid, p in lids.items() if p.node.id == "h3")
    for name, out in (("s1", 3), ("s2", 3)):  # send it back and forth forever
        sw = subnet.node(name).switch
        assert sw is not None
        block = bytearray(sw.lft_block(0))
        block[h3_lid] = out
        sw.set_lft_block(0, bytes(block))
    with pytest.raises(NoRoute, match="routing loop"):
        route_lid(subnet, subnet.port(PortRef("h1", 1)), h3_lid)


def test_lid_range_with_lmc(subnet: Subnet) -> None:
    h1 = subnet.port(PortRef("h1", 1))
    h1.lid, h1.lmc = 8, 2
    assert [h1.covers_lid(x) for x in (7, 8, 11, 12)] == [False, True, True, False]
