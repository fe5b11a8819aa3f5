"""The layout framework, and encode/decode round trips of every wire layout (hypothesis)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcasim.ib import mad, perf, simproto, smp_attrs, vendor
from hcasim.ib.layout import FieldSpec, Layout, array, host_uint, raw, text, uint

ALL_LAYOUTS: list[type[Layout]] = [
    mad.MadHeader, mad.Mad, mad.Smp, mad.DrSmp, mad.PerfMgtMad,
    smp_attrs.NodeDescription, smp_attrs.NodeInfo, smp_attrs.SwitchInfo, smp_attrs.GuidInfo,
    smp_attrs.PortInfo, smp_attrs.PKeyTable, smp_attrs.SlToVlTable, smp_attrs.VlArbTable,
    smp_attrs.LinearForwardingTable, smp_attrs.MulticastForwardingTable, smp_attrs.SmInfo,
    smp_attrs.Notice, smp_attrs.BadMKeyDetails, perf.ClassPortInfo, perf.PortCounters,
    vendor.ConfigSpaceAccessMad, simproto.SimCtl, simproto.SimClientInfo, simproto.SimVendor,
    simproto.SimPort, simproto.SimRequest,
]


def value_strategy(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Valid values for one declared field."""
    if spec.kind in ("uint", "host"):
        return st.integers(0, (1 << spec.width) - 1)
    if spec.kind == "array":
        return st.tuples(*[st.integers(0, (1 << spec.width) - 1)] * spec.count)
    size = spec.width // 8
    if spec.kind == "raw":
        return st.binary(min_size=size, max_size=size)
    return st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
                   max_size=size).filter(lambda s: len(s.encode()) <= size)


def instances(layout: type[Layout]) -> st.SearchStrategy[Layout]:
    return st.builds(layout, **{s.name: value_strategy(s) for s in layout.field_specs()})


def field_mask(layout: type[Layout]) -> bytes:
    """1 bits where some field lives, 0 for reserved bits."""
    n = 0
    total = layout.SIZE * 8
    for spec in layout.field_specs():
        elements = [spec.bit + k * spec.stride for k in range(spec.count)] \
            if spec.kind == "array" else [spec.bit]
        for bit in elements:
            n |= ((1 << spec.width) - 1) << (total - bit - spec.width)
    return n.to_bytes(layout.SIZE, "big")


