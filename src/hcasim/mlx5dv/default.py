"""Which transport a context opened without one uses.

The one given to :func:`set_default_transport` (tests, benchmarks), else the lab daemon that
``hcasim exec --host H`` names in the environment.
"""

from __future__ import annotations

from hcasim.mlx5dv.socket_transport import environment_transport
from hcasim.mlx5dv.transport import CryptoTransport

__all__ = ["default_transport", "set_default_transport"]

_default_transport: CryptoTransport | None = None


def set_default_transport(transport: CryptoTransport | None) -> None:
    """Choose the transport that ``Mlx5Context(name)`` uses when given none."""
    global _default_transport
    _default_transport = transport


def default_transport() -> CryptoTransport:
    """The transport for a context opened without one: the chosen default, else the daemon
    named by the environment."""
    if _default_transport is not None:
        return _default_transport
    return environment_transport()
