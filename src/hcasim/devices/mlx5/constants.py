"""Numeric constants of the mlx5 crypto API and firmware, with their sources.

API values are those of rdma-core ``providers/mlx5/mlx5dv.h`` (v44.0; unchanged since,
docs/sources.md §13.3, confirmed against Debian's pyverbs ``mlx5_enums``); firmware values are
from ``providers/mlx5/mlx5_ifc.h`` (docs/sources.md §14.8, §14.9).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final

__all__ = [
    "ID_MASK_24",
    "MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD",
    "MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN",
    "BlockSize",
    "CredentialRole",
    "CryptoCapsFlags",
    "CryptoEnginesCaps",
    "CryptoKeyPurpose",
    "CryptoKeySize",
    "CryptoStandard",
    "DekState",
    "EncryptionOrder",
    "LoginState",
    "MkeyInitAttrFlags",
    "SignatureCryptoOrder",
    "WrappedImportMethodCaps",
]

#: Credential, import-KEK and object ids are 24-bit (verbs.c crypto_login_create:
#: ``id & 0xff000000`` -> EINVAL; register fields are 0x0.24 wide).
ID_MASK_24: Final = 0xFFFFFF

#: ``MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD`` (mlx5dv.h:88): ask mlx5dv_query_device for crypto_caps.
MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD: Final = 1 << 13

#: ``MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN`` (enum mlx5dv_dek_init_attr_mask).
MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN: Final = 1 << 0


class LoginState(IntEnum):
    """``enum mlx5dv_crypto_login_state``."""

    VALID = 0
    NO_LOGIN = 1
    INVALID = 2


class CryptoKeySize(IntEnum):
    """``enum mlx5dv_crypto_key_size``: size of *each* XTS half."""

    SIZE_128 = 0
    SIZE_256 = 1


class CryptoKeyPurpose(IntEnum):
    """``enum mlx5dv_crypto_key_purpose`` (firmware value for AES-XTS is 0x3, mlx5_ifc.h)."""

    AES_XTS = 0


class DekState(IntEnum):
    """``enum mlx5dv_dek_state`` (= firmware encryption_key_obj state)."""

    READY = 0
    ERROR = 1


class CryptoEnginesCaps(IntFlag):
    """``enum mlx5dv_crypto_engines_caps``."""

    AES_XTS = 1 << 0  # deprecated, never set since v42 (rdma-core bca03d4ad)
    AES_XTS_SINGLE_BLOCK = 1 << 1
    AES_XTS_MULTI_BLOCK = 1 << 2


class WrappedImportMethodCaps(IntFlag):
    """``enum mlx5dv_crypto_wrapped_import_method_caps``."""

    AES_XTS = 1 << 0


class CryptoCapsFlags(IntFlag):
    """``enum mlx5dv_crypto_caps_flags``."""

    CRYPTO = 1 << 0
    WRAPPED_CRYPTO_OPERATIONAL = 1 << 1
    WRAPPED_CRYPTO_GOING_TO_COMMISSIONING = 1 << 2


class CryptoStandard(IntEnum):
    """``enum mlx5dv_crypto_standard``."""

    AES_XTS = 0


class SignatureCryptoOrder(IntEnum):
    """``enum mlx5dv_signature_crypto_order``."""

    SIGNATURE_AFTER_CRYPTO_ON_TX = 0
    SIGNATURE_BEFORE_CRYPTO_ON_TX = 1


class BlockSize(IntEnum):
    """``enum mlx5dv_block_size`` as used for ``data_unit_size``."""

    SIZE_512 = 0
    SIZE_520 = 1
    SIZE_4048 = 2
    SIZE_4096 = 3
    SIZE_4160 = 4


class MkeyInitAttrFlags(IntFlag):
    """``enum mlx5dv_mkey_init_attr_flags``."""

    INDIRECT = 1 << 0
    BLOCK_SIGNATURE = 1 << 1
    CRYPTO = 1 << 2
    UPDATE_TAG = 1 << 3
    REMOTE_INVALIDATE = 1 << 4


class EncryptionOrder(IntEnum):
    """``MLX5_ENCRYPTION_ORDER_*`` written to the crypto BSF (mlx5_ifc.h:5693-5698)."""

    ENCRYPTED_WIRE_SIGNATURE = 0
    ENCRYPTED_MEMORY_SIGNATURE = 1
    ENCRYPTED_RAW_WIRE = 2
    ENCRYPTED_RAW_MEMORY = 3


class CredentialRole(IntEnum):
    """``credential_obj_ext.credential_role`` (register database; DPDK mlx5_prm.h:4034-4052)."""

    OFFICER = 0
    USER = 1
