"""Crypto-officer register layouts, declared once as field tables.

Source: the register database shipped with Debian's ``mstflint`` 4.21 package,
``prm_dbs/hca/ext/register_access_table.adb`` (docs/sources.md §18). Its offsets are
written ``BYTE.BIT`` and its sizes ``BYTES.BITS``; a sub-dword field at ``B.b`` of width ``w``
occupies bits ``b .. b+w-1`` (LSB = 0) of the big-endian dword at byte ``B``. Each field below is
declared with :func:`adb` in exactly that notation, so a table can be checked line by line
against the database; :class:`Layout` makes each table an :class:`hcasim.ib.layout.Layout`
(one absolute MSB-first bit offset per field, the ``mlx5_ifc.h`` convention), whose
generated codec packs and unpacks it, and keeps a view of its values as mappings.

Register ids (``reg_id`` enum of the same database, and DPDK ``mlx5_prm.h:4853-4860``):
CRYPTO_OPERATIONAL = 0xC002, IMPORT_KEK_HANDLE = 0xC004, CREDENTIAL_HANDLE = 0xC005.

This module only encodes and decodes; what a write *means* is decided by the crypto engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Final, Union

from hcasim.ib.layout import FieldSpec, layout_class, nested
from hcasim.ib.layout import Layout as WireLayout
from hcasim.ib.layout import adb as layout_adb

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
    """One field of a register table: its :mod:`hcasim.ib.layout` field, the database's
    access mode, and for a nested structure (``subnode`` in the database) the sub-table."""

    name: str
    declaration: Any = field(repr=False, compare=False)
    access: str = "RW"
    layout: Layout | None = None
    spec: FieldSpec | None = None

    def _spec(self) -> FieldSpec:
        if self.spec is None:
            raise TypeError(f"{self.name} is not part of a table yet")
        return self.spec

    @property
    def offset(self) -> int:
        """Bit offset, MSB first from the layout start."""
        return self._spec().bit

    @property
    def width(self) -> int:
        """Width in bits."""
        return self._spec().width

    @property
    def is_bytes(self) -> bool:
        """True for byte-array fields (credentials, keys)."""
        return self._spec().kind == "raw"

    @property
    def address(self) -> str:
        """The field's position in the database's ``BYTE.BIT`` notation (for printing)."""
        return self._spec().address


def adb(
    name: str, offset: str, size: str, access: str = "RW", layout: Layout | None = None
) -> Field:
    """Declare a field the way the register database writes it.

    ``offset`` is ``"0xBYTE.BIT"`` and ``size`` is ``"0xBYTES.BITS"``, e.g. ``adb("state",
    "0x10.24", "0x0.4")`` is a 4-bit field in bits 27..24 of the dword at byte 0x10
    (:func:`hcasim.ib.layout.adb`); a ``layout`` is embedded whole at ``offset``.
    """
    if layout is None:
        return Field(name, layout_adb(offset, size), access)
    byte, _, bit = offset.partition(".")
    size_bytes, _, size_bits = size.partition(".")
    if int(bit or "0") or int(size_bits or "0") or int(size_bytes, 16) != layout.size:
        raise ValueError(f"{name}: sub-layout {layout.name} is not {size} bytes at {offset}")
    return Field(name, nested(int(byte, 16), layout.wire), access, layout)


class Layout:
    """A register or object table: a name, a size in bytes and its fields, as an
    :class:`hcasim.ib.layout.Layout` (``wire``) with a view of its values as mappings."""

    def __init__(self, name: str, size: int, fields: tuple[Field, ...]) -> None:
        """Build the layout class of ``fields``; raises ``ValueError`` if they do not fit
        in ``size`` bytes or overlap."""
        self.name = name
        self.size = size
        wire = layout_class(name, size, {f.name: f.declaration for f in fields}, __name__)
        try:
            specs = wire.field_specs()
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        self.wire = wire
        by_name = {f.name: f for f in fields}
        self.fields = tuple(
            replace(by_name[spec.name], spec=spec)
            for spec in sorted(specs, key=lambda spec: spec.bit))
        self._by_name = {f.name: f for f in self.fields}

    def __repr__(self) -> str:
        return f"Layout({self.name!r}, size=0x{self.size:x}, {len(self.fields)} fields)"

    def field(self, name: str) -> Field:
        """Look a field up by name."""
        return self._by_name[name]

    def pack(self, values: Values) -> bytes:
        """Encode ``values`` (missing fields are zero) into ``size`` bytes."""
        return self._instance(values).encode()

    def _instance(self, values: Values) -> WireLayout:
        unknown = set(values) - set(self._by_name)
        if unknown:
            raise KeyError(f"{self.name} has no field(s) {sorted(unknown)}")
        kwargs: dict[str, object] = {}
        for name, value in values.items():
            sub = self._by_name[name].layout
            if sub is not None:
                if not isinstance(value, Mapping):
                    raise TypeError(f"{self.name}.{name} takes a mapping")
                kwargs[name] = sub._instance(value)
            elif isinstance(value, bytearray):
                kwargs[name] = bytes(value)
            else:
                kwargs[name] = value
        return self.wire(**kwargs)

    def unpack(self, data: bytes | bytearray | memoryview) -> dict[str, int | bytes | Values]:
        """Decode ``size`` bytes (shorter input is zero-extended) into a field dict."""
        raw = bytes(data[: self.size]).ljust(self.size, b"\0")
        return self._values(self.wire.decode(raw))

    def _values(self, decoded: WireLayout) -> dict[str, int | bytes | Values]:
        result: dict[str, int | bytes | Values] = {}
        for f in self.fields:
            value = getattr(decoded, f.name)
            result[f.name] = value if f.layout is None else f.layout._values(value)
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
