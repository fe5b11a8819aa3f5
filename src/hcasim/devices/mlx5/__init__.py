"""mlx5 firmware models: the crypto engine in wrapped import mode (ConnectX-6 Dx and later).

Modules, one concern each:

* :mod:`.xts` - the AES-XTS data path of a crypto MKey (data units, LE tweak, CTS);
* :mod:`.keywrap` - AES key wrap with the device's credential / DEK / KEK lengths;
* :mod:`.registers` - CRYPTO_OPERATIONAL / IMPORT_KEK_HANDLE / CREDENTIAL_HANDLE field tables;
* :mod:`.nvstore` - non-volatile state and how its secrets are kept at rest;
* :mod:`.crypto_engine` - the firmware state machine (officer, contexts, logins, DEKs, MKeys);
* :mod:`.register_access` - register bytes in and out of the engine;
* :mod:`.errors`, :mod:`.constants` - errno-carrying errors and API/firmware numbers.

The client API that applications use is :mod:`hcasim.mlx5dv`.
"""

from .crypto_engine import (
    CONNECTX6DX,
    CONNECTX6DX_MULTI_BLOCK,
    CONNECTX6DX_PLAINTEXT,
    CONNECTX7,
    CryptoAttrRequest,
    CryptoCaps,
    CryptoEngine,
    DekAttributes,
    DekInitRequest,
    DeviceProfile,
    Direction,
    OfficerLogin,
)
from .errors import CryptoError
from .register_access import CryptoRegisters, RegisterMethod, RegisterReply, RegStatus

__all__ = [
    "CONNECTX6DX",
    "CONNECTX6DX_MULTI_BLOCK",
    "CONNECTX6DX_PLAINTEXT",
    "CONNECTX7",
    "CryptoAttrRequest",
    "CryptoCaps",
    "CryptoEngine",
    "CryptoError",
    "CryptoRegisters",
    "DekAttributes",
    "DekInitRequest",
    "DeviceProfile",
    "Direction",
    "OfficerLogin",
    "RegStatus",
    "RegisterMethod",
    "RegisterReply",
]
