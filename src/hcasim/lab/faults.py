"""Fault injection on the lab's fabric, for the operator (``hcasim fault``) and tests.

Control operations (docs/design-notes.md, control protocol):

* ``fault_link`` (``node``, ``port``, ``state`` "down" or "up"): the link fails (both ends
  Down/Polling, LinkDownedCounter + 1 on each) or trains again; switches send trap 128;
* ``fault_port`` (``node``, ``port``, ``symbol``, ``rcv_errors``, ``drop``: percent of
  the MADs entering the port): symbol errors, corrupted packets, silent loss; all 0 heals;
* ``fault_node`` (``node``, ``answering``): the node's agents stop answering, or answer
  again;
* ``fault_show``: every fault in place (port rates, failed link ends, silent nodes).

Nodes are named as in the lab's net file (``hcasim status`` lists the hosts; switches by
their net-file id).  The model is :mod:`hcasim.fabric.subnet` (``PortFault``,
``NodeState.silent``) and :meth:`hcasim.fabric.engine.MadEngine.fail_link`.
"""

from __future__ import annotations

import errno
from typing import Any

from hcasim.fabric.topology import PortRef
from hcasim.lab.control import ControlEndpoint, Session, int_arg, str_arg
from hcasim.lab.ibsim_server import IbsimServer
from hcasim.lab.protocol import ControlError


class FaultService:
    """The ``fault_*`` control operations over one lab's ibsim endpoint."""

    def __init__(self, ibsim: IbsimServer) -> None:
        self.ibsim = ibsim
        self.engine = ibsim.engine

    def register(self, control: ControlEndpoint) -> None:
        """Serve the operations on ``control``."""
        control.register("fault_link", self.link)
        control.register("fault_port", self.port)
        control.register("fault_node", self.node)
        control.register("fault_show", self.show)

    def _port(self, args: dict[str, Any]) -> PortRef:
        ref = PortRef(str_arg(args, "node"), int_arg(args, "port", 0, 254))
        try:
            port = self.engine.subnet.port(ref)
        except KeyError:
            raise ControlError(errno.ENOENT, f"no port {ref.port} on node {ref.node!r}") from None
        if port.is_management_port:
            raise ControlError(errno.EINVAL, "switch port 0 has no link")
        return ref

    def link(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``fault_link``: take a link down as a failure would, or let it train again."""
        ref = self._port(args)
        state = str_arg(args, "state")
        if state not in ("down", "up"):
            raise ControlError(errno.EINVAL, "state must be 'down' or 'up'")
        deliveries = self.engine.fail_link(ref, state == "up")
        self.ibsim.deliver_all(deliveries)
        port = self.engine.subnet.port(ref)
        return {"node": ref.node, "port": ref.port, "link_up": port.link_up,
                "traps": len(deliveries)}

    def port(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``fault_port``: set a port's symbol-error, receive-error and drop rates."""
        ref = self._port(args)
        rates = [int_arg(args, name, 0, 100) if name in args else 0
                 for name in ("symbol", "rcv_errors", "drop")]
        self.engine.set_port_fault(ref, *rates)
        return {"node": ref.node, "port": ref.port, "symbol": rates[0],
                "rcv_errors": rates[1], "drop": rates[2]}

    def node(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``fault_node``: make a node stop answering, or answer again."""
        node_id = str_arg(args, "node")
        answering = args.get("answering")
        if not isinstance(answering, bool):
            raise ControlError(errno.EINVAL, "answering must be true or false")
        try:
            self.engine.set_node_silent(node_id, not answering)
        except KeyError:
            raise ControlError(errno.ENOENT, f"no node {node_id!r}") from None
        return {"node": node_id, "answering": answering}

    def show(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``fault_show``: the faults in place (ports with rates, failed links, silent nodes)."""
        ports: list[dict[str, Any]] = []
        nodes: list[str] = []
        links: list[dict[str, Any]] = []
        for node in self.engine.subnet:
            if node.silent:
                nodes.append(node.id)
            for port in node.ports:
                if port.link_failed:
                    links.append({"node": node.id, "port": port.number})
                fault = port.fault
                if fault is not None:
                    ports.append({"node": node.id, "port": port.number,
                                  "symbol": fault.symbol_rate,
                                  "rcv_errors": fault.rcv_error_rate,
                                  "drop": fault.drop_rate})
        return {"ports": ports, "silent_nodes": nodes, "failed_links": links}
