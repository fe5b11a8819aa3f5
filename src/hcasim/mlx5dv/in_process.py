"""A :class:`~hcasim.mlx5dv.transport.CryptoTransport` that calls engines in this process
(tests, benchmarks, examples: :mod:`hcasim.api.crypto_lab` builds one)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping

from hcasim.devices.mlx5.constants import LoginState
from hcasim.devices.mlx5.crypto_engine import (
    CryptoAttrRequest,
    CryptoCaps,
    CryptoEngine,
    DekAttributes,
    DekInitRequest,
    Direction,
)
from hcasim.devices.mlx5.errors import CryptoStaleContext
from hcasim.devices.mlx5.keywrap import Secret
from hcasim.mlx5dv.errors import PyverbsRDMAError
from hcasim.mlx5dv.transport import ContextHandle, OpenedContext

__all__ = ["InProcessTransport"]


class InProcessTransport:
    """A :class:`CryptoTransport` that calls :class:`CryptoEngine` objects in this process.

    ``devices`` maps device names (``"mlx5_0"``) to engines. Context ids given to the engines
    are ``(transport serial, handle)`` tuples, so several transports can share one engine, as
    several processes share one HCA.
    """

    _serials = itertools.count(1)

    def __init__(self, devices: Mapping[str, CryptoEngine]) -> None:
        """Serve the named engines."""
        self._devices = dict(devices)
        self._serial = next(self._serials)
        self._handles = itertools.count(1)
        self._open: dict[ContextHandle, CryptoEngine] = {}
        self._lock = threading.Lock()

    def _ctx(self, handle: ContextHandle) -> tuple[CryptoEngine, tuple[int, int]]:
        engine = self._open.get(handle)
        if engine is None:
            raise CryptoStaleContext(f"context handle {handle} is not open")
        return engine, (self._serial, handle)

    def open_context(self, device_name: str) -> OpenedContext:
        """Open a context on the named engine; an unknown name fails as pyverbs' Context does
        for a device ibv_get_device_list does not list (PyverbsRDMAError, no errno)."""
        try:
            engine = self._devices[device_name]
        except KeyError:
            raise PyverbsRDMAError(f"Failed to find device {device_name}") from None
        with self._lock:
            handle = next(self._handles)
            caps = engine.open_context((self._serial, handle))
            self._open[handle] = engine
        return OpenedContext(handle, caps)

    def close_context(self, handle: ContextHandle) -> None:
        """Close a context (unknown handles are ignored)."""
        with self._lock:
            engine = self._open.pop(handle, None)
        if engine is not None:
            engine.close_context((self._serial, handle))

    def query_device(self, handle: ContextHandle) -> CryptoCaps:
        """Cached caps."""
        engine, ctx = self._ctx(handle)
        return engine.query_device(ctx)

    def crypto_login(
        self,
        handle: ContextHandle,
        credential_id: int,
        import_kek_id: int,
        credential: Secret,
        comp_mask: int,
    ) -> None:
        """``mlx5dv_crypto_login``."""
        engine, ctx = self._ctx(handle)
        engine.crypto_login(ctx, credential_id, import_kek_id, credential, comp_mask)

    def crypto_login_query_state(self, handle: ContextHandle) -> LoginState:
        """``mlx5dv_crypto_login_query_state``."""
        engine, ctx = self._ctx(handle)
        return engine.crypto_login_query_state(ctx)

    def crypto_logout(self, handle: ContextHandle) -> None:
        """``mlx5dv_crypto_logout``."""
        engine, ctx = self._ctx(handle)
        engine.crypto_logout(ctx)

    def crypto_login_create(
        self,
        handle: ContextHandle,
        credential_id: int,
        import_kek_id: int,
        credential: Secret,
        comp_mask: int,
    ) -> int:
        """``mlx5dv_crypto_login_create``."""
        engine, ctx = self._ctx(handle)
        return engine.crypto_login_create(ctx, credential_id, import_kek_id, credential, comp_mask)

    def crypto_login_query(
        self, handle: ContextHandle, login_id: int, comp_mask: int
    ) -> LoginState:
        """``mlx5dv_crypto_login_query``."""
        engine, ctx = self._ctx(handle)
        return engine.crypto_login_query(ctx, login_id, comp_mask)

    def crypto_login_destroy(self, handle: ContextHandle, login_id: int) -> None:
        """``mlx5dv_crypto_login_destroy``."""
        engine, ctx = self._ctx(handle)
        engine.crypto_login_destroy(ctx, login_id)

    def dek_create(self, handle: ContextHandle, attr: DekInitRequest) -> int:
        """``mlx5dv_dek_create``."""
        engine, ctx = self._ctx(handle)
        return engine.dek_create(ctx, attr)

    def dek_query(self, handle: ContextHandle, dek_id: int, comp_mask: int) -> DekAttributes:
        """``mlx5dv_dek_query``."""
        engine, ctx = self._ctx(handle)
        return engine.dek_query(ctx, dek_id, comp_mask)

    def dek_destroy(self, handle: ContextHandle, dek_id: int) -> None:
        """``mlx5dv_dek_destroy``."""
        engine, ctx = self._ctx(handle)
        engine.dek_destroy(ctx, dek_id)

    def mkey_create(self, handle: ContextHandle, create_flags: int, max_entries: int) -> int:
        """``mlx5dv_create_mkey``."""
        engine, ctx = self._ctx(handle)
        return engine.mkey_create(ctx, create_flags, max_entries)

    def mkey_configure(
        self,
        handle: ContextHandle,
        mkey_id: int,
        length: int,
        crypto: CryptoAttrRequest | None,
    ) -> None:
        """UMR + ``ibv_wr_complete``."""
        engine, ctx = self._ctx(handle)
        engine.mkey_configure(ctx, mkey_id, length, crypto)

    def mkey_destroy(self, handle: ContextHandle, mkey_id: int) -> None:
        """``mlx5dv_destroy_mkey``."""
        engine, ctx = self._ctx(handle)
        engine.mkey_destroy(ctx, mkey_id)

    def mkey_transfer(
        self,
        handle: ContextHandle,
        mkey_id: int,
        direction: Direction,
        data: bytes | bytearray | memoryview,
        offset: int,
    ) -> memoryview:
        """Data through a crypto MKey."""
        engine, ctx = self._ctx(handle)
        return engine.mkey_transfer(ctx, mkey_id, direction, data, offset)
