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
from collections.abc import Callable, Sequence
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

    ``decode`` and ``encode`` are Python functions generated from the field table the
    first time the layout is used, as :mod:`dataclasses` generates ``__init__``.  The bit
    fields are read (and written) with one :mod:`struct` call over the big-endian 32-bit
    words that hold them (words holding none are skipped), so each field costs a shift
    and a mask of a small integer, whatever the size of the layout; raw bytes, text,
    host-order integers and byte-aligned arrays are sliced or packed on their own.
    """

    __slots__ = ("specs", "names", "size", "fetch", "decode", "encode")
    specs: tuple[FieldSpec, ...]
    names: tuple[str, ...]
    size: int
    fetch: Callable[[Any], tuple[Any, ...]]  # all field values of an instance, in order
    decode: Callable[[Buffer, int], Any]  # buffer, offset -> instance
    encode: Callable[[Any], bytearray]  # instance -> SIZE bytes

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
        for spec in specs:
            if spec.kind in ("raw", "text") and (spec.bit % 8 or spec.width % 8):
                raise TypeError(f"{cls.__name__}.{spec.name}: byte fields must be "
                                "byte-aligned")
        self.specs = tuple(specs)
        self.names = tuple(s.name for s in specs)
        getter = operator.attrgetter(*self.names)
        self.fetch = getter if len(self.names) > 1 else (lambda obj: (getter(obj),))
        self.decode, self.encode = _Generator(cls, self.specs).build()

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


def _bad_value(name: str, value: Any, bits: int) -> ValueError:
    return ValueError(f"{name}={value!r} does not fit in {bits} bits")


def _text_value(data: Buffer) -> str:
    return bytes(data).split(b"\0", 1)[0].decode("utf-8", errors="replace")


_STD = {8: "B", 16: "H", 32: "I", 64: "Q"}


class _Generator:
    """Writes the source of one layout's decode and encode functions (see :class:`_Codec`)."""

    def __init__(self, cls: type[Layout], specs: tuple[FieldSpec, ...]) -> None:
        self.cls = cls
        self.specs = specs
        self.size = cls.SIZE
        # 32-bit words when the layout is a whole number of them (every MAD layout), else
        # bytes, so the struct never reads past SIZE
        self.unit = 32 if self.size % 4 == 0 else 8
        self.env: dict[str, Any] = {"cls": cls, "_bad": _bad_value, "_text": _text_value}
        self.units: set[int] = set()

    def _name(self, prefix: str, value: Any) -> str:
        name = f"_{prefix}{len(self.env)}"
        self.env[name] = value
        return name

    def _span(self, bit: int, width: int) -> tuple[int, int]:
        first, last = bit // self.unit, (bit + width - 1) // self.unit
        self.units.update(range(first, last + 1))
        return first, last

    def _read(self, bit: int, width: int) -> str:
        """Expression for the bit field's value, from the unpacked words ``w<i>``."""
        first, last = self._span(bit, width)
        u = self.unit
        if first == last:
            word = f"w{first}"
        else:
            joined = " | ".join(f"w{i} << {(last - i) * u}" for i in range(first, last + 1))
            word = f"({joined})"
        shift = (last + 1) * u - (bit + width)
        expr = f"({word} >> {shift})" if shift else word
        if shift or width != (last - first + 1) * u:
            expr = f"({expr} & {(1 << width) - 1:#x})"
        return expr

    def _write(self, value: str, bit: int, width: int, parts: dict[int, list[str]]) -> None:
        """Add the bit field's share of each word it touches to ``parts``."""
        first, last = self._span(bit, width)
        u = self.unit
        end = bit + width
        for i in range(first, last + 1):
            lo, hi = max(bit, i * u), min(end, (i + 1) * u)
            piece = f"({value} >> {end - hi})" if end - hi else value
            if i != first:  # lower words take only their bits
                piece = f"({piece} & {(1 << (hi - lo)) - 1:#x})"
            shift = (i + 1) * u - hi
            parts.setdefault(i, []).append(f"{piece} << {shift}" if shift else piece)

    def _words_struct(self) -> tuple[str, list[int]]:
        used = sorted(self.units)
        size = self.unit // 8
        code = "I" if size == 4 else "B"
        fmt, at = ">", 0
        for i in used:
            if i > at:
                fmt += f"{(i - at) * size}x"
            fmt += code
            at = i + 1
        if at * size < self.size:
            fmt += f"{self.size - at * size}x"
        return self._name("words", struct.Struct(fmt)), used

    def build(self, params: str = "obj", sources: Sequence[str] | None = None,
              as_bytes: bool = False) -> tuple[Callable[[Buffer, int], Any], Callable[..., Any]]:
        """Compile the decode and encode functions.

        The encoder takes ``params`` and computes field ``i`` as the Python expression
        ``sources[i]`` (default: the attributes of one instance, ``obj``); it returns a
        bytearray, or bytes with ``as_bytes``.
        """
        if sources is None:
            sources = [f"obj.{spec.name}" for spec in self.specs]
        dec_values: list[str] = []
        enc_checks: list[str] = []
        enc_after: list[str] = []
        parts: dict[int, list[str]] = {}
        for index, spec in enumerate(self.specs):
            var = f"f{index}"
            name = spec.name
            enc_checks.append(f"    {var} = {sources[index]}")
            start, size = spec.bit // 8, spec.width // 8
            if spec.kind == "uint":
                dec_values.append(self._read(spec.bit, spec.width))
                enc_checks.append(f"    if not 0 <= {var} <= {(1 << spec.width) - 1:#x}: "
                                  f"raise _bad({name!r}, {var}, {spec.width})")
                self._write(var, spec.bit, spec.width, parts)
            elif spec.kind == "array":
                code = _STD.get(spec.width)
                limit = (1 << spec.width) - 1
                if spec.bit % 8 == 0 and spec.stride == spec.width and code:
                    fmt = self._name("array", struct.Struct(f">{spec.count}{code}"))
                    dec_values.append(f"{fmt}.unpack_from(buf, base + {start})")
                    enc_after += [
                        f"    if len({var}) != {spec.count}: raise ValueError("
                        f"f'{name} needs {spec.count} values, got {{len({var})}}')",
                        f"    if min({var}) < 0 or max({var}) > {limit:#x}: raise ValueError("
                        f"'{name}: values must fit in {spec.width} bits')",
                        f"    {fmt}.pack_into(buf, {start}, *{var})",
                    ]
                    continue
                elements = [self._read(spec.bit + k * spec.stride, spec.width)
                            for k in range(spec.count)]
                dec_values.append("(" + ", ".join(elements) + ",)")
                enc_checks += [
                    f"    if len({var}) != {spec.count}: raise ValueError("
                    f"'{name} needs {spec.count} values')",
                    f"    if min({var}) < 0 or max({var}) > {limit:#x}:",
                    f"        for e in {var}:",
                    f"            if not 0 <= e <= {limit:#x}: raise ValueError("
                    f"f'{name}: {{e!r}} does not fit in {spec.width} bits')",
                ]
                for k in range(spec.count):
                    self._write(f"{var}[{k}]", spec.bit + k * spec.stride, spec.width, parts)
            elif spec.kind == "raw":
                dec_values.append(f"bytes(buf[base + {start}:base + {start + size}])")
                enc_after += [
                    f"    if len({var}) > {size}: raise ValueError("
                    f"f'{name}: {{len({var})}} bytes do not fit in {size}')",
                    f"    buf[{start}:{start} + len({var})] = {var}",
                ]
            elif spec.kind == "text":
                dec_values.append(f"_text(buf[base + {start}:base + {start + size}])")
                enc_after += [
                    f"    {var} = {var}.encode('utf-8')[:{size}]",
                    f"    buf[{start}:{start} + len({var})] = {var}",
                ]
            else:  # host
                order = "<" if sys.byteorder == "little" else ">"
                fmt = self._name("host", struct.Struct(order + _STD[spec.width]))
                limit = (1 << spec.width) - 1
                dec_values.append(f"{fmt}.unpack_from(buf, base + {start})[0]")
                enc_after += [
                    f"    if not 0 <= {var} <= {limit:#x}: raise _bad({name!r}, {var}, "
                    f"{spec.width})",
                    f"    {fmt}.pack_into(buf, {start}, {var})",
                ]
        short = (f"f'{self.cls.__name__}: needs {self.size} bytes, got {{len(buf) - base}}'")
        decode = ["def decode(buf, base):",
                  f"    if len(buf) - base < {self.size}: raise ValueError({short})"]
        encode = [f"def encode({params}):", *enc_checks]
        if self.units:
            words, used = self._words_struct()
            names = ", ".join(f"w{i}" for i in used)
            decode.append(f"    {names}, = {words}.unpack_from(buf, base)")
            values = ", ".join(" | ".join(parts[i]) for i in used)
            encode.append(f"    buf = bytearray({words}.pack({values}))")
        else:
            encode.append(f"    buf = bytearray({self.size})")
        decode.append(f"    return cls({', '.join(dec_values)})")
        encode += [*enc_after, "    return bytes(buf)" if as_bytes else "    return buf"]
        source = "\n".join(decode) + "\n\n" + "\n".join(encode) + "\n"
        namespace: dict[str, Any] = {}
        exec(compile(source, f"<layout {self.cls.__qualname__}>", "exec"), self.env, namespace)
        return namespace["decode"], namespace["encode"]


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
        codec = cls.__dict__.get("_codec_cache") or cls._codec()
        decoded: Self = codec.decode(buf, offset)
        return decoded

    @classmethod
    def compile_packer(cls, params: str, fields: dict[str, str],
                       env: dict[str, Any] | None = None) -> Callable[..., bytes]:
        """A fast encoder: a function of ``params`` (Python parameter syntax) returning the
        ``SIZE`` encoded bytes whose fields are the Python expressions ``fields`` (one per
        declared field, by name; names in ``env`` are visible to them).  Values are checked
        as :meth:`encode` checks them; no instance is built.
        """
        specs = cls._codec().specs
        missing = [s.name for s in specs if s.name not in fields]
        unknown = sorted(set(fields) - {s.name for s in specs})
        if missing or unknown:
            raise TypeError(f"{cls.__name__}.compile_packer: missing {missing}, "
                            f"unknown {unknown}")
        generator = _Generator(cls, specs)
        generator.env.update(env or {})
        _, packer = generator.build(params, [f"({fields[s.name]})" for s in specs],
                                    as_bytes=True)
        return packer

    def values(self) -> tuple[Any, ...]:
        """The field values in declaration order."""
        return type(self)._codec().fetch(self)

    def encode(self) -> bytes:
        """Encode into exactly ``SIZE`` bytes; reserved bits are zero.

        Raises ``ValueError`` naming the field when a value does not fit.
        """
        cls = type(self)
        codec = cls.__dict__.get("_codec_cache") or cls._codec()
        return bytes(codec.encode(self))

    def encode_into(self, buf: bytearray, offset: int = 0) -> None:
        """Write the ``SIZE`` encoded bytes into ``buf`` at ``offset``."""
        size = type(self).SIZE
        if len(buf) - offset < size:
            raise ValueError(f"{type(self).__name__} needs {size} bytes")
        buf[offset:offset + size] = type(self)._codec().encode(self)

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
