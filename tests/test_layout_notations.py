"""The firmware notations of hcasim.ib.layout (dword, adb, nested, in-place fields) and the
layouts declared with them, against byte vectors of the upstream structures."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcasim.devices import cx3, cx3_registers, fs2
from hcasim.hosts import config_space
from hcasim.ib import access_register, simproto, smp_attrs, vendor
from hcasim.ib.layout import FieldSpec, Layout, adb, dword, nested, raw, uint

FIRMWARE_LAYOUTS: list[type[Layout]] = [
    access_register.Operation, vendor.CrModifier, config_space.Mode2Record,
    simproto.SimGuid, simproto.SimGid, simproto.SimIssm, smp_attrs.LinkStateChangeDetails,
    smp_attrs.CapabilityMaskChangeDetails,
    fs2.ImageHeader, fs2.Boot2Header, fs2.PartitionHeader, fs2.TagHeader, fs2.VersionTag,
    fs2.BuildTimeTag, fs2.DeviceTypeTag, fs2.VsdVendorIdTag, fs2.HwAccessKeyTag,
    cx3_registers.HwDevId, cx3_registers.FlashGwCmd, cx3_registers.HcrCommandWord,
    cx3_registers.ToolsHcr, cx3_registers.RunningFwVersion,
    cx3.MadDemuxMailbox, cx3.Eqe, cx3.PortInfoEqe, cx3.TableChangeEqe, cx3.Sl2VlEqe,
    cx3.PortChangeEqe,
]


class LoginDword(Layout):
    """Dwords 16-23 of CRYPTO_LOGIN (rdma-core mlx5_ifc.h:5611-5640), in database notation."""

    SIZE: ClassVar[int] = 8
    credential_pointer: int = adb("0x0.0", "0x0.24")
    state: int = adb("0x0.24", "0x0.4")
    session_import_kek_ptr: int = adb("0x4.0", "0x0.24")


class Outer(Layout):
    SIZE: ClassVar[int] = 24
    head: int = dword(0, 31, 28)
    login: LoginDword = nested(4, LoginDword)
    key: bytes = adb("0xc.0", "0xc.0")  # 96 bits: a byte array


def instances(layout: type[Layout]) -> st.SearchStrategy[Any]:
    """Valid instances of ``layout``, nested layouts included."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for spec in layout.field_specs():
        if spec.kind in ("uint", "host"):
            fields[spec.name] = st.integers(0, (1 << spec.width) - 1)
        elif spec.kind == "array":
            fields[spec.name] = st.tuples(*[st.integers(0, (1 << spec.width) - 1)] * spec.count)
        elif spec.kind == "layout":
            assert spec.layout is not None
            fields[spec.name] = instances(spec.layout)
        else:
            size = spec.width // 8
            fields[spec.name] = st.binary(min_size=size, max_size=size)
    return st.builds(layout, **fields)


@pytest.mark.parametrize("layout", [*FIRMWARE_LAYOUTS, Outer], ids=lambda c: c.__name__)
@given(data=st.data())
def test_round_trip(layout: type[Layout], data: st.DataObject) -> None:
    value = data.draw(instances(layout))
    encoded = value.encode()
    assert len(encoded) == layout.SIZE
    assert layout.decode(encoded) == value
    assert layout.decode(b"\xaa" + encoded, 1) == value


def test_dword_and_adb_name_the_same_bits_as_uint() -> None:
    assert dword(0, 27, 24).spec == uint(4, 4).spec == adb("0x0.24", "0x0.4").spec  # type: ignore
    state = LoginDword.spec("state")
    assert (state.kind, state.bit, state.width) == ("uint", 4, 4)
    wide = Outer.spec("key")
    assert (wide.kind, wide.bit, wide.width) == ("raw", 12 * 8, 96)
    assert uint(0, 64).spec == adb("0x0.0", "0x8.0").spec  # type: ignore


def test_adb_matches_rdma_core_crypto_login() -> None:
    """mlx5_ifc.h:5611-5640: dword 16 = reserved 4 | state 4 | credential_pointer 24,
    dword 20 = reserved 8 | session_import_kek_ptr 24."""
    login = LoginDword(credential_pointer=0xABCDEF, state=1, session_import_kek_ptr=0x123456)
    assert login.encode() == bytes.fromhex("01abcdef00123456")


def test_dword_matches_mstflint_tools_hcr() -> None:
    """mstflint ``mtcr_ul/mtcr_tools_cif.c`` ``tools_cmdif_pack``: in_param in dwords 0-1,
    input_modifier in dword 2, opcode 11:0 and opcode_modifier 15:12 of dword 6, go bit 23."""
    command = cx3_registers.HcrCommandWord(opcode_modifier=1, opcode=cx3_registers.HW_ACCESS_OPCODE)
    hcr = cx3_registers.ToolsHcr(in_param=0x1122334455667788, input_modifier=3, command=command)
    assert hcr.encode().hex() == ("11223344" "55667788" "00000003" "00000000" "00000000"
                                  "00000000" "00001060")
    command.go = 1
    assert cx3_registers.dword_value(command) == 0x00801060
    assert cx3_registers.decode_dword(cx3_registers.HcrCommandWord, 0x03001060).status == 3


