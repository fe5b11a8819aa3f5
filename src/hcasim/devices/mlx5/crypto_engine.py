"""The mlx5 crypto engine in wrapped import mode: firmware state machine and data path.

One :class:`CryptoEngine` models the crypto engine of one PCI function (DPDK's guide asks for
CRYPTO_OPERATIONAL to be written "on every port", docs/sources.md §15.1, so each
function has its own). It is pure: no sockets, no SQLite, no clock. The lab daemon owns it and

* opens a *context* per client connection (:meth:`CryptoEngine.open_context`, any hashable id
  the daemon chooses) and closes it when the client goes away (:meth:`close_context`): that ends
  the context's login session and destroys its DEKs and MKeys, as when a process holding a
  uverbs file dies (docs/sources.md §14.6: "DEKs do not persist and are destroyed when the process
  exits");
* forwards the client's mlx5dv calls (login, login objects, DEKs, crypto MKeys);
* forwards crypto-officer register accesses (see :mod:`.register_access` for the byte form);
* persists :meth:`to_nv` whenever the NV state changes: pass ``nv_sink`` and it is called with
  the new snapshot *before* the change takes effect, inside the operation, so one officer
  operation is one store transaction; if the sink raises, the operation fails with EIO and the
  engine keeps its previous state;
* calls :meth:`firmware_reset` when the lab resets the device's firmware.

Behaviour follows rdma-core v44 (provider checks, in their order) and the firmware facts of
docs/sources.md §13-§18; every choice the sources leave open is listed in docs/crypto.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Final

from .constants import (
    ID_MASK_24,
    MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN,
    BlockSize,
    CredentialRole,
    CryptoCapsFlags,
    CryptoEnginesCaps,
    CryptoKeyPurpose,
    CryptoStandard,
    DekState,
    EncryptionOrder,
    LoginState,
    MkeyInitAttrFlags,
    SignatureCryptoOrder,
    WrappedImportMethodCaps,
)
from .errors import (
    CmdStatus,
    CryptoAlreadyExists,
    CryptoCompletionError,
    CryptoInvalidArgument,
    CryptoIOError,
    CryptoNoResources,
    CryptoNoSession,
    CryptoNotSupported,
    CryptoStaleContext,
    WcStatus,
)
from .keywrap import (
    CREDENTIAL_LEN,
    KW_OVERHEAD,
    WRAPPED_CREDENTIAL_LEN,
    DekMaterial,
    KeyUnwrapError,
    Secret,
    dek_plaintext_len,
    dek_wrapped_len,
    kek_len,
    parse_dek,
    unwrap,
    unwrap_credential,
)
from .nvstore import NvSnapshot, NvState, StorageKeys
from .xts import AES_BLOCK, DATA_UNIT_SIZES, tweak_add, xts_decrypt, xts_encrypt

__all__ = [
    "CONNECTX6DX",
    "CONNECTX6DX_MULTI_BLOCK",
    "CONNECTX6DX_PLAINTEXT",
    "CONNECTX7",
    "DEK_KEY_FIELD_LEN",
    "ContextId",
    "CredentialInfo",
    "CryptoAttrRequest",
    "CryptoCaps",
    "CryptoEngine",
    "CryptoOperationalState",
    "DekAttributes",
    "DekInitRequest",
    "DeviceProfile",
    "Direction",
    "ImportKekInfo",
    "NvSink",
    "OfficerLogin",
]

#: Any hashable value the daemon uses to name a device context (e.g. a connection id).
ContextId = Hashable
#: Called with the new NV snapshot before an NV change takes effect.
NvSink = Callable[[NvSnapshot], None]

#: ``mlx5dv_dek_init_attr.key`` is ``char key[128]`` (mlx5dv.h; docs/sources.md §13.2).
DEK_KEY_FIELD_LEN: Final = 128
#: ``mlx5dv_dek_init_attr.opaque`` / ``mlx5dv_crypto_attr.keytag`` are 8 bytes.
_OPAQUE_LEN: Final = 8
_KEYTAG_LEN: Final = 8
_TWEAK_LEN: Final = 16
_UINT32_MAX: Final = 0xFFFF_FFFF
_PD_MASK: Final = 0xFFFFFF  # encryption_key_obj.pd is 24 bits (mlx5_ifc.h, docs/sources.md §14.8)
_KNOWN_MKEY_FLAGS: Final = (
    MkeyInitAttrFlags.INDIRECT
    | MkeyInitAttrFlags.BLOCK_SIGNATURE
    | MkeyInitAttrFlags.CRYPTO
    | MkeyInitAttrFlags.UPDATE_TAG
    | MkeyInitAttrFlags.REMOTE_INVALIDATE
)
_ANY_XTS_ENGINE: Final = (
    CryptoEnginesCaps.AES_XTS_SINGLE_BLOCK | CryptoEnginesCaps.AES_XTS_MULTI_BLOCK
)


# --- device description and capabilities ---------------------------------------------------


@dataclass(frozen=True)
class DeviceProfile:
    """What kind of crypto engine a device has (fixed at the factory).

    ``engines`` is what ``crypto_caps.crypto_engines`` reports; ``wrapped_import`` selects
    wrapped (True) or plaintext (False) import method for AES-XTS (docs/sources.md §15.1). The
    ``log_max_*`` sizes of the real cards are not public; the defaults are the model's choice.
    """

    name: str
    part: str
    crypto: bool = True
    engines: CryptoEnginesCaps = CryptoEnginesCaps.AES_XTS_SINGLE_BLOCK
    wrapped_import: bool = True
    log_max_num_deks: int = 16
    log_max_num_creds: int = 6
    log_max_num_import_keks: int = 6
    failed_selftests: int = 0


#: ConnectX-6 Dx (mt4125): single-block AES-XTS with a little-endian tweak
#: (``aes_xts_single_block_le_tweak``, docs/sources.md §14.1), wrapped import method.
CONNECTX6DX: Final = DeviceProfile("ConnectX-6 Dx", "mt4125")
#: A ConnectX-6 Dx whose AES-XTS engine the factory set to plaintext import.
CONNECTX6DX_PLAINTEXT: Final = DeviceProfile("ConnectX-6 Dx", "mt4125", wrapped_import=False)
#: The ConnectX-6 Dx (mt4125) of the lab daemon (host ``crypto1`` of the default lab): issue 4
#: asks for a multi-block AES-XTS engine, which rdma-core reports as SINGLE | MULTI (docs/sources.md
#: §14.1); the sources put the ConnectX-6 Dx class among single-block engines (§17.1), so the
#: in-process profile :data:`CONNECTX6DX` keeps that reading (docs/crypto.md §7, choice 8).
CONNECTX6DX_MULTI_BLOCK: Final = DeviceProfile(
    "ConnectX-6 Dx",
    "mt4125",
    engines=CryptoEnginesCaps.AES_XTS_SINGLE_BLOCK | CryptoEnginesCaps.AES_XTS_MULTI_BLOCK,
)
#: ConnectX-7 (mt4129): multi-block AES-XTS (``aes_xts_multi_block_be_tweak`` sets SINGLE and
#: MULTI, docs/sources.md §14.1), wrapped import method.
CONNECTX7: Final = DeviceProfile(
    "ConnectX-7",
    "mt4129",
    engines=CryptoEnginesCaps.AES_XTS_SINGLE_BLOCK | CryptoEnginesCaps.AES_XTS_MULTI_BLOCK,
)


@dataclass(frozen=True)
class CryptoCaps:
    """``struct mlx5dv_crypto_caps`` (mlx5dv.h:433-442) as a context caches it at open."""

    failed_selftests: int
    crypto_engines: int
    wrapped_import_method: int
    log_max_num_deks: int
    flags: int

    def as_dict(self) -> dict[str, int]:
        """The dict pyverbs' ``query_mlx5_device().crypto_caps`` returns (C field names)."""
        return {
            "failed_selftests": self.failed_selftests,
            "crypto_engines": self.crypto_engines,
            "wrapped_import_method": self.wrapped_import_method,
            "log_max_num_deks": self.log_max_num_deks,
            "flags": self.flags,
        }


