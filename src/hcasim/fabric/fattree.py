"""Build fat-tree topologies of any size, for tests and benchmarks.

The tree is a folded Clos of identical ``radix``-port switches:

* two levels when the leaves fit under one layer of spines: every leaf has ``down`` HCA
  ports and ``up = radix - down`` uplinks, one to each of ``up`` spines;
* three levels otherwise: leaves are grouped in pods of ``radix // 2`` leaves; a pod has
  ``up`` aggregation switches and leaf uplink ``j`` goes to aggregation switch ``j`` of
  its pod; aggregation switch ``j`` of every pod has ``radix - radix // 2`` uplinks, one to
  each core switch of core group ``j``, and core port ``k`` goes to pod ``k``.

``down`` defaults to ``radix // 2`` (non-blocking); when the HCAs do not fit, the
smallest larger ``down`` that fits is used (an oversubscribed tree).  HCAs are filled leaf
by leaf, so the last leaf may be partly used.

Usage: ``python -m hcasim.fabric.fattree --hcas 1024 [--radix 36] > ft.net``.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

from hcasim.fabric.netfile import format_netfile
from hcasim.fabric.topology import (
    EXT_SPEED_EDR,
    EXT_SPEED_FDR,
    SPEED_DDR,
    SPEED_QDR,
    SPEED_SDR,
    WIDTH_1X,
    WIDTH_4X,
    Node,
    NodeKind,
    Port,
    PortRef,
    Topology,
)

# Enabled masks of a 4x EDR link as the net-file tag "4xEDR" sets them (ibsim
# ``sim_net.c:475-500``): LinkWidthEnabled 1x|4x, LinkSpeedEnabled SDR|DDR|QDR,
# LinkSpeedExtEnabled FDR|EDR.
LINK_4X_EDR = (WIDTH_1X | WIDTH_4X, SPEED_SDR | SPEED_DDR | SPEED_QDR,
               EXT_SPEED_FDR | EXT_SPEED_EDR)
# GUID bases: Mellanox OUI 0x0002c9 in the top 24 bits; switches and CAs in separate
# ranges; a CA takes 16 GUIDs (node GUID + port numbers) like a real adapter's range.
SWITCH_GUID_BASE = 0x0002C90200000000
CA_GUID_BASE = 0x0002C90300000000
CA_GUID_STRIDE = 0x10


@dataclass(frozen=True, slots=True)
class FatTreePlan:
    """The shape of a fat tree: how many switches of each level and how they connect."""

    hcas: int
    radix: int
    levels: int
    down: int
    up: int
    leaves: int
    leaves_per_pod: int
    pods: int
    spines: int

    @property
    def switches(self) -> int:
        """Total number of switches."""
        if self.levels == 2:
            return self.leaves + self.spines
        return self.leaves + self.pods * self.up + self.spines

    @property
    def nodes(self) -> int:
        """Total number of nodes (switches and HCAs)."""
        return self.switches + self.hcas


def plan_fat_tree(hcas: int, radix: int = 36, down: int | None = None) -> FatTreePlan:
    """Choose the levels and the leaf split for ``hcas`` HCAs on ``radix``-port switches.

    Raises ``ValueError`` when no tree of at most three levels holds them.
    """
    if hcas < 1:
        raise ValueError("need at least one HCA")
    if not 4 <= radix <= 254:  # NodeInfo.NumPorts is 8 bits, 255 reserved (IBTA 14.2.5.3)
        raise ValueError(f"radix {radix} out of range 4..254")
    candidates = [down] if down is not None else range(radix // 2, radix)
    for d in candidates:
        if not 1 <= d < radix:
            raise ValueError(f"bad split: {d} down ports on a {radix}-port switch")
        up = radix - d
        leaves = math.ceil(hcas / d)
        if leaves <= radix:
            return FatTreePlan(hcas, radix, 2, d, up, leaves, leaves, 1, up)
        per_pod = radix // 2
        pods = math.ceil(leaves / per_pod)
        if pods <= radix:
            return FatTreePlan(hcas, radix, 3, d, up, leaves, per_pod, pods,
                               up * (radix - per_pod))
    raise ValueError(f"{hcas} HCAs do not fit in a 3-level tree of {radix}-port switches")


def fat_tree(hcas: int, radix: int = 36, down: int | None = None,
             link: tuple[int, int, int] = LINK_4X_EDR) -> Topology:
    """Build the fat tree :func:`plan_fat_tree` chooses, as a :class:`Topology`.

    Node order: spines (``spineNN``) or cores (``coreNN``), aggregation switches
    (``aggPP-NN``), leaves (``leafNN``), then HCAs (``Hnnnnn``, description
    ``"Hnnnnn HCA-1"``).
    ``link`` gives the (width, speed, ext speed) enabled masks of every cabled port.
    """
    plan = plan_fat_tree(hcas, radix, down)
    topo = Topology()
    link_width, link_speed, link_ext = link
    guid = SWITCH_GUID_BASE

    def add_switch(name: str) -> str:
        nonlocal guid
        guid += 1
        topo.add_node(Node(NodeKind.SWITCH, name, name, guid, radix, guid,
                           ports=[Port(p, guid) for p in range(radix + 1)]))
        return name

    def cable(a: str, pa: int, b: str, pb: int) -> None:
        for node_id, number in ((a, pa), (b, pb)):
            port = topo.node(node_id).port(number)
            port.width_enabled = link_width
            port.speed_enabled = link_speed
            port.ext_speed_enabled = link_ext
        topo.connect(PortRef(a, pa), PortRef(b, pb))

    def width(count: int) -> int:
        return max(2, len(str(count)))

    top = "spine" if plan.levels == 2 else "core"
    spines = [add_switch(f"{top}{i + 1:0{width(plan.spines)}d}") for i in range(plan.spines)]
    aggs: list[list[str]] = []
    if plan.levels == 3:
        aggs = [[add_switch(f"agg{k + 1:0{width(plan.pods)}d}-{j + 1:0{width(plan.up)}d}")
                 for j in range(plan.up)] for k in range(plan.pods)]
    leaves = [add_switch(f"leaf{i + 1:0{width(plan.leaves)}d}") for i in range(plan.leaves)]
    hca_digits = max(5, len(str(hcas)))
    for h in range(hcas):
        name = f"H{h + 1:0{hca_digits}d}"
        node_guid = CA_GUID_BASE + h * CA_GUID_STRIDE
        topo.add_node(Node(NodeKind.CA, name, f"{name} HCA-1", node_guid, 1, node_guid,
                           ports=[Port(1, node_guid + 1)]))
        leaf, slot = divmod(h, plan.down)
        cable(leaves[leaf], slot + 1, name, 1)
    if plan.levels == 2:
        for i, leaf_name in enumerate(leaves):
            for j, spine in enumerate(spines):
                cable(leaf_name, plan.down + j + 1, spine, i + 1)
    else:
        agg_up = radix - plan.leaves_per_pod
        for i, leaf_name in enumerate(leaves):
            pod, index = divmod(i, plan.leaves_per_pod)
            for j in range(plan.up):
                cable(leaf_name, plan.down + j + 1, aggs[pod][j], index + 1)
        for pod in range(plan.pods):
            for j in range(plan.up):
                for c in range(agg_up):
                    cable(aggs[pod][j], plan.leaves_per_pod + c + 1, spines[j * agg_up + c],
                          pod + 1)
    return topo


def main(argv: list[str] | None = None) -> int:
    """Command line: print a fat-tree net file."""
    ap = argparse.ArgumentParser(description="Write a fat-tree net file to stdout.")
    ap.add_argument("--hcas", type=int, required=True)
    ap.add_argument("--radix", type=int, default=36)
    ap.add_argument("--down", type=int, default=None)
    args = ap.parse_args(argv)
    try:
        topo = fat_tree(args.hcas, args.radix, args.down)
    except ValueError as e:
        print(f"fattree: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(format_netfile(topo))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
