"""Configure a subnet directly, as an SM would leave it, without sending MADs.

For tests and benchmarks that need a routed subnet without running OpenSM: every CA port
and switch port 0 gets a LID in discovery order (LMC 0), MasterSMLID points at the chosen
SM port, every switch gets a linear forwarding table of shortest paths (breadth-first from
each destination, ties broken by the lowest port number), and every trained link is made
Active.  This is not OpenSM's min-hop algorithm and balances nothing.
"""

from __future__ import annotations

from collections import deque

from hcasim.fabric.subnet import PortState, Subnet
from hcasim.fabric.topology import PortRef
from hcasim.ib import smp_attrs


def configure(subnet: Subnet, sm: PortRef | None = None,
              first_lid: int = 1) -> dict[int, PortState]:
    """Assign LIDs, SM LID, LFTs and activate links; return LID -> port.

    ``sm`` is the port the SM runs on (default: the topology's first port).
    """
    endpoints: list[PortState] = []
    for node in subnet.nodes:
        if node.is_switch:
            endpoints.append(node.ports[0])
        else:
            endpoints.extend(p for p in node.ports if p.peer is not None)
    lids: dict[int, PortState] = {}
    for lid, port in enumerate(endpoints, start=first_lid):
        port.lid, port.lmc = lid, 0
        lids[lid] = port
    sm_port = subnet.port(sm if sm is not None else subnet.topology.attach_port())
    for port in endpoints:
        port.sm_lid = sm_port.lid
    for node in subnet.nodes:
        for port in node.ports:
            if port.link_up and not port.is_management_port:
                port.state = smp_attrs.PORT_STATE_ACTIVE
    _route_all(subnet, lids)
    return lids


def _route_all(subnet: Subnet, lids: dict[int, PortState]) -> None:
    """Fill every switch's LFT with the egress port of a shortest path to each LID.

    LIDs are grouped by the switch they hang off (a switch's own LID, or the switch a CA
    port is cabled to) and one breadth-first search runs per such switch, so the cost is
    O(switches x links): fine for tests, slow beyond a few thousand switches.
    """
    top = max(lids, default=0)
    tables = {node.id: bytearray(b"\xff" * (top + 1)) for node in subnet.nodes if node.is_switch}
    anchored: dict[str, list[tuple[int, int]]] = {}  # switch id -> [(lid, port there)]
    for lid, dest in lids.items():
        if dest.node.is_switch:
            anchored.setdefault(dest.node.id, []).append((lid, 0))
        elif dest.peer is not None and dest.peer.node.is_switch:
            anchored.setdefault(dest.peer.node.id, []).append((lid, dest.peer.number))
    for switch_id, entries in anchored.items():
        start = subnet.node(switch_id)
        toward: dict[str, int] = {}  # switch id -> egress port toward start
        frontier = deque([start])
        seen = {switch_id}
        while frontier:
            node = frontier.popleft()
            for port in node.ports:
                far = port.peer
                if far is None or not port.link_up or not far.node.is_switch:
                    continue
                if far.node.id in seen:
                    continue
                seen.add(far.node.id)
                toward[far.node.id] = far.number
                frontier.append(far.node)
        own = tables[switch_id]
        for lid, here in entries:
            own[lid] = here
        for other, egress in toward.items():
            table = tables[other]
            for lid, _ in entries:
                table[lid] = egress
    for node in subnet.nodes:
        if node.switch is not None:
            table = tables[node.id]
            for block in range(0, len(table), 64):
                chunk = bytes(table[block:block + 64])
                node.switch.set_lft_block(block // 64, chunk + b"\xff" * (64 - len(chunk)))
            node.switch.linear_fdb_top = top