@dataclass(frozen=True)
class CryptoOperationalState:
    """The readable part of CRYPTO_OPERATIONAL (0xC002); credential and kek are WO."""

    operational: bool
    going_to_commissioning: bool


# --- requests and results that cross the transport -------------------------------------------


@dataclass(frozen=True)
class OfficerLogin:
    """``crypto_login_obj_ext`` inside a handle register: who the crypto officer is.

    ``credential`` is the officer's 48-byte credential wrapped under ``import_kek_id``.
    """

    credential_id: int
    import_kek_id: int
    credential: Secret


@dataclass(frozen=True)
class CredentialInfo:
    """What a query of CREDENTIAL_HANDLE returns about a stored credential (no secret)."""

    credential_id: int
    role: CredentialRole
    state: DekState


@dataclass(frozen=True)
class ImportKekInfo:
    """What a query of IMPORT_KEK_HANDLE returns about a stored import KEK (no secret)."""

    import_kek_id: int
    key_size: int
    state: DekState


@dataclass(frozen=True)
class DekInitRequest:
    """``struct mlx5dv_dek_init_attr`` as sent to the engine.

    ``key`` is the 128-byte ``key`` field (shorter input is zero-padded by the client, as the
    C struct would hold zeros); ``crypto_login`` is the id of a login object when ``comp_mask``
    has ``MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN`` and the application passed one, else None.
    """

    key_size: int
    has_keytag: bool
    key_purpose: int
    pd: int
    opaque: bytes
    key: Secret
    comp_mask: int = 0
    crypto_login: int | None = None


@dataclass(frozen=True)
class DekAttributes:
    """``struct mlx5dv_dek_attr``: state and the 8 opaque bytes given at creation."""

    state: DekState
    opaque: bytes
    comp_mask: int = 0


@dataclass(frozen=True)
class CryptoAttrRequest:
    """``struct mlx5dv_crypto_attr`` as given to ``mlx5dv_wr_set_mkey_crypto``."""

    crypto_standard: int
    encrypt_on_tx: bool
    signature_crypto_order: int
    data_unit_size: int
    initial_tweak: bytes
    dek: int
    keytag: Secret = field(default_factory=lambda: Secret(bytes(_KEYTAG_LEN)))
    comp_mask: int = 0


class Direction(IntEnum):
    """Which way data crosses a crypto MKey."""

    TX = 0  #: memory -> wire (a SEND or an RDMA READ by the peer)
    RX = 1  #: wire -> memory (a RECV or an RDMA WRITE from the peer)


# --- volatile firmware objects --------------------------------------------------------------


@dataclass
class _Login:
    login_id: int
    owner: ContextId
    credential_id: int
    import_kek_id: int
    state: LoginState = LoginState.VALID


@dataclass
class _Dek:
    dek_id: int
    owner: ContextId
    pd: int
    key_size: int
    wrapped: bool
    opaque: bytes
    material: DekMaterial = field(repr=False)
    state: DekState = DekState.READY


@dataclass(frozen=True)
class _CryptoSetting:
    encrypt_on_tx: bool
    order: SignatureCryptoOrder
    data_unit_size: int
    initial_tweak: bytes
    dek_id: int
    keytag: Secret = field(repr=False)

    @property
    def enc_order(self) -> EncryptionOrder:
        """The BSF ``enc_order`` rdma-core derives (qp.c get_crypto_order; docs/sources.md
        §14.9)."""
        after = self.order is SignatureCryptoOrder.SIGNATURE_AFTER_CRYPTO_ON_TX
        if self.encrypt_on_tx:
            return (
                EncryptionOrder.ENCRYPTED_RAW_WIRE
                if after
                else EncryptionOrder.ENCRYPTED_WIRE_SIGNATURE
            )
        return (
            EncryptionOrder.ENCRYPTED_MEMORY_SIGNATURE
            if after
            else EncryptionOrder.ENCRYPTED_RAW_MEMORY
        )


@dataclass
class _Mkey:
    mkey_id: int
    owner: ContextId
    create_flags: MkeyInitAttrFlags
    max_entries: int
    length: int = 0
    crypto: _CryptoSetting | None = None


@dataclass
class _Context:
    caps: CryptoCaps
    session: int | None = None  # login id of the mlx5dv_crypto_login session
    login_objects: set[int] = field(default_factory=set)
    deks: set[int] = field(default_factory=set)
    mkeys: set[int] = field(default_factory=set)


class _IdAllocator:
    """Hands out 24-bit object ids, never one still in use."""

    def __init__(self, first: int) -> None:
        self._next = first

    def take(self, in_use: Mapping[int, object]) -> int:
        """The next id (1..2**24-1, wrapping) that is not a key of ``in_use``."""
        for _ in range(ID_MASK_24 + 1):
            candidate = self._next
            self._next = (self._next + 1) & ID_MASK_24 or 1
            if candidate not in in_use:
                return candidate
        raise CryptoNoResources("no free object id", status=CmdStatus.LIM)


# --- the engine -------------------------------------------------------------------------------


