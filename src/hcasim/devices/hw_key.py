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
#: The version hcasim writes.
DIGEST_VERSION = 2
_DIGEST_CONTEXT = b"hcasim cx3 hw-access-key digest v1"
_DIGEST_CONTEXT_V2 = b"hcasim cx3 hw-access-key digest v2"
_SEAL_CONTEXTS = {1: b"hcasim cx3 hw-access-key seal v1", 2: b"hcasim cx3 hw-access-key seal v2"}


def key_digest(key: int, salt: bytes, version: int = DIGEST_VERSION) -> int:
    """Return the 64-bit flash representation of a non-zero key (never 0).

    ``salt`` is the device's own (its node GUID), so one guess is good for one device only.
    """
    if not 0 < key < 1 << KEY_BITS:
        raise ValueError("the digest is defined for non-zero 64-bit keys")
    secret = key.to_bytes(8, "big")
    if version == 1:
        raw = hashlib.pbkdf2_hmac("sha256", secret, _DIGEST_CONTEXT + salt, _ROUNDS)
    else:
        raw = hashlib.scrypt(secret, salt=_DIGEST_CONTEXT_V2 + salt, n=SCRYPT_N, r=SCRYPT_R,
                             p=SCRYPT_P, maxmem=64 << 20, dklen=32)
    return int.from_bytes(raw[:8], "big") or 1


def seal_for(digest: int, version: int = DIGEST_VERSION) -> bytes:
    """Return the 8-byte seal that marks a key tag value as a digest written by hcasim
    (and says which digest version it is)."""
    return hashlib.sha256(_SEAL_CONTEXTS[version] + digest.to_bytes(8, "big")).digest()[:8]


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
    for version in sorted(_SEAL_CONTEXTS, reverse=True):
        if seal is not None and hmac.compare_digest(seal, seal_for(stored, version)):
            return KeyVerifier(stored=stored, is_digest=True, salt=salt, version=version)
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
    digest, salted with the image's node GUID, and sealed. Raises ``fs2.ImageError`` with
    mstflint's wording when the image has no key tag (firmware built without
    ``cr_protection_en``).
    """
    from hcasim.devices import fs2

    info = fs2.parse_image(image)
    if info.hw_access_key is None:
        raise fs2.ImageError("The image does not support this operation.")
    stored = key_digest(key, info.guids[0].to_bytes(8, "big")) if key else 0
    image = fs2.with_image_info_tag(image, fs2.TAG_HW_ACCESS_KEY, stored.to_bytes(8, "big"))
    if fs2.image_info_tag(image, fs2.TAG_KEY_DIGEST_SEAL) is not None:
        seal = seal_for(stored) if key else bytes(8)
        image = fs2.with_image_info_tag(image, fs2.TAG_KEY_DIGEST_SEAL, seal)
    return image
