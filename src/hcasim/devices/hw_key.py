"""How a ConnectX-3 HW access key is kept on the flash without revealing it.

mstflint stores the 64-bit key itself in the FS2 image-info tag ``HwAccessKey`` (tag 13,
mstflint v4.21.0-1 mlxfwops/lib/fs2_ops.h:112). hcasim's own flint stores a one-way
digest of the key in that tag instead, plus a seal over the digest in a project tag, so a
dump of the flash or of the lab's store never shows the key. The firmware compares the key
given to HW_ACCESS against what it loaded at reset, in constant time. A tag written by a
tool that stores the raw key (mstflint in-band) carries no matching seal, and the firmware
then compares against the raw value, as real firmware would. See docs/secure-host.md.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

KEY_BITS = 64
#: Version 1 (labs stored before version 2, still read): PBKDF2-HMAC-SHA256, 20,000 rounds,
#: cheap to guess on (thousands of guesses a second per core, far more on a GPU).
_ROUNDS = 20_000
#: Version 2, what hcasim writes: scrypt, memory-hard (16 MiB a guess), so a stolen flash
#: image or store gives up a weak key only slowly (docs/security-model.md §4 states the
#: measured guesses per second; bench/key_digest.py measures them).
SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1
#: Version 3, what hcasim writes: version 2's scrypt, salted with the node GUID and
#: :data:`RANDOM_SALT_BYTES` random bytes drawn at each ``set_key`` and kept in the seal tag
#: beside a 4-byte seal (versions 1 and 2 salt with the GUID alone, which anyone can read
#: off the fabric before stealing the flash). docs/security-model.md §4 gives the format.
DIGEST_VERSION = 3
#: Random salt bytes stored in the 8-byte seal tag by version 3 (the other 4 are its seal).
RANDOM_SALT_BYTES = 4
_SEAL_TAG_BYTES = 8
_DIGEST_CONTEXT = b"hcasim cx3 hw-access-key digest v1"
_DIGEST_CONTEXT_V2 = b"hcasim cx3 hw-access-key digest v2"
_DIGEST_CONTEXT_V3 = b"hcasim cx3 hw-access-key digest v3"
_SEAL_CONTEXTS = {1: b"hcasim cx3 hw-access-key seal v1", 2: b"hcasim cx3 hw-access-key seal v2",
                  3: b"hcasim cx3 hw-access-key seal v3"}


def key_digest(key: int, salt: bytes, version: int = DIGEST_VERSION) -> int:
    """Return the 64-bit flash representation of a non-zero key (never 0).

    ``salt`` is the device's own: its node GUID (versions 1 and 2), followed in version 3 by
    the random bytes stored in the seal tag, so one guess is good for one device and one
    ``set_key`` only, and nothing can be computed before the flash is read.
    """
    if not 0 < key < 1 << KEY_BITS:
        raise ValueError("the digest is defined for non-zero 64-bit keys")
    secret = key.to_bytes(8, "big")
    if version == 1:
        raw = hashlib.pbkdf2_hmac("sha256", secret, _DIGEST_CONTEXT + salt, _ROUNDS)
    else:
        context = _DIGEST_CONTEXT_V2 if version == 2 else _DIGEST_CONTEXT_V3
        raw = hashlib.scrypt(secret, salt=context + salt, n=SCRYPT_N, r=SCRYPT_R,
                             p=SCRYPT_P, maxmem=64 << 20, dklen=32)
    return int.from_bytes(raw[:8], "big") or 1


def seal_for(digest: int, version: int = DIGEST_VERSION, random_salt: bytes = b"") -> bytes:
    """Return the 8-byte seal tag value that marks a key tag value as a digest written by
    hcasim (and says which digest version it is).

    Versions 1 and 2: 8 bytes of SHA-256 over the digest. Version 3: ``random_salt`` (its
    :data:`RANDOM_SALT_BYTES` random bytes), then 4 bytes of SHA-256 over it and the digest.
    """
    value = digest.to_bytes(8, "big")
    if version < 3:
        return hashlib.sha256(_SEAL_CONTEXTS[version] + value).digest()[:_SEAL_TAG_BYTES]
    if len(random_salt) != RANDOM_SALT_BYTES:
        raise ValueError(f"version 3 stores {RANDOM_SALT_BYTES} random salt bytes")
    check = hashlib.sha256(_SEAL_CONTEXTS[3] + random_salt + value).digest()
    return random_salt + check[: _SEAL_TAG_BYTES - RANDOM_SALT_BYTES]


@dataclass(frozen=True)
class KeyVerifier:
    """What the firmware holds to check a key: a digest (hcasim-written) or a raw key."""

    stored: int
    is_digest: bool
    salt: bytes
    #: the digest's version (its seal says which); labs stored before version 2 keep 1
    version: int = DIGEST_VERSION

    def __repr__(self) -> str:  # never show key material
        return f"KeyVerifier(is_digest={self.is_digest})"

    def matches(self, key: int) -> bool:
        """Tell whether ``key`` is the key this verifier was made from, in constant time."""
        if not 0 <= key < 1 << KEY_BITS:
            return False
        if self.is_digest:
            candidate = key_digest(key, self.salt, self.version) if key else 0
        else:
            candidate = key
        return hmac.compare_digest(candidate.to_bytes(8, "big"), self.stored.to_bytes(8, "big"))


def verifier_from_tags(stored: int, seal: bytes | None, salt: bytes) -> KeyVerifier | None:
    """Interpret the key tag and seal found on flash; None means no key is set."""
    if stored == 0:
        return None
    if seal is not None and len(seal) == _SEAL_TAG_BYTES:
        for version in (2, 1):  # a full 8-byte seal first: the older forms still verify
            if hmac.compare_digest(seal, seal_for(stored, version)):
                return KeyVerifier(stored=stored, is_digest=True, salt=salt, version=version)
        random_salt = seal[:RANDOM_SALT_BYTES]
        if hmac.compare_digest(seal, seal_for(stored, 3, random_salt)):
            return KeyVerifier(stored=stored, is_digest=True, salt=salt + random_salt, version=3)
    return KeyVerifier(stored=stored, is_digest=False, salt=salt)


def parse_key(text: str) -> int | None:
    """Parse a key as mstflint does (strtoull base 16); None when the syntax is refused.

    Mirrors ``SubCommand::getGUIDFromStr`` (mstflint v4.21.0-1 flint/subcommands.cpp:883-903):
    leading whitespace, a sign and a ``0x`` prefix are accepted, ``-N`` wraps modulo 2**64,
    any trailing character or a value past 64 bits is refused, and the empty string is 0
    (strtoull converts nothing and leaves the end pointer on the terminating NUL).
    """
    i, n = 0, len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    negative = False
    if i < n and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    if text[i : i + 2] in ("0x", "0X") and i + 2 < n and _is_hex(text[i + 2]):
        i += 2
    j = i
    while j < n and _is_hex(text[j]):
        j += 1
    if j == i:
        return 0 if text == "" else None
    if j != n:
        return None
    value = int(text[i:j], 16)
    if value >= 1 << KEY_BITS:
        return None
    return (-value) % (1 << KEY_BITS) if negative else value


def _is_hex(c: str) -> bool:
    return c in "0123456789abcdefABCDEF"


def image_with_key(image: bytes, key: int) -> bytes:
    """Return an FS2 image whose HwAccessKey tag holds ``key`` the way hcasim keeps it.

    Key 0 clears the tag (``HW Access Key: Disabled``); any other key is stored as its
    digest (version 3: salted with the image's node GUID and the device's random salt,
    kept in the seal tag). The random salt is drawn once per device, at its first
    ``set_key``, and kept in the seal tag from then on, key or no key: the same key on the
    same device gives the same digest, which is how the firmware tells at a driver restart
    that the key in force is unchanged (an ``hw_access enable`` then stays; the seed's
    driver-restart rule), without ever holding the key. Raises ``fs2.ImageError`` with
    mstflint's wording when the image has no key tag (firmware built without
    ``cr_protection_en``).
    """
    from hcasim.devices import fs2

    info = fs2.parse_image(image)
    if info.hw_access_key is None:
        raise fs2.ImageError("The image does not support this operation.")
    guid = info.guids[0].to_bytes(8, "big")
    current = fs2.image_info_tag(image, fs2.TAG_KEY_DIGEST_SEAL)
    kept = current[:RANDOM_SALT_BYTES] if current is not None else b""
    random_salt = kept if any(kept) else os.urandom(RANDOM_SALT_BYTES)
    stored = key_digest(key, guid + random_salt) if key else 0
    image = fs2.with_image_info_tag(image, fs2.TAG_HW_ACCESS_KEY, stored.to_bytes(8, "big"))
    if current is not None:
        seal = (seal_for(stored, random_salt=random_salt) if key
                else random_salt + bytes(_SEAL_TAG_BYTES - RANDOM_SALT_BYTES))
        image = fs2.with_image_info_tag(image, fs2.TAG_KEY_DIGEST_SEAL, seal)
    return image
