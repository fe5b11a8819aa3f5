"""The interface between the client API and a device: :class:`CryptoTransport`.

:class:`~hcasim.mlx5dv.in_process.InProcessTransport` calls engines in this process;
:class:`~hcasim.mlx5dv.socket_transport.SocketCryptoTransport` reaches the lab daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hcasim.devices.mlx5.constants import LoginState
from hcasim.devices.mlx5.crypto_engine import (
    CryptoAttrRequest,
    CryptoCaps,
    DekAttributes,
    DekInitRequest,
    Direction,
)
from hcasim.devices.mlx5.keywrap import Secret

__all__ = ["ContextHandle", "CryptoTransport", "OpenedContext"]

#: What a transport returns from open_context to name the context in later calls.
ContextHandle = int


@dataclass(frozen=True)
class OpenedContext:
    """Result of :meth:`CryptoTransport.open_context`: the handle and the cached caps."""

    handle: ContextHandle
    caps: CryptoCaps


class CryptoTransport(Protocol):
    """How the client API reaches a device: one method per engine operation.

    Each method maps one-to-one onto the :class:`~hcasim.devices.mlx5.CryptoEngine` method of
    the same name, with ``handle`` standing for the engine's context id; ``open_context`` and
    ``close_context`` are the context's life. Failures raise the engine's
    :class:`~hcasim.devices.mlx5.errors.CryptoError` subclasses. How each engine operation
    travels to the lab daemon (its ``mlx5_<name>`` control operation, argument and result
    fields) is declared once, in :data:`hcasim.lab.crypto_protocol.OPERATIONS`;
    ``tests/test_mlx5_operations.py`` checks that this protocol, both transports and the
    daemon agree with it.

    Secrets travel as :class:`~hcasim.devices.mlx5.keywrap.Secret` (``reveal()`` to serialise);
    a transport must not log them. Closing the connection must close its contexts.
    """

    def open_context(self, device_name: str) -> OpenedContext:
        """Open a device context on ``device_name`` (e.g. ``"mlx5_0"``)."""
        ...

    def close_context(self, handle: ContextHandle) -> None:
        """Close the context: its login, DEKs and MKeys go away."""
        ...

    def query_device(self, handle: ContextHandle) -> CryptoCaps:
        """The crypto caps cached when the context was opened."""
        ...

    def crypto_login(
        self,
        handle: ContextHandle,
        credential_id: int,
        import_kek_id: int,
        credential: Secret,
        comp_mask: int,
    ) -> None:
        """``mlx5dv_crypto_login``."""
        ...

    def crypto_login_query_state(self, handle: ContextHandle) -> LoginState:
        """``mlx5dv_crypto_login_query_state``."""
        ...

    def crypto_logout(self, handle: ContextHandle) -> None:
        """``mlx5dv_crypto_logout``."""
        ...

    def crypto_login_create(
        self,
        handle: ContextHandle,
        credential_id: int,
        import_kek_id: int,
        credential: Secret,
        comp_mask: int,
    ) -> int:
        """``mlx5dv_crypto_login_create``; returns the login object id."""
        ...

    def crypto_login_query(
        self, handle: ContextHandle, login_id: int, comp_mask: int
    ) -> LoginState:
        """``mlx5dv_crypto_login_query``."""
        ...

    def crypto_login_destroy(self, handle: ContextHandle, login_id: int) -> None:
        """``mlx5dv_crypto_login_destroy``."""
        ...

    def dek_create(self, handle: ContextHandle, attr: DekInitRequest) -> int:
        """``mlx5dv_dek_create``; returns the DEK object id."""
        ...

    def dek_query(self, handle: ContextHandle, dek_id: int, comp_mask: int) -> DekAttributes:
        """``mlx5dv_dek_query``."""
        ...

    def dek_destroy(self, handle: ContextHandle, dek_id: int) -> None:
        """``mlx5dv_dek_destroy``."""
        ...

    def mkey_create(self, handle: ContextHandle, create_flags: int, max_entries: int) -> int:
        """``mlx5dv_create_mkey``; returns the MKey id."""
        ...

    def mkey_configure(
        self,
        handle: ContextHandle,
        mkey_id: int,
        length: int,
        crypto: CryptoAttrRequest | None,
    ) -> None:
        """A UMR that sets the MKey's layout length and crypto properties, completed."""
        ...

    def mkey_destroy(self, handle: ContextHandle, mkey_id: int) -> None:
        """``mlx5dv_destroy_mkey``."""
        ...

    def mkey_transfer(
        self,
        handle: ContextHandle,
        mkey_id: int,
        direction: Direction,
        data: bytes | bytearray | memoryview,
        offset: int,
    ) -> memoryview:
        """Data through the crypto MKey (TX: memory -> wire, RX: wire -> memory)."""
        ...
