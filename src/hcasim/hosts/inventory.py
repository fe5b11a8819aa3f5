"""What the host side needs to know of a lab's hosts: their names and their devices.

The lab (:class:`hcasim.lab.lab.Host`) satisfies these protocols; tests may pass anything
shaped alike. Defined here so the host side never imports the daemon.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class LabDevice(Protocol):
    """One HCA of a host."""

    @property
    def ident(self) -> str:
        """The lab's name for the device (``host/mt4099``)."""
        ...

    @property
    def firmware(self) -> object:
        """Its firmware model (a :class:`~hcasim.devices.cx3.Cx3Firmware`, ...)."""
        ...


class LabHost(Protocol):
    """A host and the HCAs plugged into it."""

    @property
    def name(self) -> str:
        """The host's name, which is also its node's name on the fabric."""
        ...

    @property
    def devices(self) -> Sequence[LabDevice]:
        """Its HCAs, in slot order."""
        ...
