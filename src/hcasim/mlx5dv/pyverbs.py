"""The mlx5dv crypto API of hcasim's simulated HCAs, shaped like rdma-core's and pyverbs'.

Two flavours over one transport:

* C-shaped functions that return ``0`` or an errno value, as the man pages say:
  :func:`mlx5dv_crypto_login`, :func:`mlx5dv_crypto_login_query_state` (the state comes back
  in a :class:`Ref`), :func:`mlx5dv_crypto_logout`;
* pyverbs-shaped classes that raise :class:`PyverbsRDMAError` (``error_code`` = errno):
  :class:`Mlx5Context` (``crypto_login``/``query_login_state``/``crypto_logout`` static methods,
  ``query_mlx5_device``), :class:`Mlx5CryptoLoginAttr`, :class:`Mlx5CryptoExtLoginAttr`,
  :class:`Mlx5CryptoLogin`, :class:`Mlx5DEKInitAttr`, :class:`Mlx5DEK`, :class:`Mlx5CryptoAttr`
  and :class:`Mlx5Mkey`, a crypto MKey that encrypts and decrypts buffers.

Every call goes through a :class:`CryptoTransport`: one method per engine operation, with the
request and result types of :mod:`hcasim.devices.mlx5.crypto_engine`. :class:`InProcessTransport`
calls engines directly (tests, benchmarks); the lab daemon's socket transport implements the same
protocol (see the class docstring for what each operation carries).

Constant values are rdma-core's ``mlx5dv.h`` (reference mlx5-crypto.md §1.3).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Generic, Protocol, Self, TypeVar, overload

from hcasim.devices.mlx5.constants import (
    MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD,
    MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN,
    BlockSize,
    CryptoCapsFlags,
    CryptoEnginesCaps,
    CryptoKeyPurpose,
    CryptoKeySize,
    CryptoStandard,
    DekState,
    LoginState,
    MkeyInitAttrFlags,
    SignatureCryptoOrder,
    WrappedImportMethodCaps,
)
from hcasim.devices.mlx5.crypto_engine import (
    DEK_KEY_FIELD_LEN,
    CryptoAttrRequest,
    CryptoCaps,
    CryptoEngine,
    DekAttributes,
    DekInitRequest,
    Direction,
)
from hcasim.devices.mlx5.errors import (
    CryptoCompletionError,
    CryptoError,
    CryptoStaleContext,
    WcStatus,
)
from hcasim.devices.mlx5.keywrap import WRAPPED_CREDENTIAL_LEN, Secret
from hcasim.devices.mlx5.xts import DATA_UNIT_SIZES

__all__ = [
    "MLX5DV_BLOCK_SIZE_512",
    "MLX5DV_BLOCK_SIZE_520",
    "MLX5DV_BLOCK_SIZE_4048",
    "MLX5DV_BLOCK_SIZE_4096",
    "MLX5DV_BLOCK_SIZE_4160",
    "MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD",
    "MLX5DV_CRYPTO_CAPS_CRYPTO",
    "MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_GOING_TO_COMMISSIONING",
    "MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_OPERATIONAL",
    "MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS",
    "MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_MULTI_BLOCK",
    "MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_SINGLE_BLOCK",
    "MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS",
    "MLX5DV_CRYPTO_KEY_SIZE_128",
    "MLX5DV_CRYPTO_KEY_SIZE_256",
    "MLX5DV_CRYPTO_LOGIN_STATE_INVALID",
    "MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN",
    "MLX5DV_CRYPTO_LOGIN_STATE_VALID",
    "MLX5DV_CRYPTO_STANDARD_AES_XTS",
    "MLX5DV_CRYPTO_WRAPPED_IMPORT_METHOD_CAP_AES_XTS",
    "MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN",
    "MLX5DV_DEK_STATE_ERROR",
    "MLX5DV_DEK_STATE_READY",
    "MLX5DV_MKEY_INIT_ATTR_FLAGS_BLOCK_SIGNATURE",
    "MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO",
    "MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT",
    "MLX5DV_SIGNATURE_CRYPTO_ORDER_SIGNATURE_AFTER_CRYPTO_ON_TX",
    "MLX5DV_SIGNATURE_CRYPTO_ORDER_SIGNATURE_BEFORE_CRYPTO_ON_TX",
    "PD",
    "ContextHandle",
    "CryptoTransport",
    "InProcessTransport",
    "Mlx5CompletionError",
    "Mlx5Context",
    "Mlx5CryptoAttr",
    "Mlx5CryptoExtLoginAttr",
    "Mlx5CryptoLogin",
    "Mlx5CryptoLoginAttr",
    "Mlx5DEK",
    "Mlx5DEKAttr",
    "Mlx5DEKInitAttr",
    "Mlx5DVContext",
    "Mlx5Mkey",
    "OpenedContext",
    "PyverbsError",
    "PyverbsRDMAError",
    "PyverbsUserError",
    "Ref",
    "data_unit_bytes",
    "mlx5dv_crypto_login",
    "mlx5dv_crypto_login_query_state",
    "mlx5dv_crypto_logout",
    "set_default_transport",
]

# --- constants with their C names (mlx5dv.h; reference §1.3) ----------------------------------

MLX5DV_CRYPTO_LOGIN_STATE_VALID: Final = int(LoginState.VALID)  # 0
MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN: Final = int(LoginState.NO_LOGIN)  # 1
MLX5DV_CRYPTO_LOGIN_STATE_INVALID: Final = int(LoginState.INVALID)  # 2
MLX5DV_CRYPTO_KEY_SIZE_128: Final = int(CryptoKeySize.SIZE_128)
MLX5DV_CRYPTO_KEY_SIZE_256: Final = int(CryptoKeySize.SIZE_256)
MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS: Final = int(CryptoKeyPurpose.AES_XTS)
MLX5DV_DEK_STATE_READY: Final = int(DekState.READY)
MLX5DV_DEK_STATE_ERROR: Final = int(DekState.ERROR)
MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS: Final = int(CryptoEnginesCaps.AES_XTS)
MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_SINGLE_BLOCK: Final = int(CryptoEnginesCaps.AES_XTS_SINGLE_BLOCK)
MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_MULTI_BLOCK: Final = int(CryptoEnginesCaps.AES_XTS_MULTI_BLOCK)
MLX5DV_CRYPTO_WRAPPED_IMPORT_METHOD_CAP_AES_XTS: Final = int(WrappedImportMethodCaps.AES_XTS)
MLX5DV_CRYPTO_CAPS_CRYPTO: Final = int(CryptoCapsFlags.CRYPTO)
MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_OPERATIONAL: Final = int(
    CryptoCapsFlags.WRAPPED_CRYPTO_OPERATIONAL
)
MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_GOING_TO_COMMISSIONING: Final = int(
    CryptoCapsFlags.WRAPPED_CRYPTO_GOING_TO_COMMISSIONING
)
MLX5DV_CRYPTO_STANDARD_AES_XTS: Final = int(CryptoStandard.AES_XTS)
MLX5DV_SIGNATURE_CRYPTO_ORDER_SIGNATURE_AFTER_CRYPTO_ON_TX: Final = int(
    SignatureCryptoOrder.SIGNATURE_AFTER_CRYPTO_ON_TX
)
MLX5DV_SIGNATURE_CRYPTO_ORDER_SIGNATURE_BEFORE_CRYPTO_ON_TX: Final = int(
    SignatureCryptoOrder.SIGNATURE_BEFORE_CRYPTO_ON_TX
)
MLX5DV_BLOCK_SIZE_512: Final = int(BlockSize.SIZE_512)
MLX5DV_BLOCK_SIZE_520: Final = int(BlockSize.SIZE_520)
MLX5DV_BLOCK_SIZE_4048: Final = int(BlockSize.SIZE_4048)
MLX5DV_BLOCK_SIZE_4096: Final = int(BlockSize.SIZE_4096)
MLX5DV_BLOCK_SIZE_4160: Final = int(BlockSize.SIZE_4160)
MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT: Final = int(MkeyInitAttrFlags.INDIRECT)
MLX5DV_MKEY_INIT_ATTR_FLAGS_BLOCK_SIGNATURE: Final = int(MkeyInitAttrFlags.BLOCK_SIGNATURE)
MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO: Final = int(MkeyInitAttrFlags.CRYPTO)

_OPAQUE_LEN: Final = 8
_KEYTAG_LEN: Final = 8
_TWEAK_LEN: Final = 16


# --- errors (pyverbs.pyverbs_error) -----------------------------------------------------------


class PyverbsError(Exception):
    """Base of the pyverbs-style errors."""


class PyverbsUserError(PyverbsError):
    """The caller passed something the C struct cannot hold (e.g. a 47-byte credential)."""


class PyverbsRDMAError(PyverbsError):
    """A verbs call failed; ``error_code`` is the errno the C call returned or set, or -1
    when there is none (pyverbs' default, e.g. "Failed to find device")."""

    def __init__(self, message: str, error_code: int = -1) -> None:
        if error_code != -1:
            message = f"{message}. Errno: {error_code}, {os.strerror(error_code)}"
        super().__init__(message)
        self.error_code = error_code


class Mlx5CompletionError(PyverbsRDMAError):
    """A transfer through a crypto MKey completed in error; ``wc_status`` is ibv_wc_status."""

    def __init__(self, message: str, error_code: int, wc_status: WcStatus) -> None:
        super().__init__(message, error_code)
        self.wc_status = wc_status


def _raise(message: str, exc: CryptoError) -> PyverbsRDMAError:
    if isinstance(exc, CryptoCompletionError):
        return Mlx5CompletionError(
            f"{message}: completion status {exc.wc_status.name}", exc.errno, exc.wc_status
        )
    return PyverbsRDMAError(f"{message}: {exc.message}", exc.errno)


# --- transport ----------------------------------------------------------------------------

#: What a transport returns from open_context to name the context in later calls.
ContextHandle = int


@dataclass(frozen=True)
class OpenedContext:
    """Result of :meth:`CryptoTransport.open_context`: the handle and the cached caps."""

    handle: ContextHandle
    caps: CryptoCaps


class CryptoTransport(Protocol):
    """One method per engine operation; the daemon's socket transport implements this.

    Each method maps one-to-one onto the :class:`~hcasim.devices.mlx5.CryptoEngine` method of
    the same name, with ``handle`` standing for the engine's context id. Failures raise the
    engine's :class:`~hcasim.devices.mlx5.errors.CryptoError` subclasses; a remote transport
    sends ``(errno, status, wc_status, message)`` back and rebuilds the exception with
    :func:`hcasim.devices.mlx5.errors.error_from_code`. On the wire:

    ========================= ================================================ ================
    operation                 request                                          result
    ========================= ================================================ ================
    open_context              device name                                      handle + caps
    close_context             handle                                           -
    query_device              handle                                           CryptoCaps
    crypto_login              handle, credential_id, import_kek_id,            -
                              credential (48 bytes), comp_mask
    crypto_login_query_state  handle                                           LoginState
    crypto_logout             handle                                           -
    crypto_login_create       handle, ids, credential (any length), comp_mask  login id
    crypto_login_query        handle, login id, comp_mask                      LoginState
    crypto_login_destroy      handle, login id                                 -
    dek_create                handle, DekInitRequest (key: 128 bytes)          DEK id
    dek_query                 handle, DEK id, comp_mask                        DekAttributes
    dek_destroy               handle, DEK id                                   -
    mkey_create               handle, create_flags, max_entries                MKey id
    mkey_configure            handle, MKey id, length, CryptoAttrRequest|None  -
    mkey_destroy              handle, MKey id                                  -
    mkey_transfer             handle, MKey id, Direction, offset, data         data out
    ========================= ================================================ ================

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


_default_transport: CryptoTransport | None = None


def set_default_transport(transport: CryptoTransport | None) -> None:
    """Choose the transport that ``Mlx5Context(name)`` uses when given none."""
    global _default_transport
    _default_transport = transport


# --- contexts -----------------------------------------------------------------------------


class _Closable:
    """A verbs object usable as a context manager: leaving the block closes it."""

    def close(self) -> None:
        """Release the object (subclasses say how)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Mlx5DVContext:
    """What ``Mlx5Context.query_mlx5_device`` returns (the crypto part of mlx5dv_context)."""

    comp_mask: int
    crypto_caps: dict[str, int]


T = TypeVar("T")


class Ref(Generic[T]):
    """An out-parameter for the C-shaped functions (``enum mlx5dv_crypto_login_state *``)."""

    def __init__(self, value: T) -> None:
        """Hold ``value`` until the call overwrites it."""
        self.value = value

    def __repr__(self) -> str:
        return f"Ref({self.value!r})"


class Mlx5Context(_Closable):
    """A device context (``ibv_open_device`` + mlx5dv); pyverbs' ``Mlx5Context``."""

    def __init__(self, name: str, *, transport: CryptoTransport | None = None) -> None:
        """Open device ``name`` through ``transport``; by default the one given to
        :func:`set_default_transport`, else the lab daemon named by the environment (a program
        run by ``hcasim exec --host H``): one connection per context. An unknown name raises
        ``PyverbsRDMAError("Failed to find device NAME")`` as pyverbs does."""
        chosen = transport if transport is not None else _default_transport
        if chosen is None:
            from hcasim.api.crypto_transport import environment_transport

            chosen = environment_transport()
        self.name = name
        self.transport = chosen
        opened = chosen.open_context(name)
        self.handle: ContextHandle | None = opened.handle
        self._pds = itertools.count(1)

    def __repr__(self) -> str:
        state = "closed" if self.handle is None else f"handle {self.handle}"
        return f"Mlx5Context({self.name!r}, {state})"

    def _handle(self) -> ContextHandle:
        if self.handle is None:
            raise PyverbsUserError("the context is closed")
        return self.handle

    def close(self) -> None:
        """Close the context (ends its login session, destroys its DEKs and MKeys)."""
        if self.handle is not None:
            handle, self.handle = self.handle, None
            self.transport.close_context(handle)

    def query_mlx5_device(self, comp_mask: int = -1) -> Mlx5DVContext:
        """``mlx5dv_query_device``: crypto caps when comp_mask asks for CRYPTO_OFFLOAD."""
        caps = self.transport.query_device(self._handle())
        if comp_mask & MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD:
            return Mlx5DVContext(MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD, caps.as_dict())
        return Mlx5DVContext(0, {})

    @staticmethod
    def crypto_login(ctx: Mlx5Context, login_attr: Mlx5CryptoLoginAttr) -> None:
        """pyverbs ``Mlx5Context.crypto_login``: raises PyverbsRDMAError on failure."""
        rc = mlx5dv_crypto_login(ctx, login_attr)
        if rc:
            raise PyverbsRDMAError("Failed to create crypto login session", rc)

    @staticmethod
    def query_login_state(ctx: Mlx5Context) -> int:
        """pyverbs ``Mlx5Context.query_login_state``: the state value."""
        state: Ref[int] = Ref(-1)
        rc = mlx5dv_crypto_login_query_state(ctx, state)
        if rc:
            raise PyverbsRDMAError("Failed to query crypto login state", rc)
        return state.value

    @staticmethod
    def crypto_logout(ctx: Mlx5Context) -> None:
        """pyverbs ``Mlx5Context.crypto_logout``."""
        rc = mlx5dv_crypto_logout(ctx)
        if rc:
            raise PyverbsRDMAError("Failed to logout crypto login session", rc)


class PD:
    """A protection domain: only its number matters to DEKs and MKeys here."""

    def __init__(self, ctx: Mlx5Context) -> None:
        """Allocate a PD on ``ctx``."""
        self.ctx = ctx
        self.pd = next(ctx._pds)

    def __repr__(self) -> str:
        return f"PD({self.pd})"


# --- login: C-shaped functions --------------------------------------------------------------


def _bytes_field(value: bytes | bytearray | memoryview | str, size: int, what: str) -> bytes:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if len(raw) > size:
        raise PyverbsUserError(f"{what} holds at most {size} bytes, got {len(raw)}")
    return raw.ljust(size, b"\0")


class Mlx5CryptoLoginAttr:
    """``struct mlx5dv_crypto_login_attr``: ids and the 48-byte wrapped credential."""

    def __init__(
        self,
        credential: bytes | bytearray,
        credential_id: int = 0,
        import_kek_id: int = 0,
        comp_mask: int = 0,
    ) -> None:
        """The credential must be the 48 bytes of AES-KW(import KEK, 40-byte credential)."""
        if len(credential) != WRAPPED_CREDENTIAL_LEN:
            raise PyverbsUserError(
                f"credential[{WRAPPED_CREDENTIAL_LEN}] cannot hold {len(credential)} bytes"
            )
        self._credential = Secret(credential)
        self.credential_id = credential_id
        self.import_kek_id = import_kek_id
        self.comp_mask = comp_mask

    @property
    def credential(self) -> Secret:
        """The wrapped credential (a Secret: it does not print)."""
        return self._credential

    def __repr__(self) -> str:
        return (
            f"Mlx5CryptoLoginAttr(credential_id={self.credential_id}, "
            f"import_kek_id={self.import_kek_id}, credential=<hidden>, "
            f"comp_mask={self.comp_mask})"
        )


def mlx5dv_crypto_login(context: Mlx5Context, login_attr: Mlx5CryptoLoginAttr) -> int:
    """Create the context's crypto login session; 0 or an errno value (EINVAL, EEXIST,
    EOPNOTSUPP), as man mlx5dv_crypto_login(3) says."""
    try:
        context.transport.crypto_login(
            context._handle(),
            login_attr.credential_id,
            login_attr.import_kek_id,
            login_attr.credential,
            login_attr.comp_mask,
        )
    except CryptoError as exc:
        return exc.errno
    return 0


@overload
def mlx5dv_crypto_login_query_state(context: Mlx5Context) -> tuple[int, int | None]: ...


@overload
def mlx5dv_crypto_login_query_state(context: Mlx5Context, state: Ref[int]) -> int: ...


def mlx5dv_crypto_login_query_state(
    context: Mlx5Context, state: Ref[int] | None = None
) -> int | tuple[int, int | None]:
    """The session state: VALID 0, NO_LOGIN 1, INVALID 2.

    C-shaped, with an out-parameter: put it in ``state.value`` and return 0 or an errno value.
    Without ``state``: return ``(rc, state)``, ``state`` None when rc is not 0 (C leaves the
    variable untouched then)."""
    try:
        value = int(context.transport.crypto_login_query_state(context._handle()))
    except CryptoError as exc:
        return exc.errno if state is not None else (exc.errno, None)
    if state is None:
        return 0, value
    state.value = value
    return 0


def mlx5dv_crypto_logout(context: Mlx5Context) -> int:
    """Log out of the context's session (VALID or INVALID); 0, or ENOENT without one."""
    try:
        context.transport.crypto_logout(context._handle())
    except CryptoError as exc:
        return exc.errno
    return 0


# --- login objects -----------------------------------------------------------------------


class Mlx5CryptoExtLoginAttr:
    """``struct mlx5dv_crypto_login_attr_ex``: the credential and its length.

    As in C, ``credential_len`` bytes are taken: past the end of ``credential`` they read as
    zero here (C would read whatever follows), and the firmware field holds 48 of them.
    """

    def __init__(
        self,
        credential: bytes | bytearray,
        credential_len: int,
        credential_id: int = 0,
        import_kek_id: int = 0,
        comp_mask: int = 0,
    ) -> None:
        """Keep the credential bytes and the length the caller claims."""
        if credential_len < 0:
            raise PyverbsUserError("credential_len is a size_t")
        self._credential = Secret(bytes(credential[:credential_len]).ljust(credential_len, b"\0"))
        self.credential_len = credential_len
        self.credential_id = credential_id
        self.import_kek_id = import_kek_id
        self.comp_mask = comp_mask

    @property
    def credential(self) -> Secret:
        """The credential bytes as the C call would copy them."""
        return self._credential

    def __repr__(self) -> str:
        return (
            f"Mlx5CryptoExtLoginAttr(credential_len={self.credential_len}, "
            f"credential_id={self.credential_id}, import_kek_id={self.import_kek_id}, "
            f"credential=<hidden>, comp_mask={self.comp_mask})"
        )


class Mlx5CryptoLogin(_Closable):
    """A crypto login object (``mlx5dv_crypto_login_create`` ... ``_destroy``)."""

    def __init__(self, ctx: Mlx5Context, login_attr: Mlx5CryptoExtLoginAttr) -> None:
        """Create the login object; raises PyverbsRDMAError (errno) on failure."""
        self.ctx = ctx
        try:
            self.login_id: int | None = ctx.transport.crypto_login_create(
                ctx._handle(),
                login_attr.credential_id,
                login_attr.import_kek_id,
                login_attr.credential,
                login_attr.comp_mask,
            )
        except CryptoError as exc:
            raise _raise("Failed to create crypto login object", exc) from exc

    def _id(self) -> int:
        if self.login_id is None:
            raise PyverbsUserError("the crypto login object is closed")
        return self.login_id

    def query(self, comp_mask: int = 0) -> int:
        """``mlx5dv_crypto_login_query``: the state, VALID (0) or INVALID (2).

        (pyverbs returns the C rc here by mistake, reference §4.4; this returns the state.)
        """
        try:
            state = self.ctx.transport.crypto_login_query(self.ctx._handle(), self._id(), comp_mask)
        except CryptoError as exc:
            raise _raise("Failed to query crypto login object", exc) from exc
        return int(state)

    def close(self) -> None:
        """``mlx5dv_crypto_login_destroy``."""
        if self.login_id is not None and self.ctx.handle is not None:
            try:
                self.ctx.transport.crypto_login_destroy(self.ctx.handle, self.login_id)
            except CryptoError as exc:
                raise _raise("Failed to destroy crypto login object", exc) from exc
        self.login_id = None


# --- DEKs ---------------------------------------------------------------------------------


class Mlx5DEKInitAttr:
    """``struct mlx5dv_dek_init_attr`` (pyverbs argument order)."""

    def __init__(
        self,
        pd: PD,
        key_size: int,
        has_keytag: bool = False,
        key_purpose: int = MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS,
        opaque: bytes | str = b"",
        key: bytes | bytearray = b"",
        comp_mask: int = 0,
        crypto_login: Mlx5CryptoLogin | None = None,
    ) -> None:
        """``opaque`` (8 bytes) and ``key`` (128 bytes) are zero-padded like the C arrays."""
        self.pd = pd
        self.key_size = key_size
        self.has_keytag = has_keytag
        self.key_purpose = key_purpose
        self.opaque = _bytes_field(opaque, _OPAQUE_LEN, "opaque")
        self._key = Secret(_bytes_field(key, DEK_KEY_FIELD_LEN, "key"))
        self.comp_mask = comp_mask
        self.crypto_login = crypto_login

    def request(self) -> DekInitRequest:
        """The transport form of this struct."""
        login = self.crypto_login
        return DekInitRequest(
            key_size=self.key_size,
            has_keytag=self.has_keytag,
            key_purpose=self.key_purpose,
            pd=self.pd.pd,
            opaque=self.opaque,
            key=self._key,
            comp_mask=self.comp_mask,
            crypto_login=None if login is None else login._id(),
        )

    def __repr__(self) -> str:
        return (
            f"Mlx5DEKInitAttr(key_size={self.key_size}, has_keytag={self.has_keytag}, "
            f"key_purpose={self.key_purpose}, opaque={self.opaque!r}, key=<hidden>, "
            f"comp_mask={self.comp_mask})"
        )


@dataclass(frozen=True)
class Mlx5DEKAttr:
    """``struct mlx5dv_dek_attr``: ``opaque`` reads like pyverbs' char[8] (up to a NUL)."""

    state: int
    opaque: bytes
    comp_mask: int = 0


class Mlx5DEK(_Closable):
    """A data encryption key loaded into the device (``mlx5dv_dek_create``)."""

    def __init__(self, ctx: Mlx5Context, dek_init_attr: Mlx5DEKInitAttr) -> None:
        """Load the DEK; raises PyverbsRDMAError (errno) on failure."""
        self.ctx = ctx
        self.pd = dek_init_attr.pd
        try:
            self.dek_id: int | None = ctx.transport.dek_create(
                ctx._handle(), dek_init_attr.request()
            )
        except CryptoError as exc:
            raise _raise("Failed to create DEK", exc) from exc

    def _id(self) -> int:
        if self.dek_id is None:
            raise PyverbsUserError("the DEK is closed")
        return self.dek_id

    def query(self, comp_mask: int = 0) -> Mlx5DEKAttr:
        """``mlx5dv_dek_query``: state and opaque."""
        try:
            attr = self.ctx.transport.dek_query(self.ctx._handle(), self._id(), comp_mask)
        except CryptoError as exc:
            raise _raise("Failed to query the dek", exc) from exc
        return Mlx5DEKAttr(int(attr.state), attr.opaque.split(b"\0", 1)[0], attr.comp_mask)

    def close(self) -> None:
        """``mlx5dv_dek_destroy``."""
        if self.dek_id is not None and self.ctx.handle is not None:
            try:
                self.ctx.transport.dek_destroy(self.ctx.handle, self.dek_id)
            except CryptoError as exc:
                raise _raise("Failed to destroy a DEK", exc) from exc
        self.dek_id = None


# --- crypto MKeys -------------------------------------------------------------------------


class Mlx5CryptoAttr:
    """``struct mlx5dv_crypto_attr`` (pyverbs argument order); tweak and keytag zero-padded."""

    def __init__(
        self,
        crypto_standard: int = MLX5DV_CRYPTO_STANDARD_AES_XTS,
        encrypt_on_tx: bool = False,
        signature_crypto_order: int = MLX5DV_SIGNATURE_CRYPTO_ORDER_SIGNATURE_AFTER_CRYPTO_ON_TX,
        data_unit_size: int = MLX5DV_BLOCK_SIZE_512,
        initial_tweak: bytes = b"",
        dek: Mlx5DEK | None = None,
        keytag: bytes = b"",
        comp_mask: int = 0,
    ) -> None:
        """``initial_tweak`` is little-endian (man mlx5dv_wr_set_mkey_crypto, lines 240-247)."""
        self.crypto_standard = crypto_standard
        self.encrypt_on_tx = encrypt_on_tx
        self.signature_crypto_order = signature_crypto_order
        self.data_unit_size = data_unit_size
        self.initial_tweak = _bytes_field(initial_tweak, _TWEAK_LEN, "initial_tweak")
        self.dek = dek
        self._keytag = Secret(_bytes_field(keytag, _KEYTAG_LEN, "keytag"))
        self.comp_mask = comp_mask

    def request(self) -> CryptoAttrRequest:
        """The transport form of this struct."""
        if self.dek is None:
            raise PyverbsUserError("Mlx5CryptoAttr needs a DEK")
        return CryptoAttrRequest(
            crypto_standard=self.crypto_standard,
            encrypt_on_tx=self.encrypt_on_tx,
            signature_crypto_order=self.signature_crypto_order,
            data_unit_size=self.data_unit_size,
            initial_tweak=self.initial_tweak,
            dek=self.dek._id(),
            keytag=self._keytag,
            comp_mask=self.comp_mask,
        )

    def __repr__(self) -> str:
        return (
            f"Mlx5CryptoAttr(encrypt_on_tx={self.encrypt_on_tx}, "
            f"signature_crypto_order={self.signature_crypto_order}, "
            f"data_unit_size={self.data_unit_size}, initial_tweak={self.initial_tweak.hex()}, "
            f"keytag=<hidden>, comp_mask={self.comp_mask})"
        )


class Mlx5Mkey(_Closable):
    """An indirect MKey (``mlx5dv_create_mkey``); with the CRYPTO flag, a crypto MKey.

    :meth:`configure` stands for a UMR WQE (``wr_mkey_configure`` + layout + crypto setter)
    completed with ``ibv_wr_complete``; :meth:`send` and :meth:`recv` stand for data crossing
    the MKey towards or from the wire. :meth:`encrypt` / :meth:`decrypt` pick the direction that
    encrypts or decrypts according to ``encrypt_on_tx``.
    """

    def __init__(self, pd: PD, create_flags: int, max_entries: int) -> None:
        """Create the MKey; raises PyverbsRDMAError (EOPNOTSUPP for bad flags)."""
        self.pd = pd
        self.ctx = pd.ctx
        self._encrypt_on_tx: bool | None = None
        try:
            self.mkey_id: int | None = self.ctx.transport.mkey_create(
                self.ctx._handle(), create_flags, max_entries
            )
        except CryptoError as exc:
            raise _raise("Failed to create mkey", exc) from exc

    def _id(self) -> int:
        if self.mkey_id is None:
            raise PyverbsUserError("the MKey is closed")
        return self.mkey_id

    @property
    def lkey(self) -> int:
        """The MKey's key: index << 8 (key byte 0)."""
        return self._id() << 8

    def configure(self, length: int, crypto: Mlx5CryptoAttr | None = None) -> None:
        """Set the MKey's length and crypto properties; raises PyverbsRDMAError like a failed
        ``ibv_wr_complete`` (EINVAL for the setter's and finalize's checks)."""
        request = None if crypto is None else crypto.request()
        try:
            self.ctx.transport.mkey_configure(self.ctx._handle(), self._id(), length, request)
        except CryptoError as exc:
            raise _raise("Failed to configure the mkey", exc) from exc
        self._encrypt_on_tx = None if crypto is None else bool(crypto.encrypt_on_tx)

    def _transfer(
        self, direction: Direction, data: bytes | bytearray | memoryview, offset: int
    ) -> memoryview:
        try:
            return self.ctx.transport.mkey_transfer(
                self.ctx._handle(), self._id(), direction, data, offset
            )
        except CryptoError as exc:
            raise _raise("Transfer through the crypto mkey failed", exc) from exc

    def send(self, memory: bytes | bytearray | memoryview, offset: int = 0) -> memoryview:
        """TX: what reaches the wire when ``memory`` (at MKey ``offset``) is sent."""
        return self._transfer(Direction.TX, memory, offset)

    def recv(self, wire: bytes | bytearray | memoryview, offset: int = 0) -> memoryview:
        """RX: what lands in memory (at MKey ``offset``) when ``wire`` is received."""
        return self._transfer(Direction.RX, wire, offset)

    def encrypt(self, plaintext: bytes | bytearray | memoryview, offset: int = 0) -> memoryview:
        """Encrypt through the MKey: TX if ``encrypt_on_tx`` else RX."""
        return self._transfer(self._direction(encrypt=True), plaintext, offset)

    def decrypt(self, ciphertext: bytes | bytearray | memoryview, offset: int = 0) -> memoryview:
        """Decrypt through the MKey: RX if ``encrypt_on_tx`` else TX."""
        return self._transfer(self._direction(encrypt=False), ciphertext, offset)

    def _direction(self, *, encrypt: bool) -> Direction:
        if self._encrypt_on_tx is None:
            raise PyverbsUserError("configure the MKey's crypto properties first")
        return Direction.TX if self._encrypt_on_tx == encrypt else Direction.RX

    def close(self) -> None:
        """``mlx5dv_destroy_mkey``."""
        if self.mkey_id is not None and self.ctx.handle is not None:
            try:
                self.ctx.transport.mkey_destroy(self.ctx.handle, self.mkey_id)
            except CryptoError as exc:
                raise _raise("Failed to destroy the mkey", exc) from exc
        self.mkey_id = None


def data_unit_bytes(data_unit_size: int) -> int:
    """Bytes of ``MLX5DV_BLOCK_SIZE_*`` (512, 520, 4048, 4096, 4160)."""
    return DATA_UNIT_SIZES[data_unit_size]