class CryptoEngine:
    """Firmware model of one mlx5 crypto engine (see the module docstring for the contract)."""

    def __init__(
        self,
        storage_key: bytes,
        *,
        profile: DeviceProfile = CONNECTX6DX,
        nv: Mapping[str, Any] | None = None,
        nv_sink: NvSink | None = None,
    ) -> None:
        """Create the engine from its storage key and, if it has any, its persisted NV state.

        ``storage_key`` is a device-unique secret (at least 16 bytes, 32 recommended) that the
        daemon keeps outside the NV store; KEKs at rest are wrapped under a key derived from it.
        ``nv`` is a snapshot previously produced by :meth:`to_nv` (None: factory state,
        commissioning mode). ``nv_sink`` receives every new snapshot (see module docstring).
        """
        self.profile = profile
        self._keys = StorageKeys(storage_key)
        self._nv = NvState() if nv is None else NvState.from_snapshot(nv, self._keys)
        self._nv_sink = nv_sink
        self._lock = threading.RLock()
        self._contexts: dict[ContextId, _Context] = {}
        self._logins: dict[int, _Login] = {}
        self._deks: dict[int, _Dek] = {}
        self._mkeys: dict[int, _Mkey] = {}
        self._login_ids = _IdAllocator(0x10)
        self._dek_ids = _IdAllocator(0x100)
        self._mkey_ids = _IdAllocator(0x200)

    def __repr__(self) -> str:
        mode = "operational" if self._nv.operational else "commissioning"
        return (
            f"CryptoEngine({self.profile.name} {self.profile.part}, {mode}, "
            f"{len(self._nv.credentials)} credentials, {len(self._nv.import_keks)} import KEKs, "
            f"{len(self._contexts)} contexts)"
        )

    @classmethod
    def from_nv(
        cls,
        nv: Mapping[str, Any],
        storage_key: bytes,
        *,
        profile: DeviceProfile = CONNECTX6DX,
        nv_sink: NvSink | None = None,
    ) -> CryptoEngine:
        """Rebuild an engine after a daemon restart from its persisted snapshot."""
        return cls(storage_key, profile=profile, nv=nv, nv_sink=nv_sink)

    # -- non-volatile state ---------------------------------------------------------------

    def to_nv(self) -> NvSnapshot:
        """The engine's NV state as a JSON-compatible dict (no secret in the clear)."""
        with self._lock:
            return self._nv.to_snapshot(self._keys)

    def _commit(self, new: NvState) -> None:
        """Make ``new`` the NV state, after the sink (the daemon's store) accepted it."""
        if new == self._nv:
            return
        if self._nv_sink is not None:
            try:
                self._nv_sink(new.to_snapshot(self._keys))
            except Exception as exc:
                raise CryptoIOError(
                    "non-volatile store write failed", status=CmdStatus.INT_ERR
                ) from exc
        self._nv = new

    @property
    def operational(self) -> bool:
        """True once CRYPTO_OPERATIONAL was written (wrapped_crypto_operational = 1)."""
        return self._nv.operational

    # -- firmware lifecycle -------------------------------------------------------------

    def firmware_reset(self) -> None:
        """Model a firmware reset: all volatile state is lost; a pending return to
        commissioning (``wrapped_crypto_going_to_commissioning``) takes effect.

        Every open context dies (later calls on it raise :class:`CryptoStaleContext`), with its
        login sessions, DEKs and MKeys. Going back to commissioning clears the operational bit,
        the going-to-commissioning bit and all credentials and import KEKs (register database:
        "After FW reset, wrapped_crypto_operational will be unset to 0, and this bit will be
        unset to 0 as well").
        """
        with self._lock:
            # Volatile state is lost whatever happens to the NV write below.
            self._contexts.clear()
            self._logins.clear()
            self._deks.clear()
            self._mkeys.clear()
            if self._nv.going_to_commissioning:
                self._commit(NvState())

    def current_caps(self) -> CryptoCaps:
        """The crypto caps a context opened now would cache (rdma-core verbs.c:4187-4322)."""
        with self._lock:
            return self._caps_now()

    def _caps_now(self) -> CryptoCaps:
        p = self.profile
        if not p.crypto:
            return CryptoCaps(0, 0, 0, 0, 0)
        flags = CryptoCapsFlags.CRYPTO
        wrapped = 0
        if p.wrapped_import:
            wrapped = int(WrappedImportMethodCaps.AES_XTS)
            if self._nv.operational:
                flags |= CryptoCapsFlags.WRAPPED_CRYPTO_OPERATIONAL
            if self._nv.going_to_commissioning:
                flags |= CryptoCapsFlags.WRAPPED_CRYPTO_GOING_TO_COMMISSIONING
        return CryptoCaps(
            failed_selftests=p.failed_selftests,
            crypto_engines=int(p.engines),
            wrapped_import_method=wrapped,
            log_max_num_deks=p.log_max_num_deks,
            flags=int(flags),
        )

    # -- crypto officer: CRYPTO_OPERATIONAL (0xC002) ------------------------------------

    def query_crypto_operational(self) -> CryptoOperationalState:
        """Read CRYPTO_OPERATIONAL: the two mode bits (credential and kek are write-only)."""
        with self._lock:
            return CryptoOperationalState(self._nv.operational, self._nv.going_to_commissioning)

    def write_crypto_operational(
        self,
        *,
        kek_size: int,
        credential: Secret,
        kek: Secret,
        going_to_commissioning: bool,
    ) -> None:
        """Write CRYPTO_OPERATIONAL (mlxreg --set), docs/sources.md §15.1 and §18.

        In commissioning mode the write stores ``credential`` (40 bytes, plaintext) as credential
        0 with the OFFICER role and the first 16 or 32 bytes of ``kek`` (per ``kek_size``) as
        import KEK 0, and makes the device operational; ``going_to_commissioning`` must be 0
        ("Valid only when wrapped_crypto_operational=1"). When operational, credential, kek and
        kek_size are write-once and must be zero (what mlxreg's read-modify-write sends back),
        and ``going_to_commissioning`` sets or clears the return to commissioning at the next
        firmware reset.
        """
        with self._lock:
            if not self.profile.crypto or not self.profile.wrapped_import:
                raise CryptoInvalidArgument(
                    "CRYPTO_OPERATIONAL: the engine is not in wrapped import method",
                    status=CmdStatus.BAD_OP,
                )
            if len(credential) != CREDENTIAL_LEN or len(kek) != 32:
                raise CryptoInvalidArgument(
                    "CRYPTO_OPERATIONAL: credential is 40 bytes and kek 32 bytes",
                    status=CmdStatus.BAD_PARAM,
                )
            if not self._nv.operational:
                if going_to_commissioning:
                    raise CryptoInvalidArgument(
                        "wrapped_crypto_going_to_commissioning is valid only when operational",
                        status=CmdStatus.BAD_PARAM,
                    )
                if kek_size not in (0, 1):
                    raise CryptoInvalidArgument(
                        f"kek_size {kek_size} is not 0 (128-bit) or 1 (256-bit)",
                        status=CmdStatus.BAD_PARAM,
                    )
                # "In 128bit KEK, Only the 128 MSBs are valid" (register database).
                kek_bytes = Secret(kek.reveal()[: kek_len(kek_size)])
                self._commit(
                    NvState(
                        operational=True,
                        going_to_commissioning=False,
                        credentials={
                            0: self._keys.hash_credential(CredentialRole.OFFICER, credential)
                        },
                        import_keks={0: self._keys.seal_kek(kek_size, kek_bytes)},
                    )
                )
                return
            if kek_size or any(credential.reveal()) or any(kek.reveal()):
                raise CryptoInvalidArgument(
                    "the first credential and import KEK can be written only once",
                    status=CmdStatus.BAD_PARAM,
                )
            self._commit(replace(self._nv, going_to_commissioning=going_to_commissioning))

    # -- crypto officer: IMPORT_KEK_HANDLE (0xC004) / CREDENTIAL_HANDLE (0xC005) ----------

    def _authenticate(
        self, credential_id: int, import_kek_id: int, wrapped: bytes
    ) -> CredentialRole:
        """Check a login (credential id, KEK id, wrapped credential) against the NV tables.

        Any failure is EINVAL (firmware BAD_PARAM): the man page documents EINVAL when
        "one or more of credential, credential_id and import_kek_id are invalid".
        """
        kek_record = self._nv.import_keks.get(import_kek_id)
        if kek_record is None:
            raise CryptoInvalidArgument(
                f"import KEK {import_kek_id} does not exist", status=CmdStatus.BAD_PARAM
            )
        record = self._nv.credentials.get(credential_id)
        if record is None:
            raise CryptoInvalidArgument(
                f"credential {credential_id} does not exist", status=CmdStatus.BAD_PARAM
            )
        try:
            plain = unwrap_credential(self._keys.open_kek(kek_record), wrapped)
        except KeyUnwrapError:
            raise CryptoInvalidArgument(
                f"the credential does not unwrap under import KEK {import_kek_id}",
                status=CmdStatus.BAD_PARAM,
            ) from None
        if not self._keys.credential_matches(record, plain):
            raise CryptoInvalidArgument(
                f"the credential does not match credential {credential_id}",
                status=CmdStatus.BAD_PARAM,
            )
        return record.role

    def _authenticate_officer(self, officer: OfficerLogin) -> Secret:
        """Authenticate a handle-register caller as crypto officer; return its session KEK."""
        if not self._nv.operational:
            raise CryptoIOError(
                "the crypto engine is in commissioning mode", status=CmdStatus.BAD_SYS_STATE
            )
        if (officer.credential_id | officer.import_kek_id) & ~ID_MASK_24:
            raise CryptoInvalidArgument("ids are 24-bit", status=CmdStatus.BAD_PARAM)
        role = self._authenticate(
            officer.credential_id, officer.import_kek_id, officer.credential.reveal()
        )
        if role is not CredentialRole.OFFICER:
            raise CryptoInvalidArgument(
                f"credential {officer.credential_id} does not have the officer role",
                status=CmdStatus.BAD_PARAM,
            )
        return self._keys.open_kek(self._nv.import_keks[officer.import_kek_id])

    @staticmethod
    def _free_id(table: Mapping[int, object], log_max: int) -> int:
        """Lowest free id >= 1 (id 0 belongs to CRYPTO_OPERATIONAL), within 2**log_max."""
        if len(table) >= 1 << log_max:
            raise CryptoNoResources("the table is full", status=CmdStatus.LIM)
        candidate = 1
        while candidate in table:
            candidate += 1
        if candidate > ID_MASK_24:
            raise CryptoNoResources("no free 24-bit id", status=CmdStatus.LIM)
        return candidate

    def add_credential(self, officer: OfficerLogin, role: int, wrapped_credential: bytes) -> int:
        """CREDENTIAL_HANDLE write ADD: store a credential wrapped under the officer's session
        import KEK; return the id the device chose."""
        with self._lock:
            session_kek = self._authenticate_officer(officer)
            try:
                cred_role = CredentialRole(role)
            except ValueError:
                raise CryptoInvalidArgument(
                    f"credential_role {role} is not 0 (officer) or 1 (user)",
                    status=CmdStatus.BAD_PARAM,
                ) from None
            try:
                plain = unwrap_credential(session_kek, bytes(wrapped_credential))
            except KeyUnwrapError:
                raise CryptoInvalidArgument(
                    "the new credential does not unwrap under the session import KEK",
                    status=CmdStatus.BAD_PARAM,
                ) from None
            new_id = self._free_id(self._nv.credentials, self.profile.log_max_num_creds)
            table = dict(self._nv.credentials)
            table[new_id] = self._keys.hash_credential(cred_role, plain)
            self._commit(replace(self._nv, credentials=table))
            return new_id

    def delete_credential(self, officer: OfficerLogin, credential_id: int) -> None:
        """CREDENTIAL_HANDLE write DELETE: remove a credential; every login that used it turns
        INVALID (rdma-core man mlx5dv_crypto_login: "A valid crypto login session can become
        invalid if the credential or the import KEK ... were deleted")."""
        with self._lock:
            self._authenticate_officer(officer)
            if credential_id not in self._nv.credentials:
                raise CryptoInvalidArgument(
                    f"credential {credential_id} does not exist", status=CmdStatus.BAD_PARAM
                )
            table = dict(self._nv.credentials)
            del table[credential_id]
            self._commit(replace(self._nv, credentials=table))
            for login in self._logins.values():
                if login.credential_id == credential_id:
                    login.state = LoginState.INVALID

    def query_credential(self, officer: OfficerLogin, credential_id: int) -> CredentialInfo:
        """CREDENTIAL_HANDLE read: role and state of a stored credential (never the secret)."""
        with self._lock:
            self._authenticate_officer(officer)
            record = self._nv.credentials.get(credential_id)
            if record is None:
                raise CryptoInvalidArgument(
                    f"credential {credential_id} does not exist", status=CmdStatus.BAD_PARAM
                )
            return CredentialInfo(credential_id, record.role, DekState.READY)

    def add_import_kek(self, officer: OfficerLogin, key_size: int, wrapped_key: bytes) -> int:
        """IMPORT_KEK_HANDLE write ADD: store an import KEK wrapped under the officer's session
        import KEK (16 or 32 bytes -> 24 or 40 at the start of the 128-byte key field)."""
        with self._lock:
            session_kek = self._authenticate_officer(officer)
            if key_size not in (0, 1):
                raise CryptoInvalidArgument(
                    f"key_size {key_size} is not 0 (128-bit) or 1 (256-bit)",
                    status=CmdStatus.BAD_PARAM,
                )
            size = kek_len(key_size) + KW_OVERHEAD
            try:
                plain = unwrap(session_kek, bytes(wrapped_key[:size]))
            except KeyUnwrapError:
                raise CryptoInvalidArgument(
                    "the new import KEK does not unwrap under the session import KEK",
                    status=CmdStatus.BAD_PARAM,
                ) from None
            new_id = self._free_id(self._nv.import_keks, self.profile.log_max_num_import_keks)
            table = dict(self._nv.import_keks)
            table[new_id] = self._keys.seal_kek(key_size, plain)
            self._commit(replace(self._nv, import_keks=table))
            return new_id

    def delete_import_kek(self, officer: OfficerLogin, import_kek_id: int) -> None:
        """IMPORT_KEK_HANDLE write DELETE: remove an import KEK; logins that use it as their
        session import KEK turn INVALID (register database, crypto_login_obj_ext.state)."""
        with self._lock:
            self._authenticate_officer(officer)
            if import_kek_id not in self._nv.import_keks:
                raise CryptoInvalidArgument(
                    f"import KEK {import_kek_id} does not exist", status=CmdStatus.BAD_PARAM
                )
            table = dict(self._nv.import_keks)
            del table[import_kek_id]
            self._commit(replace(self._nv, import_keks=table))
            for login in self._logins.values():
                if login.import_kek_id == import_kek_id:
                    login.state = LoginState.INVALID

    def query_import_kek(self, officer: OfficerLogin, import_kek_id: int) -> ImportKekInfo:
        """IMPORT_KEK_HANDLE read: size and state of a stored import KEK (never the key)."""
        with self._lock:
            self._authenticate_officer(officer)
            record = self._nv.import_keks.get(import_kek_id)
            if record is None:
                raise CryptoInvalidArgument(
                    f"import KEK {import_kek_id} does not exist", status=CmdStatus.BAD_PARAM
                )
            return ImportKekInfo(import_kek_id, record.key_size, DekState.READY)

    # -- contexts ----------------------------------------------------------------------

    def open_context(self, ctx: ContextId) -> CryptoCaps:
        """Open a device context named ``ctx``; it caches the crypto caps of this moment
        (rdma-core reads them once at context init, docs/sources.md §14.1) and returns them."""
        with self._lock:
            if ctx in self._contexts:
                raise ValueError(f"context {ctx!r} is already open")
            caps = self._caps_now()
            self._contexts[ctx] = _Context(caps)
            return caps

    def close_context(self, ctx: ContextId) -> None:
        """Close a context: its login session and login objects end, its DEKs and MKeys are
        destroyed. Closing an unknown (or reset-killed) context does nothing."""
        with self._lock:
            context = self._contexts.pop(ctx, None)
            if context is None:
                return
            for login_id in [*context.login_objects, context.session]:
                if login_id is not None:
                    self._logins.pop(login_id, None)
            for dek_id in context.deks:
                self._deks.pop(dek_id, None)
            for mkey_id in context.mkeys:
                self._mkeys.pop(mkey_id, None)

    def context_ids(self) -> list[ContextId]:
        """The ids of the contexts open now."""
        with self._lock:
            return list(self._contexts)

    def _context(self, ctx: ContextId) -> _Context:
        try:
            return self._contexts[ctx]
        except KeyError:
            raise CryptoStaleContext(f"context {ctx!r} is not open") from None

    def query_device(self, ctx: ContextId) -> CryptoCaps:
        """``mlx5dv_query_device`` with MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD: the cached caps."""
        with self._lock:
            return self._context(ctx).caps

    # -- login session (mlx5dv_crypto_login / _query_state / _logout, MLX5_1.21) --------

    def crypto_login(
        self,
        ctx: ContextId,
        credential_id: int,
        import_kek_id: int,
        credential: bytes | Secret,
        comp_mask: int = 0,
    ) -> None:
        """``mlx5dv_crypto_login``: create the context's login session.

        Checks in rdma-core's order (verbs.c:7734-7768, docs/sources.md §14.2): comp_mask != 0 ->
        EINVAL; a session already on the context, VALID or INVALID -> EEXIST; cached caps lack
        CRYPTO or WRAPPED_CRYPTO_OPERATIONAL -> EOPNOTSUPP; an id >= 2**24 -> EINVAL; then the
        firmware: unknown credential or KEK id, a credential that does not unwrap under the KEK
        or does not match the stored one -> EINVAL.
        """
        with self._lock:
            if comp_mask != 0:
                raise CryptoInvalidArgument("comp_mask must be 0")
            context = self._context(ctx)
            if context.session is not None:
                raise CryptoAlreadyExists("a crypto login session already exists")
            context.session = self._create_login(
                context, ctx, credential_id, import_kek_id, credential, exact=True
            )

    def crypto_login_query_state(self, ctx: ContextId) -> LoginState:
        """``mlx5dv_crypto_login_query_state``: NO_LOGIN without a session, else VALID/INVALID."""
        with self._lock:
            context = self._context(ctx)
            if context.session is None:
                return LoginState.NO_LOGIN
            return self._logins[context.session].state

    def crypto_logout(self, ctx: ContextId) -> None:
        """``mlx5dv_crypto_logout``: end the session (VALID or INVALID); ENOENT without one."""
        with self._lock:
            context = self._context(ctx)
            if context.session is None:
                raise CryptoNoSession("no crypto login session exists")
            self._logins.pop(context.session, None)
            context.session = None

    # -- login objects (mlx5dv_crypto_login_create / _query / _destroy, MLX5_1.24) ------

    def crypto_login_create(
        self,
        ctx: ContextId,
        credential_id: int,
        import_kek_id: int,
        credential: bytes | Secret,
        comp_mask: int = 0,
    ) -> int:
        """``mlx5dv_crypto_login_create``: create a login object; return its id.

        rdma-core checks comp_mask (EINVAL) and then the same things as the old API, but not
        credential_len: the bytes are copied into the 48-byte firmware field, so shorter input
        is zero-padded and longer input truncated (docs/sources.md §14.5). The firmware allows one
        login per context, old API or new (model choice, docs/crypto.md): a second -> EINVAL.
        """
        with self._lock:
            if comp_mask != 0:
                raise CryptoInvalidArgument("comp_mask must be 0")
            context = self._context(ctx)
            login_id = self._create_login(
                context, ctx, credential_id, import_kek_id, credential, exact=False
            )
            context.login_objects.add(login_id)
            return login_id

    def crypto_login_query(self, ctx: ContextId, login_id: int, comp_mask: int = 0) -> LoginState:
        """``mlx5dv_crypto_login_query``: VALID or INVALID (never NO_LOGIN)."""
        with self._lock:
            if comp_mask != 0:
                raise CryptoInvalidArgument("query comp_mask must be 0")
            return self._login_object(ctx, login_id).state

    def crypto_login_destroy(self, ctx: ContextId, login_id: int) -> None:
        """``mlx5dv_crypto_login_destroy``: destroy a login object (a logout)."""
        with self._lock:
            self._login_object(ctx, login_id)
            self._contexts[ctx].login_objects.discard(login_id)
            del self._logins[login_id]

    def _login_object(self, ctx: ContextId, login_id: int) -> _Login:
        context = self._context(ctx)
        if login_id not in context.login_objects:
            raise CryptoInvalidArgument(
                f"login object {login_id} does not exist on this context", status=CmdStatus.BAD_RES
            )
        return self._logins[login_id]

    def _create_login(
        self,
        context: _Context,
        ctx: ContextId,
        credential_id: int,
        import_kek_id: int,
        credential: bytes | Secret,
        *,
        exact: bool,
    ) -> int:
        """crypto_login_create() of verbs.c:7646-7694 plus the firmware's CREATE of a
        CRYPTO_LOGIN object (0x1F)."""
        caps = context.caps
        needed = CryptoCapsFlags.CRYPTO | CryptoCapsFlags.WRAPPED_CRYPTO_OPERATIONAL
        if caps.flags & needed != needed:
            raise CryptoNotSupported("the crypto engine is not operational in wrapped mode")
        if (credential_id | import_kek_id) & ~ID_MASK_24 or min(credential_id, import_kek_id) < 0:
            raise CryptoInvalidArgument("credential_id and import_kek_id are 24-bit")
        wrapped = _credential_field(credential, exact=exact)
        if not self._nv.operational:
            raise CryptoIOError(
                "the crypto engine is in commissioning mode", status=CmdStatus.BAD_SYS_STATE
            )
        if context.session is not None or context.login_objects:
            raise CryptoInvalidArgument(
                "only one crypto login can exist per device context",
                status=CmdStatus.BAD_RES_STATE,
            )
        self._authenticate(credential_id, import_kek_id, wrapped)
        login_id = self._login_ids.take(self._logins)
        self._logins[login_id] = _Login(login_id, ctx, credential_id, import_kek_id)
        return login_id

    def _context_login(self, context: _Context) -> _Login | None:
        login_id = context.session
        if login_id is None and context.login_objects:
            login_id = next(iter(context.login_objects))
        return None if login_id is None else self._logins[login_id]

    # -- DEKs ------------------------------------------------------------------------------

    def dek_create(self, ctx: ContextId, attr: DekInitRequest) -> int:
        """``mlx5dv_dek_create``: load a DEK; return its object id.

        Checks in rdma-core's order (verbs.c:7974-8060, docs/sources.md §14.6): no AES-XTS engine ->
        EOPNOTSUPP; key_purpose, key_size, comp_mask -> EINVAL; import method (wrapped DEK needs
        the wrapped bit and, on the old path, a session on the context; plaintext DEK needs the
        bit clear) -> EINVAL. Then the firmware: a wrapped DEK needs a VALID login of the
        context and must unwrap under its session import KEK -> else EINVAL; table full ->
        ENOMEM.
        """
        with self._lock:
            context = self._context(ctx)
            caps = context.caps
            if not caps.crypto_engines & _ANY_XTS_ENGINE:
                raise CryptoNotSupported("the device has no AES-XTS crypto engine")
            if attr.key_purpose != CryptoKeyPurpose.AES_XTS:
                raise CryptoInvalidArgument(f"key_purpose {attr.key_purpose} is not AES_XTS")
            if attr.key_size not in (0, 1):
                raise CryptoInvalidArgument(f"key_size {attr.key_size} is not 128 or 256")
            if attr.comp_mask & ~MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN:
                raise CryptoInvalidArgument(f"unsupported comp_mask 0x{attr.comp_mask:x}")
            wrapped_method = bool(caps.wrapped_import_method & WrappedImportMethodCaps.AES_XTS)
            login: _Login | None = None
            if attr.comp_mask & MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN:
                if attr.crypto_login is not None:
                    if not wrapped_method:
                        raise CryptoInvalidArgument("wrapped DEK on a plaintext-import engine")
                    login = self._login_object(ctx, attr.crypto_login)
                elif wrapped_method:
                    raise CryptoInvalidArgument("plaintext DEK on a wrapped-import engine")
            else:
                if context.session is None or not wrapped_method:
                    raise CryptoInvalidArgument(
                        "a wrapped DEK needs a crypto login session on this context"
                    )
                login = self._logins[context.session]
            key_field = attr.key.reveal()
            if len(key_field) != DEK_KEY_FIELD_LEN or len(attr.opaque) != _OPAQUE_LEN:
                raise CryptoInvalidArgument("key is 128 bytes and opaque 8 bytes")
            if attr.pd & ~_PD_MASK or attr.pd < 0:
                raise CryptoInvalidArgument("pd is a 24-bit number")
            material = self._dek_material(attr, key_field, login)
            if len(self._deks) >= 1 << caps.log_max_num_deks:
                raise CryptoNoResources("the DEK table is full", status=CmdStatus.LIM)
            dek_id = self._dek_ids.take(self._deks)
            self._deks[dek_id] = _Dek(
                dek_id=dek_id,
                owner=ctx,
                pd=attr.pd,
                key_size=attr.key_size,
                wrapped=login is not None,
                opaque=bytes(attr.opaque),
                material=material,
            )
            context.deks.add(dek_id)
            return dek_id

    def _dek_material(
        self, attr: DekInitRequest, key_field: bytes, login: _Login | None
    ) -> DekMaterial:
        """The firmware side of DEK creation: unwrap (or take) the key bytes (docs/sources.md
        §14.7)."""
        if login is None:
            plain = Secret(key_field[: dek_plaintext_len(attr.key_size, attr.has_keytag)])
            return parse_dek(plain, attr.key_size, attr.has_keytag)
        if login.state is not LoginState.VALID:
            raise CryptoInvalidArgument(
                "the crypto login is INVALID: log out and log in again",
                status=CmdStatus.BAD_RES_STATE,
            )
        session_kek = self._keys.open_kek(self._nv.import_keks[login.import_kek_id])
        size = dek_wrapped_len(attr.key_size, attr.has_keytag)
        try:
            plain = unwrap(session_kek, key_field[:size])
        except KeyUnwrapError:
            raise CryptoInvalidArgument(
                f"the DEK does not unwrap under import KEK {login.import_kek_id} "
                f"as a {size}-byte wrapped key",
                status=CmdStatus.BAD_PARAM,
            ) from None
        return parse_dek(plain, attr.key_size, attr.has_keytag)

    def dek_query(self, ctx: ContextId, dek_id: int, comp_mask: int = 0) -> DekAttributes:
        """``mlx5dv_dek_query``: state and opaque. comp_mask != 0 -> EINVAL; a wrapped DEK
        needs a VALID login on the context (dek_create.3.md:67-70) -> else EINVAL."""
        with self._lock:
            if comp_mask != 0:
                raise CryptoInvalidArgument("dek_attr comp_mask must be 0")
            context = self._context(ctx)
            dek = self._owned_dek(ctx, dek_id)
            if dek.wrapped:
                login = self._context_login(context)
                if login is None or login.state is not LoginState.VALID:
                    raise CryptoInvalidArgument(
                        "querying a wrapped DEK needs a valid crypto login",
                        status=CmdStatus.BAD_RES_STATE,
                    )
            return DekAttributes(dek.state, dek.opaque)

    def dek_destroy(self, ctx: ContextId, dek_id: int) -> None:
        """``mlx5dv_dek_destroy``: no login needed. MKeys using it fail from then on."""
        with self._lock:
            self._owned_dek(ctx, dek_id)
            self._contexts[ctx].deks.discard(dek_id)
            del self._deks[dek_id]

    def _owned_dek(self, ctx: ContextId, dek_id: int) -> _Dek:
        self._context(ctx)
        dek = self._deks.get(dek_id)
        if dek is None or dek.owner != ctx:
            raise CryptoInvalidArgument(
                f"DEK {dek_id} does not exist on this context", status=CmdStatus.BAD_RES
            )
        return dek

    # -- crypto MKeys ----------------------------------------------------------------------

    def mkey_create(self, ctx: ContextId, create_flags: int, max_entries: int) -> int:
        """``mlx5dv_create_mkey``: create an indirect MKey; return its id (the lkey is
        ``id << 8``). Empty or unknown flags, or CRYPTO without an AES-XTS engine ->
        EOPNOTSUPP (verbs.c:7368-7482, docs/sources.md §14.9)."""
        with self._lock:
            context = self._context(ctx)
            if not create_flags or create_flags & ~int(_KNOWN_MKEY_FLAGS):
                raise CryptoNotSupported(f"unsupported create_flags 0x{create_flags:x}")
            flags = MkeyInitAttrFlags(create_flags)
            has_engine = context.caps.crypto_engines & _ANY_XTS_ENGINE
            if flags & MkeyInitAttrFlags.CRYPTO and not has_engine:
                raise CryptoNotSupported("crypto MKeys need an AES-XTS engine")
            if max_entries < 1:
                raise CryptoInvalidArgument("max_entries must be at least 1")
            mkey_id = self._mkey_ids.take(self._mkeys)
            self._mkeys[mkey_id] = _Mkey(mkey_id, ctx, flags, max_entries)
            context.mkeys.add(mkey_id)
            return mkey_id

    def mkey_destroy(self, ctx: ContextId, mkey_id: int) -> None:
        """``mlx5dv_destroy_mkey``."""
        with self._lock:
            self._owned_mkey(ctx, mkey_id)
            self._contexts[ctx].mkeys.discard(mkey_id)
            del self._mkeys[mkey_id]

    def _owned_mkey(self, ctx: ContextId, mkey_id: int) -> _Mkey:
        self._context(ctx)
        mkey = self._mkeys.get(mkey_id)
        if mkey is None or mkey.owner != ctx:
            raise CryptoInvalidArgument(
                f"MKey {mkey_id} does not exist on this context", status=CmdStatus.BAD_RES
            )
        return mkey

    def mkey_configure(
        self,
        ctx: ContextId,
        mkey_id: int,
        length: int,
        crypto: CryptoAttrRequest | None,
    ) -> None:
        """A completed UMR: ``wr_mkey_configure`` + layout of ``length`` bytes + optional
        ``mlx5dv_wr_set_mkey_crypto`` + ``ibv_wr_complete``.

        The setter's checks (qp.c:3251-3319) and the finalize checks (qp.c:2624-2737) give
        EINVAL: MKey without the CRYPTO flag, comp_mask != 0, a standard other than AES-XTS,
        an order outside {0, 1}, data_unit_size outside 0..4, a length above UINT32_MAX, and on
        a single-block engine a length above one data unit. The DEK is not checked here (the
        setter does not either); a bad DEK fails the transfers.
        """
        with self._lock:
            context = self._context(ctx)
            mkey = self._owned_mkey(ctx, mkey_id)
            if length < 0 or length > _UINT32_MAX:
                raise CryptoInvalidArgument("the MKey length must fit in 32 bits")
            setting: _CryptoSetting | None = None
            if crypto is not None:
                setting = self._crypto_setting(mkey, crypto)
                engines = context.caps.crypto_engines
                single_only = not engines & CryptoEnginesCaps.AES_XTS_MULTI_BLOCK
                if single_only and length > setting.data_unit_size:
                    raise CryptoInvalidArgument(
                        "a single-block AES-XTS engine takes at most one data unit per MKey"
                    )
            mkey.length = length
            mkey.crypto = setting

    @staticmethod
    def _crypto_setting(mkey: _Mkey, crypto: CryptoAttrRequest) -> _CryptoSetting:
        if not mkey.create_flags & MkeyInitAttrFlags.CRYPTO:
            raise CryptoInvalidArgument("the MKey was not created with the CRYPTO flag")
        if crypto.comp_mask != 0:
            raise CryptoInvalidArgument("crypto_attr comp_mask must be 0")
        if crypto.crypto_standard != CryptoStandard.AES_XTS:
            raise CryptoInvalidArgument("only AES-XTS is supported")
        try:
            order = SignatureCryptoOrder(crypto.signature_crypto_order)
        except ValueError:
            raise CryptoInvalidArgument("signature_crypto_order is not 0 or 1") from None
        if crypto.data_unit_size not in DATA_UNIT_SIZES:
            raise CryptoInvalidArgument("data_unit_size is not one of MLX5DV_BLOCK_SIZE_*")
        if len(crypto.initial_tweak) != _TWEAK_LEN or len(crypto.keytag) != _KEYTAG_LEN:
            raise CryptoInvalidArgument("initial_tweak is 16 bytes and keytag 8 bytes")
        return _CryptoSetting(
            encrypt_on_tx=bool(crypto.encrypt_on_tx),
            order=order,
            data_unit_size=DATA_UNIT_SIZES[BlockSize(crypto.data_unit_size)],
            initial_tweak=bytes(crypto.initial_tweak),
            dek_id=crypto.dek,
            keytag=crypto.keytag,
        )

    def mkey_transfer(
        self,
        ctx: ContextId,
        mkey_id: int,
        direction: Direction,
        data: bytes | bytearray | memoryview,
        offset: int = 0,
    ) -> memoryview:
        """Move ``data`` through a configured crypto MKey and return what comes out (a new
        writable byte buffer).

        TX takes memory contents and returns wire bytes; RX takes wire bytes and returns what
        lands in memory. ``encrypt_on_tx`` encrypts on TX and decrypts on RX, its absence the
        reverse (man mlx5dv_wr_set_mkey_crypto, docs/sources.md §13.4, §17.1). Data units count from
        MKey offset 0: the unit at ``offset`` uses ``initial_tweak + offset / data_unit_size``.

        Error completions (:class:`CryptoCompletionError`): LOC_PROT_ERR when the MKey has no
        crypto setting, its DEK is gone, belongs to another context or is in ERROR, the keytag
        does not match the DEK's, or ``offset`` is not at a data-unit boundary; LOC_LEN_ERR when
        the range leaves the MKey or the length breaks the job-size rule (man page lines
        287-305: a multiple of the data unit, or a multiple of 16 whose remainder is at most
        data_unit_size - 16).
        """
        with self._lock:
            mkey = self._owned_mkey(ctx, mkey_id)
            setting = mkey.crypto
            if setting is None:
                raise CryptoCompletionError(
                    "the MKey has no crypto properties", wc_status=WcStatus.LOC_PROT_ERR
                )
            dek = self._deks.get(setting.dek_id)
            if dek is None or dek.owner != ctx or dek.state is not DekState.READY:
                raise CryptoCompletionError(
                    "the MKey's DEK is not usable", wc_status=WcStatus.LOC_PROT_ERR
                )
            if dek.material.keytag is not None and dek.material.keytag != setting.keytag:
                raise CryptoCompletionError(
                    "keytag mismatch between the MKey and the DEK",
                    wc_status=WcStatus.LOC_PROT_ERR,
                )
            length = len(memoryview(data).cast("B"))
            if offset < 0 or offset + length > mkey.length:
                raise CryptoCompletionError(
                    "the transfer leaves the MKey", wc_status=WcStatus.LOC_LEN_ERR
                )
            dus = setting.data_unit_size
            if offset % dus:
                raise CryptoCompletionError(
                    "a transfer must start at a data-unit boundary of the MKey",
                    wc_status=WcStatus.LOC_PROT_ERR,
                )
            if not job_size_ok(length, dus):
                raise CryptoCompletionError(
                    f"{length} bytes breaks the job-size rule for {dus}-byte data units",
                    wc_status=WcStatus.LOC_LEN_ERR,
                )
            key = dek.material.key
            tweak = tweak_add(setting.initial_tweak, offset // dus)
            encrypt = setting.encrypt_on_tx == (direction is Direction.TX)
        # The AES work runs outside the lock: it only reads immutable key material.
        if length == 0:
            return memoryview(bytearray())
        if encrypt:
            return xts_encrypt(key, tweak, data, dus)
        return xts_decrypt(key, tweak, data, dus)

    def mkey_encryption_order(self, ctx: ContextId, mkey_id: int) -> EncryptionOrder | None:
        """The BSF ``enc_order`` of a configured crypto MKey (None without crypto)."""
        with self._lock:
            setting = self._owned_mkey(ctx, mkey_id).crypto
            return None if setting is None else setting.enc_order

    # -- introspection for the lab (no secrets) -------------------------------------------

    def credential_ids(self) -> list[int]:
        """Ids of the stored credentials."""
        with self._lock:
            return sorted(self._nv.credentials)

    def import_kek_ids(self) -> list[int]:
        """Ids of the stored import KEKs."""
        with self._lock:
            return sorted(self._nv.import_keks)

    def volatile_counts(self) -> dict[str, int]:
        """How many contexts, login sessions (VALID / INVALID; old-API sessions and login
        objects alike), DEKs and MKeys exist now: what ``hcasim status`` shows."""
        with self._lock:
            states = [login.state for login in self._logins.values()]
            return {
                "contexts": len(self._contexts),
                "sessions_valid": states.count(LoginState.VALID),
                "sessions_invalid": states.count(LoginState.INVALID),
                "deks": len(self._deks),
                "mkeys": len(self._mkeys),
            }

    @contextmanager
    def locked(self) -> Iterator[CryptoEngine]:
        """Hold the engine's lock over several calls (e.g. while the daemon snapshots)."""
        with self._lock:
            yield self


def job_size_ok(length: int, data_unit_size: int) -> bool:
    """The job-size rule of man mlx5dv_wr_set_mkey_crypto (lines 287-305): ``length`` is a
    multiple of the data unit, or a multiple of 16 whose remainder is at most dus - 16."""
    remainder = length % data_unit_size
    return remainder == 0 or (length % AES_BLOCK == 0 and remainder <= data_unit_size - AES_BLOCK)


def _credential_field(credential: bytes | Secret, *, exact: bool) -> bytes:
    """The 48-byte credential field of a CRYPTO_LOGIN object.

    The old API's struct holds exactly 48 bytes (``exact``; anything else cannot come from
    a real client -> EINVAL); the ext API memcpy's ``credential_len`` bytes into the field,
    which the model zero-pads or truncates.
    """
    raw = credential.reveal() if isinstance(credential, Secret) else bytes(credential)
    if exact and len(raw) != WRAPPED_CREDENTIAL_LEN:
        raise CryptoInvalidArgument("the credential field is 48 bytes")
    return raw[:WRAPPED_CREDENTIAL_LEN].ljust(WRAPPED_CREDENTIAL_LEN, b"\0")
