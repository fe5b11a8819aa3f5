"""The seam between the fabric and a device's firmware model.

Every node has a :class:`NodeFirmware`.  The base class is a plain IBTA device: it lets
everything through and adds nothing, so the standard subnet management agent (SMA) of
:mod:`hcasim.fabric.sma` answers SMPs exactly as the specification says.  A device model
(for example the ConnectX-3 Secure Host firmware, which owns QP0 when its key is active)
subclasses it and overrides the hooks it needs:

``host_send``
    a MAD leaves the host through this node (a client attached here injects it): let it
    out or swallow it (the SMP firewall drops SMPs the host sends, and the host's MAD
    layer sees them time out: ``Action.TIMED_OUT``);
``smp_received``
    an SMP reaches this node's SMA, before the standard SMA sees it: pass it on, drop it,
    or answer it with the firmware's own status and data (e.g. refuse a GUIDInfo Set that
    would change GUID0);
``smp_reply``
    edit the data of a reply the standard SMA produced (e.g. hide the M_Key from the host);
``mad_received``
    a MAD of a class the SMA and PMA do not serve (vendor classes such as Mellanox
    ConfigSpaceAccess 0x0A/0x09) reaches this node: answer it with a whole MAD, or return
    ``None`` to let it go on to a client attached here (the SM, for SA) or bounce;
``port_changed``
    the SMA changed port configuration (what mlx4 firmware reports to its driver as a
    PORT_MNG_CHG event, docs/sources.md §9.3).

The hooks receive a :class:`MadContext` that says where the MAD arrived and whether it
came from this node's own host (``from_host``), which is what a firewall decides on.
Hooks must not raise for malformed input they do not understand: return ``Action.PASS``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr

from hcasim.ib.mad import (
    CLASS_SUBN_DIRECTED_ROUTE,
    CLASS_SUBN_LID_ROUTED,
    DrSmp,
    MadHeader,
    Smp,
)

if TYPE_CHECKING:
    from hcasim.fabric.subnet import NodeState, PortState


class Action(enum.Enum):
    """What a firmware hook wants done with a MAD."""

    PASS = "pass"  # carry on with the standard behaviour
    DROP = "drop"  # discard silently: the sender sees no reply and times out
    # ``host_send`` only: discard, and the sending host's MAD layer completes the send with
    # ETIMEDOUT, as the kernel does when no response comes (a sim status 110 bounce; what
    # libibmad then prints is the seed's firewalled ``sminfo`` failure)
    TIMED_OUT = "timed out"


@dataclass(frozen=True, slots=True)
class Answer:
    """The firmware answers an SMP itself: MAD ``status`` and the 64-byte SMP data."""

    status: int
    data: bytes = b""


class PortChange(enum.Flag):
    """What a Set changed on a port (mlx4 PORT_MNG_CHG subtypes and PortInfo flags)."""

    NONE = 0
    SM_LID = enum.auto()
    GID_PREFIX = enum.auto()
    LID = enum.auto()
    CLIENT_REREGISTER = enum.auto()
    SM_SL = enum.auto()
    M_KEY = enum.auto()
    PORT_STATE = enum.auto()
    PKEY_TABLE = enum.auto()
    GUID_TABLE = enum.auto()
    SL2VL_TABLE = enum.auto()


class MadContext:
    """Where a MAD is: the node and port it reached, and who sent it.

    ``port`` is the ingress port at ``node`` (for ``host_send``: the port the sending
    client is attached to); ``from_host`` is true when the sender is a client attached
    to this same node; ``now`` is the caller's monotonic clock in seconds.  ``raw`` is the
    256-byte MAD; ``mad`` is its header decoded (a :class:`DrSmp`, :class:`Smp` or
    :class:`MadHeader` by management class), on first use only, so a hook that needs
    nothing but a byte or two of ``raw`` costs the MAD path nothing more.
    """

    __slots__ = ("node", "port", "raw", "from_host", "now", "_mad")

    def __init__(self, node: NodeState, port: PortState, mad: MadHeader | Smp | DrSmp | None,
                 raw: bytes, from_host: bool, now: float) -> None:
        self.node = node
        self.port = port
        self._mad = mad
        self.raw = raw
        self.from_host = from_host
        self.now = now

    @property
    def mad(self) -> MadHeader | Smp | DrSmp:
        """The decoded header (see the class docstring)."""
        header = self._mad
        if header is None:
            header = self._mad = decode_header(self.raw)
        return header

    @property
    def mgmt_class(self) -> int:
        """MgmtClass (byte 1 of the MAD), without decoding the header."""
        return self.raw[1]

    @property
    def method(self) -> int:
        """Method including the R bit (byte 3), without decoding the header."""
        return self.raw[3]

    @property
    def attr_id(self) -> int:
        """AttributeID (bytes 16-17), without decoding the header."""
        return int.from_bytes(self.raw[16:18], "big")

    @property
    def attr_mod(self) -> int:
        """AttributeModifier (bytes 20-23), without decoding the header."""
        return int.from_bytes(self.raw[20:24], "big")

    def __repr__(self) -> str:
        return (f"MadContext({self.node!r}, {self.port!r}, class {self.raw[1]:#04x}, "
                f"from_host={self.from_host})")


def decode_header(raw: bytes) -> MadHeader | Smp | DrSmp:
    """A MAD decoded as the engine sees it: directed-route SMP (class 0x81), LID-routed SMP
    (0x01) or the common header of any other class."""
    if raw[1] == CLASS_SUBN_DIRECTED_ROUTE:
        return DrSmp.decode(raw)
    if raw[1] == CLASS_SUBN_LID_ROUTED:
        return Smp.decode(raw)
    return MadHeader.decode(raw)


# device models (and tests) subclass it in Python while this module is compiled
@mypyc_attr(allow_interpreted_subclasses=True)
class NodeFirmware:
    """A plain IBTA device: every hook passes.  Subclass to model device firmware."""

    def host_send(self, ctx: MadContext) -> Action:
        """A MAD is leaving through this node from its host; ``DROP`` swallows it."""
        return Action.PASS

    def smp_received(self, ctx: MadContext) -> Action | Answer:
        """An SMP reached this node's SMA; ``PASS`` hands it to the standard SMA."""
        return Action.PASS

    def smp_reply(self, ctx: MadContext, attr_id: int, data: bytearray) -> None:
        """Edit the 64-byte data of the standard SMA's reply in place (default: none)."""

    def mad_received(self, ctx: MadContext) -> bytes | None:
        """A MAD of a class the SMA/PMA do not serve reached this node.

        Return a whole 256-byte response MAD to answer it, or ``None`` to leave it to a
        client attached at the port (or bounce it when there is none).
        """
        return None

    def port_changed(self, port: PortState, changes: PortChange) -> None:
        """The SMA changed port configuration (called after the change)."""
