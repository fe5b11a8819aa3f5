"""AES-XTS as the mlx5 crypto engine applies it to a crypto MKey's data.

What the device does (docs/sources.md §17.1, rdma-core
``man/mlx5dv_wr_set_mkey_crypto.3.md`` lines 132-139, 234-247):

* AES-XTS per IEEE Std 1619-2007. The DEK holds ``key1 || key2``; key1 encrypts the data,
  key2 encrypts the tweak (IEEE 1619 / OpenSSL convention, docs/sources.md §15.4).
* A message is cut into consecutive data units of ``data_unit_size`` bytes
  (512/520/4048/4096/4160, enum ``mlx5dv_block_size`` 0..4). Data unit *k* uses the tweak
  ``initial_tweak + k``, where ``initial_tweak`` is a 128-bit **little-endian** number.
  The increment carries over all 128 bits (not public, docs/sources.md §17.2; the choice
  is in docs/crypto.md).
* A data unit whose length is not a multiple of 16 (520, or a short tail) is finished with
  IEEE 1619 ciphertext stealing.
* Keys whose two halves are equal are accepted: DPDK's mlx5 wrapped-key vectors use them
  (docs/sources.md §15.4) while OpenSSL refuses them, so this module implements XTS itself over
  AES-ECB from ``cryptography``.

How it is computed: for a batch of data units the starting tweaks are ECB-encrypted with key2
in one call, the per-block tweaks ``T * alpha**j`` are produced for the whole batch with
vectorised GF(2^128) doubling in numpy, and all data blocks go through key1 in one ECB call.
Batches are sized to stay in the CPU cache, which matters more than the call count.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

__all__ = [
    "AES_BLOCK",
    "DATA_UNIT_SIZES",
    "XtsKey",
    "data_unit_size_bytes",
    "tweak_add",
    "xts_decrypt",
    "xts_encrypt",
]

AES_BLOCK: Final = 16

#: ``enum mlx5dv_block_size`` value -> data unit bytes (rdma-core ``mlx5dv.h``;
#: docs/sources.md §13.3 and §14.9: MLX5DV_BLOCK_SIZE_512=0, _520=1, _4048=2, _4096=3, _4160=4).
DATA_UNIT_SIZES: Final[dict[int, int]] = {0: 512, 1: 520, 2: 4048, 3: 4096, 4: 4160}

_U64 = np.dtype("<u8")
_MASK128: Final = (1 << 128) - 1
#: Bytes of data handled per batch; small enough that tweaks, data and scratch stay in L2.
_BATCH_BYTES: Final = 1024 * 1024
#: Largest shift that _mul_alpha_pow does in one step: the folded-back bits times 0x87 must
#: still fit in the low 64-bit word (s + 7 <= 64).
_MAX_STEP: Final = 56

U64Array = npt.NDArray[np.uint64]
U8Array = npt.NDArray[np.uint8]


def data_unit_size_bytes(block_size_enum: int) -> int:
    """Map an ``mlx5dv_block_size`` enum value (0..4) to its data unit length in bytes.

    Raises ``ValueError`` for values rdma-core's setter refuses (qp.c ``bs_to_bs_selector``).
    """
    try:
        return DATA_UNIT_SIZES[block_size_enum]
    except KeyError:
        raise ValueError(f"data_unit_size enum {block_size_enum} is not 0..4") from None


def tweak_add(initial_tweak: bytes, units: int) -> bytes:
    """Return the little-endian tweak of data unit ``units`` (``initial_tweak + units``).

    The sum wraps modulo 2**128: the model carries the increment over all 128 bits.
    """
    if len(initial_tweak) != AES_BLOCK:
        raise ValueError("initial_tweak must be 16 bytes")
    value = (int.from_bytes(initial_tweak, "little") + units) & _MASK128
    return value.to_bytes(AES_BLOCK, "little")


class XtsKey:
    """An AES-XTS key ``key1 || key2`` (2x128 or 2x256 bits), halves may be equal.

    The key bytes are never shown by ``repr``/``str``.
    """

    __slots__ = ("_key1", "_key2")

    def __init__(self, key: bytes) -> None:
        """Split a 32- or 64-byte XTS key into its data half (key1) and tweak half (key2)."""
        if len(key) not in (32, 64):
            raise ValueError(f"an XTS key is 32 or 64 bytes, not {len(key)}")
        half = len(key) // 2
        self._key1 = bytes(key[:half])
        self._key2 = bytes(key[half:])

    @property
    def bits_per_half(self) -> int:
        """128 or 256: the AES key size of each half."""
        return len(self._key1) * 8

    def __repr__(self) -> str:
        return f"XtsKey(<{self.bits_per_half}-bit halves, hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, XtsKey):
            return NotImplemented
        return self._key1 == other._key1 and self._key2 == other._key2

    def __hash__(self) -> int:
        return hash((self._key1, self._key2))

    def _data_cipher(self, encrypt: bool) -> CipherContext:
        cipher = Cipher(algorithms.AES(self._key1), modes.ECB())
        return cipher.encryptor() if encrypt else cipher.decryptor()

    def _tweak_cipher(self) -> CipherContext:
        return Cipher(algorithms.AES(self._key2), modes.ECB()).encryptor()


def xts_encrypt(
    key: XtsKey | bytes,
    initial_tweak: bytes,
    data: bytes | bytearray | memoryview,
    data_unit_size: int,
) -> memoryview:
    """Encrypt ``data`` as the device does: data units of ``data_unit_size`` bytes,
    tweak ``initial_tweak + k`` (little-endian) for unit *k*. Returns a new writable buffer
    (a ``memoryview`` of bytes; ``bytes(result)`` copies it out).

    A final piece shorter than a data unit is encrypted as a unit of its own (with the next
    tweak) and must be at least 16 bytes; whether the device accepts that length is the
    caller's rule to check (job-size rule, docs/sources.md §13.4).
    """
    return _xts(key, initial_tweak, data, data_unit_size, encrypt=True)


def xts_decrypt(
    key: XtsKey | bytes,
    initial_tweak: bytes,
    data: bytes | bytearray | memoryview,
    data_unit_size: int,
) -> memoryview:
    """Decrypt ``data`` produced by :func:`xts_encrypt` with the same key, tweak and unit."""
    return _xts(key, initial_tweak, data, data_unit_size, encrypt=False)


def _xts(
    key: XtsKey | bytes,
    initial_tweak: bytes,
    data: bytes | bytearray | memoryview,
    data_unit_size: int,
    *,
    encrypt: bool,
) -> memoryview:
    xkey = key if isinstance(key, XtsKey) else XtsKey(key)
    if len(initial_tweak) != AES_BLOCK:
        raise ValueError("initial_tweak must be 16 bytes")
    if data_unit_size < AES_BLOCK:
        raise ValueError("a data unit is at least one AES block")
    src = memoryview(data).cast("B")
    total = len(src)
    full_units, tail = divmod(total, data_unit_size)
    if 0 < tail < AES_BLOCK:
        raise ValueError(f"a final piece of {tail} bytes is shorter than one AES block")
    # numpy allocates large buffers on huge pages where it can: far fewer page faults than a
    # zero-filled bytearray of the same size.
    dst = np.empty(total, dtype=np.uint8).data
    if total == 0:
        return dst
    tweak0 = int.from_bytes(initial_tweak, "little")
    engine = _UnitBatcher(xkey, encrypt)
    batch_units = max(1, _BATCH_BYTES // data_unit_size)
    for first in range(0, full_units, batch_units):
        count = min(batch_units, full_units - first)
        lo, hi = first * data_unit_size, (first + count) * data_unit_size
        engine.run(src[lo:hi], dst[lo:hi], count, data_unit_size, tweak0 + first)
    if tail:
        lo = full_units * data_unit_size
        engine.run(src[lo:], dst[lo:], 1, tail, tweak0 + full_units)
    return dst


class _Workspace:
    """Scratch arrays for batches of ``units`` data units of ``columns`` tweak columns.

    Allocated once per call and shape: fresh multi-megabyte numpy arrays per batch would each
    pay page faults, which cost more than the arithmetic.
    """

    def __init__(self, units: int, columns: int) -> None:
        self.lo = np.empty((columns, units), dtype=np.uint64)
        self.hi = np.empty((columns, units), dtype=np.uint64)
        self.carry = np.empty((min(columns, _MAX_STEP), units), dtype=np.uint64)
        self.table = np.empty((units, columns, 2), dtype=_U64)
        size = units * columns * AES_BLOCK
        self.mixed = np.empty(size, dtype=np.uint8)
        # update_into wants room for one more block than it is given.
        self.crypted = np.empty(size + AES_BLOCK, dtype=np.uint8)


class _UnitBatcher:
    """Processes batches of equal-length data units with one key and direction."""

    def __init__(self, key: XtsKey, encrypt: bool) -> None:
        self._encrypt = encrypt
        self._data = key._data_cipher(encrypt)
        self._tweak = key._tweak_cipher()
        self._spaces: dict[tuple[int, int], _Workspace] = {}

    def _workspace(self, units: int, columns: int) -> _Workspace:
        space = self._spaces.get((units, columns))
        if space is None:
            space = self._spaces[(units, columns)] = _Workspace(units, columns)
        return space

    def _ecb(self, ctx: CipherContext, blocks: U8Array) -> U8Array:
        """Run 16-byte blocks through an ECB context in one call (small inputs)."""
        out = np.empty(blocks.size + AES_BLOCK, dtype=np.uint8)
        written = ctx.update_into(np.ascontiguousarray(blocks).data, out.data)
        return out[:written].reshape(blocks.shape)

    def _tweak_table(self, space: _Workspace, first_tweak: int, units: int) -> U8Array:
        """Fill ``space.table`` with ``E_key2(first_tweak + k) * alpha**j`` for unit k, block j.

        Returns it as a (units, columns, 16) byte array.
        """
        start = first_tweak & _MASK128
        base_lo = np.uint64(start & 0xFFFF_FFFF_FFFF_FFFF)
        lo0 = np.arange(units, dtype=np.uint64) + base_lo
        # A 64-bit wrap of the low word carries into the high word (128-bit increment); a
        # carry out of bit 127 wraps to zero in uint64 arithmetic, i.e. modulo 2**128.
        hi0 = (lo0 < base_lo).astype(np.uint64) + np.uint64(start >> 64)
        plain = np.empty((units, 2), dtype=_U64)
        plain[:, 0] = lo0
        plain[:, 1] = hi0
        encrypted = self._ecb(self._tweak, plain.view(np.uint8)).view(_U64)
        # Low and high words live in separate planes indexed [column, unit]: every doubling
        # step then reads and writes contiguous row blocks, and the number of numpy calls per
        # batch depends only on the number of columns. They are interleaved once at the end.
        lo, hi = space.lo, space.hi
        columns = lo.shape[0]
        lo[0] = encrypted[:, 0]
        hi[0] = encrypted[:, 1]
        filled = 1
        while filled < columns:
            step = min(filled, columns - filled, _MAX_STEP)
            src = slice(filled - step, filled)
            dst = slice(filled, filled + step)
            _mul_alpha_pow(lo[src], hi[src], step, lo[dst], hi[dst], space.carry[:step])
            filled += step
        table = space.table
        table[:, :, 0] = lo.T
        table[:, :, 1] = hi.T
        return table.view(np.uint8).reshape(units, columns, AES_BLOCK)

    def run(
        self,
        src: memoryview,
        dst: memoryview,
        units: int,
        unit_len: int,
        first_tweak: int,
    ) -> None:
        """Encrypt or decrypt ``units`` data units of ``unit_len`` bytes from src into dst."""
        blocks, rest = divmod(unit_len, AES_BLOCK)
        columns = blocks + (1 if rest else 0)
        space = self._workspace(units, columns)
        table = self._tweak_table(space, first_tweak, units)
        s = np.frombuffer(src, dtype=np.uint8).reshape(units, unit_len)
        d = np.frombuffer(dst, dtype=np.uint8).reshape(units, unit_len)
        bulk = blocks if rest == 0 else blocks - 1
        if bulk:
            width = bulk * AES_BLOCK
            tw = table[:, :bulk, :].reshape(units, width)
            mixed = space.mixed[: units * width].reshape(units, width)
            np.bitwise_xor(s[:, :width], tw, out=mixed)
            written = self._data.update_into(space.mixed[: units * width].data, space.crypted.data)
            crypted = space.crypted[:written].reshape(units, width)
            np.bitwise_xor(crypted, tw, out=d[:, :width])
        if rest:
            self._steal(s, d, table, blocks, rest)

    def _steal(self, s: U8Array, d: U8Array, table: U8Array, blocks: int, rest: int) -> None:
        """IEEE 1619-2007 §5.3.2 / §5.4.2 ciphertext stealing for the last two blocks."""
        last = slice((blocks - 1) * AES_BLOCK, blocks * AES_BLOCK)
        partial = slice(blocks * AES_BLOCK, blocks * AES_BLOCK + rest)
        t_prev, t_last = table[:, blocks - 1, :], table[:, blocks, :]
        block = self._block
        if self._encrypt:
            cc = block(s[:, last], t_prev)
            pp = np.concatenate([s[:, partial], cc[:, rest:]], axis=1)
            d[:, last] = block(pp, t_last)
            d[:, partial] = cc[:, :rest]
        else:
            pp = block(s[:, last], t_last)
            cc = np.concatenate([s[:, partial], pp[:, rest:]], axis=1)
            d[:, last] = block(cc, t_prev)
            d[:, partial] = pp[:, :rest]

    def _block(self, blocks: U8Array, tweaks: U8Array) -> U8Array:
        """XTS on one block per unit: ``E(b ^ t) ^ t`` (or D) for every row."""
        mixed = np.bitwise_xor(blocks, tweaks)
        return np.bitwise_xor(self._ecb(self._data, mixed), tweaks)


def _mul_alpha_pow(
    lo: U64Array,
    hi: U64Array,
    power: int,
    out_lo: U64Array,
    out_hi: U64Array,
    carry: U64Array,
) -> None:
    """(out_lo, out_hi) = (lo, hi) * alpha**power in GF(2^128), for 1 <= power <= 56.

    Values are 128-bit little-endian (IEEE 1619-2007 §5.2: alpha is x, the modulus is
    x^128 + x^7 + x^2 + x + 1), split into low and high 64-bit words. ``carry`` is scratch of
    the same shape. The bits shifted out at the top are folded back as ``carry * 0x87``, which
    fits in the low word because power + 7 <= 64. Outputs must not overlap inputs.
    """
    if not 1 <= power <= _MAX_STEP:
        raise ValueError(f"power {power} is outside 1..{_MAX_STEP}")
    shift, back = np.uint64(power), np.uint64(64 - power)
    np.right_shift(hi, back, out=carry)
    np.left_shift(hi, shift, out=out_hi)
    out_hi |= lo >> back
    np.left_shift(lo, shift, out=out_lo)
    out_lo ^= carry
    for fold in (1, 2, 7):
        out_lo ^= carry << np.uint64(fold)
