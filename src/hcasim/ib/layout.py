"""Declarative wire layouts: declare a packet's fields once, get encode, decode and dump.

A layout is a slotted dataclass deriving from :class:`Layout` whose fields are declared
with :func:`uint`, :func:`array`, :func:`raw`, :func:`text` or :func:`host_uint`, each
giving the field's position.  Positions follow the IBTA convention: bit offsets count
from the most significant bit of byte 0 (bit 0 is the MSB of byte 0, bit 8 the MSB of
byte 1), so a field at bit 128 with width 16 occupies bytes 16-17.  libibmad writes the
same positions as ``BITSOFFS(offset, width)`` in ``libibmad/fields.c``; fields whose
libibmad counterpart is known carry its name in ``ref`` so tests can cross-check them.

Example::

    @dataclass(slots=True)
    class Example(Layout):
        SIZE: ClassVar[int] = 4
        kind: int = uint(0, 4)
        count: int = uint(4, 12)
        lid: int = uint(16, 16, "Lid")

    Example.decode(b"\\x10\\x05\\x00\\x07")   # Example(kind=1, count=5, lid=7)
    Example(kind=1, count=5, lid=7).encode()

The codec is built on first use from the field table, and checks the table: every field
must lie inside ``SIZE`` and no two fields may overlap.  Encoding checks every value's
range and raises ``ValueError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import operator
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

__all__ = [
    "FieldSpec",
    "Layout",
    "array",
    "host_uint",
    "raw",
    "text",
    "uint",
]

_SPEC = "hcasim.ib.layout"

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Where a field lives.

    ``kind`` is ``"uint"`` (big-endian bit field), ``"array"`` (``count`` big-endian
    bit fields ``stride`` bits apart), ``"raw"`` (bytes), ``"text"`` (NUL-padded UTF-8)
    or ``"host"`` (an integer in the host's byte order, for the ibsim socket structs).
    ``bit`` and ``width`` are in bits for every kind.
    """

    kind: str
    bit: int
    width: int
    count: int = 1
    stride: int = 0
    ref: str = ""
    name: str = ""

    @property
    def bits(self) -> range:
        """The bit positions this field covers (for overlap checks)."""
        if self.kind == "array":
            return range(self.bit, self.bit + self.stride * (self.count - 1) + self.width)
        return range(self.bit, self.bit + self.width)


def uint(bit: int, width: int, ref: str = "") -> int:
    """Declare an unsigned big-endian field of ``width`` bits at IBTA bit offset ``bit``."""
    if not 1 <= width <= 64:
        raise ValueError(f"uint width {width} out of range")
    return field(default=0, metadata={_SPEC: FieldSpec("uint", bit, width, ref=ref)})


def host_uint(byte: int, size: int, ref: str = "") -> int:
    """Declare a ``size``-byte unsigned integer in the host's byte order at ``byte``."""
    if size not in (1, 2, 4, 8):
        raise ValueError(f"host integer size {size} not 1, 2, 4 or 8")
    return field(default=0, metadata={_SPEC: FieldSpec("host", byte * 8, size * 8, ref=ref)})


def array(bit: int, count: int, width: int, stride: int | None = None,
          ref: str = "") -> tuple[int, ...]:
    """Declare ``count`` unsigned fields of ``width`` bits, ``stride`` bits apart."""
    step = width if stride is None else stride
    if step < width or count < 1:
        raise ValueError("array stride shorter than its elements, or empty array")
    spec = FieldSpec("array", bit, width, count, step, ref=ref)
    return field(default=(0,) * count, metadata={_SPEC: spec})


def raw(byte: int, size: int, ref: str = "") -> bytes:
    """Declare ``size`` opaque bytes at byte offset ``byte``; shorter values are 0-padded."""
    return field(default=bytes(size), metadata={_SPEC: FieldSpec("raw", byte * 8, size * 8,
                                                                 ref=ref)})


def text(byte: int, size: int, ref: str = "") -> str:
    """Declare a NUL-padded UTF-8 string of at most ``size`` bytes at ``byte``."""
    return field(default="", metadata={_SPEC: FieldSpec("text", byte * 8, size * 8, ref=ref)})