def test_operation_tlv_matches_mstflint() -> None:
    """mtcr_ul_com.c:3369-3441 with packets_layout.c:51-112: Operation TLV type 1, len 4;
    register id, method GET 1 and class 1; Reg TLV type 3 with (bytes + 4) / 4 dwords."""
    smp = access_register.request(0xC002, access_register.GET, bytes(8))
    data = smp[64:128]
    assert data[:8] == bytes.fromhex("08040000" "c0020101")
    assert data[16:20] == bytes.fromhex("18030000")
    op = access_register.parse(data)
    assert (op.tlv_type, op.tlv_len, op.register_id, op.method, op.reg_len) == (
        1, 4, 0xC002, 1, 3)


def test_nested_layouts() -> None:
    outer = Outer(head=0xF, login=LoginDword(state=2), key=b"\x01" * 12)
    encoded = outer.encode()
    assert encoded[:4] == bytes.fromhex("f0000000")
    assert encoded[4:8] == bytes.fromhex("02000000")
    assert encoded[12:] == b"\x01" * 12
    assert Outer.decode(encoded).login == LoginDword(state=2)
    assert Outer().login == LoginDword()  # default: every field zero
    assert Outer().login is not Outer().login
    with pytest.raises(TypeError, match="login"):
        Outer(login=fs2.TagHeader()).encode()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state"):
        Outer(login=LoginDword(state=16)).encode()


def test_in_place_fields_keep_the_other_bits() -> None:
    data = bytearray(b"\xff" * 20)
    access_register.set_reply_status(data, 0x05)
    assert data[:4] == bytes.fromhex("ffff85ff")  # status 14:8 = 5, dr (15) kept
    status = access_register.Operation.spec("status")
    assert status.get(data) == 5
    buf = bytearray(b"\x00" * 4 + b"\xff" * 8)
    spec = LoginDword.spec("session_import_kek_ptr")
    spec.put(buf, 0x123456, base=4)
    assert buf.hex() == "00000000" "ffffffff" "ff123456"
    assert spec.get(buf, 4) == 0x123456
    with pytest.raises(ValueError, match="session_import_kek_ptr"):
        spec.put(buf, 1 << 24, base=4)
    with pytest.raises(ValueError):
        spec.get(buf, 8)  # past the end
    with pytest.raises(TypeError):
        Outer.spec("key").get(bytes(24))  # a byte array is no bit field
    with pytest.raises(KeyError):
        Outer.spec("nothing")


def test_addresses_in_database_notation() -> None:
    assert LoginDword.spec("state").address == "0x0.24"
    assert LoginDword.spec("session_import_kek_ptr").address == "0x4.0"
    assert Outer.spec("key").address == "0xc.0"
    assert Outer.spec("login").address == "0x4.0"
    assert fs2.Header.IMAGE_CRC.address == "0x20.0"
    assert fs2.Header.DEV_REV.address == "0x20.24"


@pytest.mark.parametrize(("offset", "size"), [
    ("0x0.30", "0x0.4"),  # straddles a dword
    ("0x2.0", "0x0.8"),  # a sub-dword field names its dword's first byte
    ("0x0.8", "0x4.0"),  # 32 bits or more start on a byte
    ("0x0.0", "0x8.4"),  # a byte array is whole bytes
])
def test_adb_rejects_what_the_database_cannot_mean(offset: str, size: str) -> None:
    with pytest.raises(ValueError):
        adb(offset, size)


def test_dword_rejects_bad_bit_ranges() -> None:
    for hi, lo in ((32, 0), (3, 4), (0, -1)):
        with pytest.raises(ValueError):
            dword(0, hi, lo)


def test_nested_must_be_byte_aligned_and_fit() -> None:
    class Short(Layout):
        SIZE: ClassVar[int] = 6
        login: LoginDword = nested(0, LoginDword)

    with pytest.raises(TypeError, match="outside"):
        Short.field_specs()

    class Overlap(Layout):
        SIZE: ClassVar[int] = 12
        login: LoginDword = nested(0, LoginDword)
        tail: bytes = raw(4, 8)

    with pytest.raises(TypeError, match="overlaps"):
        Overlap.field_specs()


def test_field_spec_is_exported() -> None:
    assert isinstance(fs2.Gph.NEXT, FieldSpec) and fs2.Gph.NEXT.bit == 12 * 8