@pytest.mark.parametrize("layout", ALL_LAYOUTS, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_encode_decode_round_trip(layout: type[Layout], data: st.DataObject) -> None:
    value = data.draw(instances(layout))
    encoded = value.encode()
    assert len(encoded) == layout.SIZE
    assert layout.decode(encoded) == value
    assert layout.decode(b"\xaa" * 3 + encoded, 3) == value  # at an offset


@pytest.mark.parametrize("layout", [c for c in ALL_LAYOUTS
                                    if all(s.kind != "text" for s in c.field_specs())],
                         ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_decode_encode_keeps_fields_and_clears_reserved(layout: type[Layout],
                                                        data: st.DataObject) -> None:
    blob = data.draw(st.binary(min_size=layout.SIZE, max_size=layout.SIZE))
    mask = field_mask(layout)
    assert layout.decode(blob).encode() == bytes(a & b for a, b in zip(blob, mask, strict=True))


# -- framework rules ----------------------------------------------------------------------------


class Example(Layout):
    SIZE: ClassVar[int] = 8
    kind: int = uint(0, 4)
    count: int = uint(4, 12)
    lid: int = uint(16, 16, "Lid")
    nibbles: tuple[int, ...] = array(32, 4, 4)
    tail: bytes = raw(6, 2)


def test_example_bits() -> None:
    value = Example(kind=1, count=5, lid=7, nibbles=(1, 2, 3, 4), tail=b"\xab")
    assert value.encode() == bytes.fromhex("1005 0007 1234 ab00")
    assert Example.decode(bytes.fromhex("1005000712340000")).nibbles == (1, 2, 3, 4)
    assert "lid: 7" in value.dump()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"kind": 16}, "kind=16 does not fit in 4 bits"),
     ({"lid": -1}, "lid=-1"),
     ({"nibbles": (1, 2, 3)}, "nibbles needs 4 values"),
     ({"nibbles": (1, 2, 3, 16)}, "nibbles"),
     ({"tail": b"abc"}, "tail: 3 bytes do not fit in 2")],
)
def test_encode_rejects_values_that_do_not_fit(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Example(**kwargs).encode()


def test_decode_rejects_short_buffers() -> None:
    with pytest.raises(ValueError, match="Example: needs 8 bytes, got 7"):
        Example.decode(bytes(7))
    with pytest.raises(ValueError):
        smp_attrs.PortInfo.decode(bytes(100), 40)


def test_overlapping_fields_are_refused() -> None:
    class Bad(Layout):
        SIZE: ClassVar[int] = 4
        a: int = uint(0, 8)
        b: int = uint(4, 8)

    with pytest.raises(TypeError, match="b overlaps a at bit 4"):
        Bad().encode()


def test_fields_outside_size_are_refused() -> None:
    class Bad(Layout):
        SIZE: ClassVar[int] = 2
        a: int = uint(8, 16)

    with pytest.raises(TypeError, match="outside 2 bytes"):
        Bad.decode(bytes(2))


def test_text_and_host_fields() -> None:
    class Msg(Layout):
        SIZE: ClassVar[int] = 12
        word: int = host_uint(0, 4)
        name: str = text(4, 8)

    encoded = Msg(word=0xDEADBEEF, name="Hca1").encode()
    assert encoded == b"\xef\xbe\xad\xdeHca1\0\0\0\0"  # x86-64 host order
    assert Msg.decode(encoded).name == "Hca1"
    assert Msg(name="0123456789").encode()[4:] == b"01234567"  # truncated to the field


def test_encode_into_writes_at_offset() -> None:
    buf = bytearray(b"\xff" * 12)
    Example(lid=0x102).encode_into(buf, 2)
    assert buf == bytearray(b"\xff\xff" + bytes.fromhex("0000 0102 0000 0000") + b"\xff\xff")


def test_attribute_table() -> None:
    assert smp_attrs.SMP_ATTRIBUTES[0x15] is smp_attrs.PortInfo
    assert smp_attrs.SMP_ATTRIBUTES[0x02] is smp_attrs.Notice
    for attr_id, layout in smp_attrs.SMP_ATTRIBUTES.items():
        assert layout.SIZE <= mad.SMP_DATA_SIZE, attr_id


def test_compile_packer_is_encode_without_an_instance() -> None:
    pack = Example.compile_packer("k, n", {"kind": "k", "count": "n * 2", "lid": "LID",
                                           "nibbles": "(1, 2, 3, k)", "tail": "b'\\xab'"},
                                  {"LID": 7})
    assert pack(1, 2) == Example(kind=1, count=4, lid=7, nibbles=(1, 2, 3, 1),
                                 tail=b"\xab").encode()
    with pytest.raises(ValueError, match="kind=16 does not fit in 4 bits"):
        pack(16, 0)
    with pytest.raises(TypeError, match="missing"):
        Example.compile_packer("k", {"kind": "k"})
    with pytest.raises(TypeError, match="unknown"):
        Example.compile_packer("k", {"kind": "k", "count": "0", "lid": "0", "nibbles": "k",
                                     "tail": "b''", "extra": "0"})


# -- the classes Layout makes (what @dataclass(slots=True) made of them before) ------------------


def test_layout_classes_behave_as_slotted_dataclasses() -> None:
    value = Example(kind=1, lid=7)
    assert repr(value) == ("Example(kind=1, count=0, lid=7, nibbles=(0, 0, 0, 0), "
                           "tail=b'\\x00\\x00')")
    assert Example(1, 0, 7) == value and value != Example(kind=2, lid=7)
    assert value.__eq__(object()) is NotImplemented
    assert Example.__match_args__ == ("kind", "count", "lid", "nibbles", "tail")
    with pytest.raises(TypeError, match="unhashable"):
        hash(value)
    with pytest.raises(AttributeError):
        value.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="unexpected keyword argument 'kin'"):
        Example(kin=1)  # type: ignore[call-arg]
    # embedded layouts get a fresh instance each, inherited fields come first
    assert mad.Smp().data == bytes(64) and vendor.ConfigSpaceAccessMad.__match_args__[0] == \
        "base_version"
    assert smp_attrs.PortInfo.__slots__ and not mad.Smp.__slots__.count("base_version")


def test_dataclasses_functions_accept_layouts() -> None:
    import dataclasses

    value = Example(kind=1, lid=7)
    assert dataclasses.is_dataclass(value)
    assert dataclasses.replace(value, lid=9) == Example(kind=1, lid=9)
    assert [f.name for f in dataclasses.fields(mad.Smp)][:2] == ["base_version", "mgmt_class"]
    assert dataclasses.fields(Example)[0].metadata["hcasim.ib.layout"] == \
        Example.spec("kind")
    assert dataclasses.asdict(value)["nibbles"] == (0, 0, 0, 0)


def test_a_dataclass_decorator_on_a_layout_is_refused() -> None:
    from dataclasses import dataclass

    for decorate in (dataclass, dataclass(slots=True)):
        with pytest.raises(AttributeError, match="drop the @dataclass decorator"):
            @decorate
            class Twice(Layout):
                SIZE: ClassVar[int] = 4
                a: int = uint(0, 8)
