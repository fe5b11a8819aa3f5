"""The pyverbs-shaped crypto classes: they raise :class:`~hcasim.mlx5dv.errors.PyverbsRDMAError`
(``error_code`` = errno) where pyverbs does.

:class:`Mlx5Context` (``crypto_login``/``query_login_state``/``crypto_logout`` static methods,
``query_mlx5_device``), :class:`PD`, :class:`Mlx5CryptoExtLoginAttr`, :class:`Mlx5CryptoLogin`,
:class:`Mlx5DEKInitAttr`, :class:`Mlx5DEK`, :class:`Mlx5CryptoAttr` and :class:`Mlx5Mkey`, a
crypto MKey that encrypts and decrypts buffers. Every transport call runs inside
:func:`~hcasim.mlx5dv.errors.pyverbs_errors`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from hcasim.devices.mlx5.crypto_engine import (
    DEK_KEY_FIELD_LEN,
    CryptoAttrRequest,
    DekInitRequest,
    Direction,
)
from hcasim.devices.mlx5.keywrap import Secret
from hcasim.devices.mlx5.xts import DATA_UNIT_SIZES
from hcasim.mlx5dv.constants import (
    MLX5DV_BLOCK_SIZE_512,
    MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD,
    MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS,
    MLX5DV_CRYPTO_STANDARD_AES_XTS,
    MLX5DV_SIGNATURE_CRYPTO_ORDER_SIGNATURE_AFTER_CRYPTO_ON_TX,
)
from hcasim.mlx5dv.default import default_transport
from hcasim.mlx5dv.errors import PyverbsRDMAError, PyverbsUserError, pyverbs_errors
from hcasim.mlx5dv.functions import (
    Mlx5CryptoLoginAttr,
    Ref,
    mlx5dv_crypto_login,
    mlx5dv_crypto_login_query_state,
    mlx5dv_crypto_logout,
)
from hcasim.mlx5dv.transport import ContextHandle, CryptoTransport

__all__ = [
    "PD",
    "Mlx5Context",
    "Mlx5CryptoAttr",
    "Mlx5CryptoExtLoginAttr",
    "Mlx5CryptoLogin",
    "Mlx5DEK",
    "Mlx5DEKAttr",
    "Mlx5DEKInitAttr",
    "Mlx5DVContext",
    "Mlx5Mkey",
    "data_unit_bytes",
]

_OPAQUE_LEN: Final = 8
_KEYTAG_LEN: Final = 8
_TWEAK_LEN: Final = 16


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


class Mlx5Context(_Closable):
    """A device context (``ibv_open_device`` + mlx5dv); pyverbs' ``Mlx5Context``."""

    def __init__(self, name: str, *, transport: CryptoTransport | None = None) -> None:
        """Open device ``name`` through ``transport``; by default the one given to
        :func:`set_default_transport`, else the lab daemon named by the environment (a program
        run by ``hcasim exec --host H``): one connection per context. An unknown name raises
        ``PyverbsRDMAError("Failed to find device NAME")`` as pyverbs does."""
        chosen = transport if transport is not None else default_transport()
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


def _bytes_field(value: bytes | bytearray | memoryview | str, size: int, what: str) -> bytes:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if len(raw) > size:
        raise PyverbsUserError(f"{what} holds at most {size} bytes, got {len(raw)}")
    return raw.ljust(size, b"\0")


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
        with pyverbs_errors("Failed to create crypto login object"):
            self.login_id: int | None = ctx.transport.crypto_login_create(
                ctx._handle(),
                login_attr.credential_id,
                login_attr.import_kek_id,
                login_attr.credential,
                login_attr.comp_mask,
            )

    def _id(self) -> int:
        if self.login_id is None:
            raise PyverbsUserError("the crypto login object is closed")
        return self.login_id

    def query(self, comp_mask: int = 0) -> int:
        """``mlx5dv_crypto_login_query``: the state, VALID (0) or INVALID (2).

        (pyverbs returns the C rc here by mistake, docs/sources.md §16.4; this returns the state.)
        """
        with pyverbs_errors("Failed to query crypto login object"):
            state = self.ctx.transport.crypto_login_query(self.ctx._handle(), self._id(), comp_mask)
        return int(state)

    def close(self) -> None:
        """``mlx5dv_crypto_login_destroy``."""
        if self.login_id is not None and self.ctx.handle is not None:
            with pyverbs_errors("Failed to destroy crypto login object"):
                self.ctx.transport.crypto_login_destroy(self.ctx.handle, self.login_id)
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
        with pyverbs_errors("Failed to create DEK"):
            self.dek_id: int | None = ctx.transport.dek_create(
                ctx._handle(), dek_init_attr.request()
            )

    def _id(self) -> int:
        if self.dek_id is None:
            raise PyverbsUserError("the DEK is closed")
        return self.dek_id

    def query(self, comp_mask: int = 0) -> Mlx5DEKAttr:
        """``mlx5dv_dek_query``: state and opaque."""
        with pyverbs_errors("Failed to query the dek"):
            attr = self.ctx.transport.dek_query(self.ctx._handle(), self._id(), comp_mask)
        return Mlx5DEKAttr(int(attr.state), attr.opaque.split(b"\0", 1)[0], attr.comp_mask)

    def close(self) -> None:
        """``mlx5dv_dek_destroy``."""
        if self.dek_id is not None and self.ctx.handle is not None:
            with pyverbs_errors("Failed to destroy a DEK"):
                self.ctx.transport.dek_destroy(self.ctx.handle, self.dek_id)
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
        with pyverbs_errors("Failed to create mkey"):
            self.mkey_id: int | None = self.ctx.transport.mkey_create(
                self.ctx._handle(), create_flags, max_entries
            )

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
        with pyverbs_errors("Failed to configure the mkey"):
            self.ctx.transport.mkey_configure(self.ctx._handle(), self._id(), length, request)
        self._encrypt_on_tx = None if crypto is None else bool(crypto.encrypt_on_tx)

    def _transfer(
        self, direction: Direction, data: bytes | bytearray | memoryview, offset: int
    ) -> memoryview:
        with pyverbs_errors("Transfer through the crypto mkey failed"):
            return self.ctx.transport.mkey_transfer(
                self.ctx._handle(), self._id(), direction, data, offset
            )

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
            with pyverbs_errors("Failed to destroy the mkey"):
                self.ctx.transport.mkey_destroy(self.ctx.handle, self.mkey_id)
        self.mkey_id = None


def data_unit_bytes(data_unit_size: int) -> int:
    """Bytes of ``MLX5DV_BLOCK_SIZE_*`` (512, 520, 4048, 4096, 4160)."""
    return DATA_UNIT_SIZES[data_unit_size]