class _Codec:
    """The compiled field table of one layout class.

    Bit fields (``uint`` and sub-byte ``array`` elements) are read and written through
    one big-endian integer covering the whole layout, so each costs a shift and a mask
    in C; byte-aligned arrays, raw bytes, text and host-order integers are sliced or
    packed with :mod:`struct` afterwards.
    """

    __slots__ = ("specs", "names", "size", "bit_fields", "others", "only_bits", "fetch",
                 "shifts", "masks")
    specs: tuple[FieldSpec, ...]
    names: tuple[str, ...]
    size: int
    # (index in the field list, shift, mask) of every plain uint field
    bit_fields: tuple[tuple[int, int, int], ...]
    # (index, kind, first byte, byte length or element plan, struct or None)
    others: tuple[tuple[int, str, int, Any, struct.Struct | None], ...]
    only_bits: bool
    fetch: Callable[[Any], tuple[Any, ...]]  # all field values of an instance, in order
    shifts: tuple[int, ...]  # of the bit fields, when the layout has nothing else
    masks: tuple[int, ...]

    def __init__(self, cls: type[Layout]) -> None:
        self.size = cls.SIZE
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        specs: list[FieldSpec] = []
        for f in dataclasses.fields(cls):
            spec = f.metadata.get(_SPEC)
            if spec is None:
                raise TypeError(f"{cls.__name__}.{f.name} is not declared with a layout field")
            specs.append(dataclasses.replace(spec, name=f.name))
        self._check(cls.__name__, specs)
        total = self.size * 8
        bit_fields: list[tuple[int, int, int]] = []
        others: list[tuple[int, str, int, Any, struct.Struct | None]] = []
        for index, spec in enumerate(specs):
            if spec.kind == "uint":
                bit_fields.append((index, total - spec.bit - spec.width, (1 << spec.width) - 1))
            elif spec.kind == "array":
                code = {8: "B", 16: "H", 32: "I", 64: "Q"}.get(spec.width)
                if spec.bit % 8 == 0 and spec.stride == spec.width and code:
                    fmt = struct.Struct(f">{spec.count}{code}")
                    others.append((index, "packed", spec.bit // 8,
                                   (spec.count, (1 << spec.width) - 1), fmt))
                else:
                    plan = tuple((total - spec.bit - k * spec.stride - spec.width,
                                  (1 << spec.width) - 1) for k in range(spec.count))
                    others.append((index, "bits", 0, plan, None))
            elif spec.kind in ("raw", "text"):
                if spec.bit % 8 or spec.width % 8:
                    raise TypeError(f"{cls.__name__}.{spec.name}: byte fields must be "
                                    "byte-aligned")
                others.append((index, spec.kind, spec.bit // 8, spec.width // 8, None))
            else:  # host
                code = {8: "B", 16: "H", 32: "I", 64: "Q"}[spec.width]
                order = "<" if sys.byteorder == "little" else ">"
                others.append((index, "host", spec.bit // 8, (1 << spec.width) - 1,
                               struct.Struct(order + code)))
        self.specs = tuple(specs)
        self.names = tuple(s.name for s in specs)
        self.bit_fields = tuple(bit_fields)
        self.others = tuple(others)
        self.only_bits = not others
        self.shifts = tuple(shift for _, shift, _ in bit_fields)
        self.masks = tuple(mask for _, _, mask in bit_fields)
        names = self.names
        getter = operator.attrgetter(*names)
        self.fetch = getter if len(names) > 1 else (lambda obj: (getter(obj),))

    def _check(self, cls_name: str, specs: list[FieldSpec]) -> None:
        """Every field inside ``SIZE``, no two fields overlapping."""
        taken: dict[int, str] = {}
        for spec in specs:
            bits = spec.bits
            if bits.start < 0 or bits.stop > self.size * 8:
                raise TypeError(f"{cls_name}.{spec.name} lies outside {self.size} bytes")
            positions = (bits if spec.kind != "array" else
                         [spec.bit + k * spec.stride + w for k in range(spec.count)
                          for w in range(spec.width)])
            for b in positions:
                if b in taken:
                    raise TypeError(f"{cls_name}.{spec.name} overlaps {taken[b]} at bit {b}")
                taken[b] = spec.name

    def decode(self, buf: Buffer, base: int) -> list[Any]:
        """The field values, in declaration order, of the layout at ``buf[base:]``."""
        size = self.size
        if len(buf) - base < size:
            raise ValueError(f"needs {size} bytes, got {len(buf) - base}")
        n = int.from_bytes(buf[base:base + size], "big")
        if self.only_bits:
            return [(n >> shift) & mask for _, shift, mask in self.bit_fields]
        values: list[Any] = [None] * len(self.specs)
        for index, shift, mask in self.bit_fields:
            values[index] = (n >> shift) & mask
        for index, kind, start, extra, fmt in self.others:
            if kind == "packed":
                assert fmt is not None
                values[index] = fmt.unpack_from(buf, base + start)
            elif kind == "bits":
                values[index] = tuple((n >> shift) & mask for shift, mask in extra)
            elif kind == "raw":
                values[index] = bytes(buf[base + start:base + start + extra])
            elif kind == "text":
                data = bytes(buf[base + start:base + start + extra]).split(b"\0", 1)[0]
                values[index] = data.decode("utf-8", errors="replace")
            else:
                assert fmt is not None
                values[index] = fmt.unpack_from(buf, base + start)[0]
        return values

    def encode(self, values: tuple[Any, ...] | list[Any]) -> bytearray:
        """``SIZE`` bytes holding ``values`` (declaration order); reserved bits zero."""
        n = 0
        if self.only_bits:
            for v, shift, mask in zip(values, self.shifts, self.masks, strict=True):
                if not 0 <= v <= mask:
                    raise ValueError(f"{self.names[self.shifts.index(shift)]}={v!r} does not "
                                     f"fit in {mask.bit_length()} bits")
                n |= v << shift
            return bytearray(n.to_bytes(self.size, "big"))
        for index, shift, mask in self.bit_fields:
            v = values[index]
            if not 0 <= v <= mask:
                raise ValueError(f"{self.names[index]}={v!r} does not fit in "
                                 f"{mask.bit_length()} bits")
            n |= v << shift
        if self.only_bits:
            return bytearray(n.to_bytes(self.size, "big"))
        for index, kind, _, extra, _ in self.others:
            if kind == "bits":
                v = values[index]
                if len(v) != len(extra):
                    raise ValueError(f"{self.names[index]} needs {len(extra)} values")
                for e, (shift, mask) in zip(v, extra, strict=True):
                    if not 0 <= e <= mask:
                        raise ValueError(f"{self.names[index]}: {e!r} does not fit in "
                                         f"{mask.bit_length()} bits")
                    n |= e << shift
        buf = bytearray(n.to_bytes(self.size, "big"))
        for index, kind, start, extra, fmt in self.others:
            v = values[index]
            name = self.names[index]
            if kind == "packed":
                assert fmt is not None
                count, limit = extra
                if len(v) != count:
                    raise ValueError(f"{name} needs {count} values, got {len(v)}")
                if any(not 0 <= e <= limit for e in v):
                    raise ValueError(f"{name}: values must fit in {limit.bit_length()} bits")
                fmt.pack_into(buf, start, *v)
            elif kind == "raw":
                if len(v) > extra:
                    raise ValueError(f"{name}: {len(v)} bytes do not fit in {extra}")
                buf[start:start + len(v)] = v
            elif kind == "text":
                data = v.encode("utf-8")[:extra]
                buf[start:start + len(data)] = data
            elif kind == "host":
                assert fmt is not None
                if not 0 <= v <= extra:
                    raise ValueError(f"{name}={v!r} does not fit in {extra.bit_length()} bits")
                fmt.pack_into(buf, start, v)
        return buf


class Layout:
    """Base of all wire layouts; subclasses are slotted dataclasses with a ``SIZE``."""

    __slots__ = ()
    SIZE: ClassVar[int]
    _codec_cache: ClassVar[_Codec | None] = None

    @classmethod
    def _codec(cls) -> _Codec:
        codec = cls.__dict__.get("_codec_cache")
        if codec is None:
            codec = _Codec(cls)
            cls._codec_cache = codec
        return codec

    @classmethod
    def field_specs(cls) -> tuple[FieldSpec, ...]:
        """The declared fields, in declaration order, with their names filled in."""
        return cls._codec().specs

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        """Decode ``SIZE`` bytes of ``buf`` starting at ``offset``.

        Raises ``ValueError`` if the buffer is too short.
        """
        try:
            values = cls._codec().decode(buf, offset)
        except ValueError as e:
            raise ValueError(f"{cls.__name__}: {e}") from None
        return cls(*values)

    def values(self) -> tuple[Any, ...]:
        """The field values in declaration order."""
        return type(self)._codec().fetch(self)

    def encode(self) -> bytes:
        """Encode into exactly ``SIZE`` bytes; reserved bits are zero.

        Raises ``ValueError`` naming the field when a value does not fit.
        """
        return bytes(type(self)._codec().encode(self.values()))

    def encode_into(self, buf: bytearray, offset: int = 0) -> None:
        """Write the ``SIZE`` encoded bytes into ``buf`` at ``offset``."""
        size = type(self).SIZE
        if len(buf) - offset < size:
            raise ValueError(f"{type(self).__name__} needs {size} bytes")
        buf[offset:offset + size] = type(self)._codec().encode(self.values())

    def dump(self) -> str:
        """One ``name: value`` line per field, for logs and debugging."""
        lines = []
        for spec in type(self)._codec().specs:
            value = getattr(self, spec.name)
            if isinstance(value, bytes):
                shown = value.hex() if any(value) else f"<{len(value)} zero bytes>"
            elif isinstance(value, int) and spec.width > 16:
                shown = f"{value:#x}"
            else:
                shown = repr(value)
            lines.append(f"{spec.name}: {shown}")
        return "\n".join(lines)
