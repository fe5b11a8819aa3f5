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
from hcasim.ib import smp_attrs as sa


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
                port.state = sa.PORT_STATE_ACTIVE
    _route_all(subnet, lids)
    return lids


def _route_all(subnet: Subnet, lids: dict[int, PortState]) -> None:
    """Fill every switch's LFT with the egress port of a shortest path to each LID."""
    top = max(lids, default=0)
    tables = {node.id: bytearray(b"\xff" * (top + 1)) for node in subnet.nodes if node.is_switch}
    for lid, dest in lids.items():
        # distance from every switch to dest, walking links backwards from dest's node
        start = dest.node
        if start.is_switch:
            tables[start.id][lid] = 0
            frontier = deque([start])
        else:
            peer = dest.peer
            if peer is None or not peer.node.is_switch:
                continue
            tables[peer.node.id][lid] = peer.number
            frontier = deque([peer.node])
        seen = {frontier[0].id}
        while frontier:
            node = frontier.popleft()
            for port in node.ports:
                far = port.peer
                if far is None or not port.link_up or not far.node.is_switch:
                    continue
                if far.node.id in seen:
                    continue
                seen.add(far.node.id)
                tables[far.node.id][lid] = far.number
                frontier.append(far.node)
    for node in subnet.nodes:
        if node.switch is not None:
            table = tables[node.id]
            for block in range(0, len(table), 64):
                chunk = bytes(table[block:block + 64])
                node.switch.set_lft_block(block // 64, chunk + b"\xff" * (64 - len(chunk)))
            node.switch.linear_fdb_top = top
