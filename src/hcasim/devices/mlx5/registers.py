"""Crypto-officer register layouts, declared once as field tables.

Source: the register database shipped with Debian's ``mstflint`` 4.21 package,
``prm_dbs/hca/ext/register_access_table.adb`` (docs/sources.md §18). Its offsets are
written ``BYTE.BIT`` and its sizes ``BYTES.BITS``; a sub-dword field at ``B.b`` of width ``w``
occupies bits ``b .. b+w-1`` (LSB = 0) of the big-endian dword at byte ``B``. Each field below is
declared with :func:`adb` in exactly that notation, so a table can be checked line by line
against the database; :class:`Layout` turns it into one absolute MSB-first bit offset (the
``mlx5_ifc.h`` convention) from which packing, unpacking and printing all follow.

Register ids (``reg_id`` enum of the same database, and DPDK ``mlx5_prm.h:4853-4860``):
CRYPTO_OPERATIONAL = 0xC002, IMPORT_KEK_HANDLE = 0xC004, CREDENTIAL_HANDLE = 0xC005.

This module only encodes and decodes; what a write *means* is decided by the crypto engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Union

__all__ = [
    "CREDENTIAL_HANDLE",
    "CREDENTIAL_OBJ",
    "CRYPTO_LOGIN_OBJ",
    "CRYPTO_OPERATIONAL",
    "IMPORT_KEK_HANDLE",
    "IMPORT_KEK_OBJ",
    "LAYOUTS_BY_REGISTER_ID",
    "Field",
    "Layout",
    "RegisterId",
    "Values",
    "WriteOperation",
    "adb",
]


class RegisterId(IntEnum):
    """Access-register ids of the crypto registers (register database ``reg_id`` enum)."""

    CRYPTO_OPERATIONAL = 0xC002
    IMPORT_KEK_HANDLE = 0xC004
    CREDENTIAL_HANDLE = 0xC005


class WriteOperation(IntEnum):
    """``write_operation`` of the handle registers (database enum; DPDK mlx5_prm.h:4974-4977)."""

    NONE = 0x0
    ADD = 0x1
    DELETE = 0x2


#: A decoded register: integers for numeric fields, bytes for byte arrays, nested mappings
#: for sub-layouts.
Values = Mapping[str, Union[int, bytes, "Values"]]


@dataclass(frozen=True)
class Field:
    """One field: ``offset`` and ``width`` in bits, offset MSB-first from the layout start.

    ``layout`` is set for a nested structure (``subnode`` in the database). Fields wider than
    64 bits that are not nested are byte arrays.
    """

    name: str
    offset: int
    width: int
    access: str = "RW"
    layout: Layout | None = None

    @property
    def is_bytes(self) -> bool:
        """True for byte-array fields (credentials, keys)."""
        return self.layout is None and self.width > 64

    @property
    def address(self) -> str:
        """The field's position in the database's ``BYTE.BIT`` notation (for printing)."""
        if self.width >= 32 or self.layout is not None:
            return f"0x{self.offset // 8:x}.0"
        dword_bits = (self.offset // 32) * 32
        bit = 32 - (self.offset - dword_bits) - self.width
        return f"0x{dword_bits // 8:x}.{bit}"


def _parse_adb_number(text: str) -> tuple[int, int]:
    byte_part, _, bit_part = text.partition(".")
    return int(byte_part, 16), int(bit_part or "0")


def adb(
    name: str, offset: str, size: str, access: str = "RW", layout: Layout | None = None
) -> Field:
    """Declare a field the way the register database writes it.

    ``offset`` is ``"0xBYTE.BIT"`` and ``size`` is ``"0xBYTES.BITS"``, e.g. ``adb("state",
    "0x10.24", "0x0.4")`` is a 4-bit field in bits 27..24 of the dword at byte 0x10.
    """
    byte, bit = _parse_adb_number(offset)
    size_bytes, size_bits = _parse_adb_number(size)
    width = size_bytes * 8 + size_bits
    if width < 32:
        if byte % 4 or bit + width > 32:
            raise ValueError(f"{name}: sub-dword field must sit inside one dword")
        start = byte * 8 + 32 - bit - width
    else:
        if bit:
            raise ValueError(f"{name}: a field of 32 bits or more starts on a byte")
        start = byte * 8
    if layout is not None and layout.size * 8 != width:
        raise ValueError(f"{name}: sub-layout {layout.name} is not {width} bits")
    return Field(name, start, width, access, layout)


class Layout:
    """A register or object layout: a name, a size in bytes and its field table."""

    def __init__(self, name: str, size: int, fields: tuple[Field, ...]) -> None:
        """Check that the fields fit and do not overlap, then keep them in offset order."""
        self.name = name
        self.size = size
        ordered = tuple(sorted(fields, key=lambda f: f.offset))
        end = 0
        for f in ordered:
            if f.offset < end:
                raise ValueError(f"{name}.{f.name} overlaps the previous field")
            end = f.offset + f.width
        if end > size * 8:
            raise ValueError(f"{name}: fields run past {size} bytes")
        self.fields = ordered
        self._by_name = {f.name: f for f in ordered}

    def __repr__(self) -> str:
        return f"Layout({self.name!r}, size=0x{self.size:x}, {len(self.fields)} fields)"

    def field(self, name: str) -> Field:
        """Look a field up by name."""
        return self._by_name[name]

    def pack(self, values: Values) -> bytes:
        """Encode ``values`` (missing fields are zero) into ``size`` bytes."""
        unknown = set(values) - set(self._by_name)
        if unknown:
            raise KeyError(f"{self.name} has no field(s) {sorted(unknown)}")
        out = bytearray(self.size)
        self._pack_into(out, 0, values)
        return bytes(out)

    def _pack_into(self, out: bytearray, base_bits: int, values: Values) -> None:
        for f in self.fields:
            if f.name not in values:
                continue
            value = values[f.name]
            start = base_bits + f.offset
            if f.layout is not None:
                if not isinstance(value, Mapping):
                    raise TypeError(f"{self.name}.{f.name} takes a mapping")
                f.layout._pack_into(out, start, value)
            elif f.is_bytes:
                if not isinstance(value, bytes | bytearray):
                    raise TypeError(f"{self.name}.{f.name} takes bytes")
                if len(value) > f.width // 8:
                    raise ValueError(f"{self.name}.{f.name} holds {f.width // 8} bytes")
                first = start // 8
                out[first : first + len(value)] = value
            else:
                if not isinstance(value, int) or not 0 <= value < (1 << f.width):
                    raise ValueError(f"{self.name}.{f.name} takes 0..2**{f.width}-1")
                _put_bits(out, start, f.width, value)

    def unpack(self, data: bytes | bytearray | memoryview) -> dict[str, int | bytes | Values]:
        """Decode ``size`` bytes (shorter input is zero-extended) into a field dict."""
        raw = bytes(data[: self.size]).ljust(self.size, b"\0")
        return self._unpack_from(raw, 0)

    def _unpack_from(self, raw: bytes, base_bits: int) -> dict[str, int | bytes | Values]:
        result: dict[str, int | bytes | Values] = {}
        for f in self.fields:
            start = base_bits + f.offset
            if f.layout is not None:
                result[f.name] = f.layout._unpack_from(raw, start)
            elif f.is_bytes:
                first = start // 8
                result[f.name] = raw[first : first + f.width // 8]
            else:
                result[f.name] = _get_bits(raw, start, f.width)
        return result

    def describe(self, values: Values, *, hide: frozenset[str] = frozenset()) -> Iterator[str]:
        """Yield ``name address value`` lines (nested fields dotted) for printing.

        Fields named in ``hide`` print as ``<hidden>``: use it for credentials and keys.
        """
        for f in self.fields:
            value = values.get(f.name, 0)
            if f.layout is not None and isinstance(value, Mapping):
                for line in f.layout.describe(value, hide=hide):
                    yield f"{f.name}.{line}"
            elif f.name in hide:
                yield f"{f.name} {f.address} <hidden>"
            elif isinstance(value, bytes | bytearray):
                yield f"{f.name} {f.address} {bytes(value).hex()}"
            else:
                yield f"{f.name} {f.address} 0x{value:x}"


def _put_bits(out: bytearray, start: int, width: int, value: int) -> None:
    first, last = start // 8, (start + width + 7) // 8
    span = (last - first) * 8
    shift = span - (start - first * 8) - width
    chunk = int.from_bytes(out[first:last], "big")
    mask = ((1 << width) - 1) << shift
    chunk = (chunk & ~mask) | (value << shift)
    out[first:last] = chunk.to_bytes(last - first, "big")


def _get_bits(raw: bytes, start: int, width: int) -> int:
    first, last = start // 8, (start + width + 7) // 8
    span = (last - first) * 8
    shift = span - (start - first * 8) - width
    return (int.from_bytes(raw[first:last], "big") >> shift) & ((1 << width) - 1)


# --- layouts (register_access_table.adb node by node) -------------------------------------

#: ``crypto_operational_ext`` (0x80 bytes), register CRYPTO_OPERATIONAL 0xC002.
CRYPTO_OPERATIONAL: Final = Layout(
    "crypto_operational_ext",
    0x80,
    (
        adb("kek_size", "0x0.0", "0x0.4", "WO"),
        adb("wrapped_crypto_going_to_commissioning", "0x0.30", "0x0.1", "RW"),
        adb("wrapped_crypto_operational", "0x0.31", "0x0.1", "RO"),
        adb("credential", "0x8.0", "0x28.0", "WO"),
        adb("kek", "0x30.0", "0x20.0", "WO"),
    ),
)

#: ``crypto_login_obj_ext`` (0x100 bytes): the officer's login inside each handle register;
#: the same layout as the CRYPTO_LOGIN general object 0x1F (rdma-core mlx5_ifc.h:5611-5640).
CRYPTO_LOGIN_OBJ: Final = Layout(
    "crypto_login_obj_ext",
    0x100,
    (
        adb("modify_field_select", "0x0.0", "0x8.0"),
        adb("credential_pointer", "0x10.0", "0x0.24"),
        adb("state", "0x10.24", "0x0.4"),
        adb("session_import_kek_ptr", "0x14.0", "0x0.24"),
        adb("credential", "0x40.0", "0x30.0"),
    ),
)

#: ``credential_obj_ext`` (0x100 bytes).
CREDENTIAL_OBJ: Final = Layout(
    "credential_obj_ext",
    0x100,
    (
        adb("modify_field_select", "0x0.0", "0x8.0"),
        adb("credential_role", "0x8.0", "0x0.8"),
        adb("state", "0x8.24", "0x0.8"),
        adb("credential", "0x40.0", "0x30.0"),
    ),
)

#: ``import_kek_object_ext`` (0x100 bytes).
IMPORT_KEK_OBJ: Final = Layout(
    "import_kek_object_ext",
    0x100,
    (
        adb("modify_field_select", "0x0.0", "0x8.0"),
        adb("key_size", "0x8.8", "0x0.4"),
        adb("state", "0x8.24", "0x0.8"),
        adb("key", "0x40.0", "0x80.0"),
    ),
)

#: ``credential_handle_ext`` (0x300 bytes), register CREDENTIAL_HANDLE 0xC005.
CREDENTIAL_HANDLE: Final = Layout(
    "credential_handle_ext",
    0x300,
    (
        adb("crypto_login_object", "0x0.0", "0x100.0", "RW", CRYPTO_LOGIN_OBJ),
        adb("credential_object", "0x100.0", "0x100.0", "RW", CREDENTIAL_OBJ),
        adb("credential_id", "0x200.0", "0x0.24", "INDEX"),
        adb("write_operation", "0x200.24", "0x0.4", "WO"),
    ),
)

#: ``import_kek_handle_ext`` (0x300 bytes), register IMPORT_KEK_HANDLE 0xC004.
IMPORT_KEK_HANDLE: Final = Layout(
    "import_kek_handle_ext",
    0x300,
    (
        adb("crypto_login_object", "0x0.0", "0x100.0", "RW", CRYPTO_LOGIN_OBJ),
        adb("import_kek_object", "0x100.0", "0x100.0", "RW", IMPORT_KEK_OBJ),
        adb("import_kek_id", "0x200.0", "0x0.24", "INDEX"),
        adb("write_operation", "0x200.24", "0x0.4", "WO"),
    ),
)

LAYOUTS_BY_REGISTER_ID: Final[dict[int, Layout]] = {
    RegisterId.CRYPTO_OPERATIONAL: CRYPTO_OPERATIONAL,
    RegisterId.IMPORT_KEK_HANDLE: IMPORT_KEK_HANDLE,
    RegisterId.CREDENTIAL_HANDLE: CREDENTIAL_HANDLE,
}
