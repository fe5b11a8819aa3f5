"""The static description of a fabric: nodes, their ports, and the cables between them.

A :class:`Topology` is what a net file describes (see :mod:`hcasim.fabric.netfile`): it
holds what is cabled and how each node identifies itself (GUIDs, description, preset
LIDs), never run-time state such as port states or LIDs an SM assigned.  Run-time state
lives in :mod:`hcasim.fabric.subnet`.

Classes use ``__slots__`` because a 20,000-HCA fabric has about 65,000 ports.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple


class NodeKind(enum.IntEnum):
    """Node type, valued as NodeInfo.NodeType (IBTA 14.2.5.3; libibmad ``NodeType``)."""

    CA = 1
    SWITCH = 2
    ROUTER = 3


class PortRef(NamedTuple):
    """One end of a cable: a node id and a port number."""

    node: str
    port: int


# LinkWidthEnabled / LinkSpeedEnabled / LinkSpeedExtEnabled bit masks (IBTA 14.2.5.6,
# PortInfo; ibsim ``sim.h:50-98``).  Defaults are ibsim's: 4x SDR, no extended speed
# (``sim.h:102-104``).
WIDTH_1X = 0x01
WIDTH_4X = 0x02
WIDTH_8X = 0x04
WIDTH_12X = 0x08
WIDTH_2X = 0x10
SPEED_SDR = 0x1
SPEED_DDR = 0x2
SPEED_QDR = 0x4
EXT_SPEED_FDR = 0x1
EXT_SPEED_EDR = 0x2
EXT_SPEED_HDR = 0x4
DEFAULT_WIDTH_ENABLED = WIDTH_4X
DEFAULT_SPEED_ENABLED = SPEED_SDR
DEFAULT_EXT_SPEED_ENABLED = 0


@dataclass(slots=True)
class Port:
    """A physical port of a node as the net file describes it.

    ``width_enabled``, ``speed_enabled`` and ``ext_speed_enabled`` are the PortInfo
    LinkWidthEnabled, LinkSpeedEnabled and LinkSpeedExtEnabled masks.  ``lid``/``lmc``
    are LIDs preset by the file (ibnetdiscover dumps carry them), 0 when not given.
    ``peer`` is the other end of the cable, ``None`` for an unconnected port.
    """

    number: int
    guid: int
    width_enabled: int = DEFAULT_WIDTH_ENABLED
    speed_enabled: int = DEFAULT_SPEED_ENABLED
    ext_speed_enabled: int = DEFAULT_EXT_SPEED_ENABLED
    lid: int = 0
    lmc: int = 0
    alias: str | None = None
    peer: PortRef | None = None


@dataclass(slots=True)
class Node:
    """A switch, CA or router.

    ``id`` is the quoted name in the net file, including any ``module`` prefix
    (``"pfx#id"``).  ``ports`` lists the node's ports in order: 0..N for a switch (port 0
    is the switch management port and cannot be cabled), 1..N for a CA or router; use
    :meth:`port` to index by port number.  ``enhanced_port0`` is SwitchInfo.EnhancedPort0
    when the header said ``enhanced port 0`` / ``base port 0``, else ``None``.
    """

    kind: NodeKind
    id: str
    description: str
    guid: int
    num_ports: int
    system_image_guid: int
    vendor_id: int = 0
    device_id: int = 0
    enhanced_port0: bool | None = None
    ports: list[Port] = field(default_factory=list)

    @property
    def first_port(self) -> int:
        """The lowest port number: 0 on a switch (management port), 1 otherwise."""
        return 0 if self.kind is NodeKind.SWITCH else 1

    def port(self, number: int) -> Port:
        """Return port ``number``; raise ``IndexError`` if the node has no such port."""
        index = number - self.first_port
        if number < self.first_port or number > self.num_ports:
            raise IndexError(f"node {self.id!r} has no port {number}")
        return self.ports[index]

    def has_port(self, number: int) -> bool:
        """Whether ``number`` is a valid port number on this node."""
        return self.first_port <= number <= self.num_ports

    @property
    def port_guids(self) -> list[int]:
        """The port GUIDs in port order (every switch port uses the node GUID)."""
        return [p.guid for p in self.ports]

    @property
    def module(self) -> str:
        """The ``module`` prefix of the node id ("" when none)."""
        head, sep, _ = self.id.partition("#")
        return head if sep else ""


@dataclass(slots=True, eq=False)
class Topology:
    """Nodes in file order, the cables between their ports, and port aliases.

    ``links`` holds every cable once, as ``(a, b)`` with ``a`` the end met first in
    the file.  ``commands`` are the ``do <console command>`` lines, not executed by the
    parser.  Two topologies are equal when their nodes (in order, with ports and peers),
    aliases, commands and sets of cables are equal; the order of ``links`` is ignored.
    """

    nodes: list[Node] = field(default_factory=list)
    links: list[tuple[PortRef, PortRef]] = field(default_factory=list)
    aliases: dict[str, PortRef] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    _by_id: dict[str, Node] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self._by_id:
            for node in self.nodes:
                if node.id in self._by_id:
                    raise ValueError(f"duplicate node id {node.id!r}")
                self._by_id[node.id] = node

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topology):
            return NotImplemented
        return (self.nodes == other.nodes and self.aliases == other.aliases
                and self.commands == other.commands
                and self._cable_set() == other._cable_set())

    __hash__ = None  # type: ignore[assignment]  # mutable

    def _cable_set(self) -> set[tuple[PortRef, PortRef]]:
        return {(a, b) if a <= b else (b, a) for a, b in self.links}

    def add_node(self, node: Node) -> None:
        """Append ``node``; its id must be new."""
        if node.id in self._by_id:
            raise ValueError(f"duplicate node id {node.id!r}")
        self.nodes.append(node)
        self._by_id[node.id] = node

    def node(self, node_id: str) -> Node:
        """Return the node whose id is ``node_id``; ``KeyError`` if there is none."""
        return self._by_id[node_id]

    def get(self, node_id: str) -> Node | None:
        """Return the node whose id is ``node_id``, or ``None``."""
        return self._by_id.get(node_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._by_id

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def port(self, ref: PortRef) -> Port:
        """Return the port a :class:`PortRef` names."""
        return self._by_id[ref.node].port(ref.port)

    def connect(self, a: PortRef, b: PortRef) -> None:
        """Cable port ``a`` to port ``b``; both must exist and be free.

        Switch port 0 cannot be cabled (ibsim ``sim_net.c:751-767``).
        """
        pa, pb = self.port(a), self.port(b)
        for ref, p in ((a, pa), (b, pb)):
            if p.number == 0:
                raise ValueError(f"port 0 of {ref.node!r} cannot be cabled")
            if p.peer is not None:
                raise ValueError(f"port {ref.port} of {ref.node!r} is already cabled")
        if a == b:
            raise ValueError(f"port {a.port} of {a.node!r} cannot be cabled to itself")
        pa.peer, pb.peer = b, a
        self.links.append((a, b))

    def find_node(self, name: str) -> Node | None:
        """Resolve a ``SIM_HOST`` value: exact node id first, then exact description.

        Same order as ibsim ``find_node()`` then ``find_node_by_desc()``
        (``ibsim/ibsim.c:206-216``, ``sim_net.c:1472-1498``).
        """
        node = self._by_id.get(name)
        if node is not None:
            return node
        for node in self.nodes:
            if node.description == name:
                return node
        return None

    def attach_port(self, sim_host: str | None = None) -> PortRef:
        """The port a client with ``SIM_HOST=sim_host`` attaches to (docs/sources.md §1.8).

        Switch port 0 or port 1 of a CA/router (``sim_net.c:1514-1522``); without
        ``sim_host`` the first port of the first node in the file.  ``KeyError`` if
        ``sim_host`` names no node, ``LookupError`` if the topology is empty.
        """
        if sim_host:
            node = self.find_node(sim_host)
            if node is None:
                raise KeyError(sim_host)
        elif self.nodes:
            node = self.nodes[0]
        else:
            raise LookupError("empty topology")
        return PortRef(node.id, node.first_port)
