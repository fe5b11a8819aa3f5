"""Register field tables against mstflint's register database (docs/sources.md §18)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcasim.devices.mlx5.registers import (
    CREDENTIAL_HANDLE,
    CREDENTIAL_OBJ,
    CRYPTO_LOGIN_OBJ,
    CRYPTO_OPERATIONAL,
    IMPORT_KEK_HANDLE,
    IMPORT_KEK_OBJ,
    LAYOUTS_BY_REGISTER_ID,
    Layout,
    RegisterId,
    adb,
)


def test_register_ids() -> None:
    assert RegisterId.CRYPTO_OPERATIONAL == 0xC002
    assert RegisterId.IMPORT_KEK_HANDLE == 0xC004
    assert RegisterId.CREDENTIAL_HANDLE == 0xC005
    assert LAYOUTS_BY_REGISTER_ID[0xC002] is CRYPTO_OPERATIONAL
    assert [CRYPTO_OPERATIONAL.size, CREDENTIAL_HANDLE.size, IMPORT_KEK_HANDLE.size] == [
        0x80,
        0x300,
        0x300,
    ]


def test_crypto_operational_bits_sit_where_the_database_says() -> None:
    # 0x0.31 is the MSB of the first big-endian dword, 0x0.30 the next bit, 0x0.0 (4 bits)
    # the low nibble of byte 3 (this also matches DPDK mlx5_prm.h:4901-4909).
    data = CRYPTO_OPERATIONAL.pack({"wrapped_crypto_operational": 1})
    assert data[:4] == bytes.fromhex("80000000")
    data = CRYPTO_OPERATIONAL.pack({"wrapped_crypto_going_to_commissioning": 1})
    assert data[:4] == bytes.fromhex("40000000")
    data = CRYPTO_OPERATIONAL.pack({"kek_size": 1})
    assert data[:4] == bytes.fromhex("00000001")
    data = CRYPTO_OPERATIONAL.pack({"credential": b"\x11" * 40, "kek": b"\x22" * 32})
    assert data[8:48] == b"\x11" * 40 and data[0x30:0x50] == b"\x22" * 32
    assert data[4:8] == bytes(4) and data[0x50:] == bytes(0x30)


def test_mlxreg_example_from_the_dpdk_guide() -> None:
    """--set "credential[0]=0x10000000, credential[1]=0x10000000, kek[0]=0x00000000":
    the array entries are big-endian dwords of the credential field."""
    data = bytearray(CRYPTO_OPERATIONAL.size)
    data[8:12] = (0x10000000).to_bytes(4, "big")
    data[12:16] = (0x10000000).to_bytes(4, "big")
    values = CRYPTO_OPERATIONAL.unpack(data)
    assert values["credential"] == bytes.fromhex("1000000010000000") + bytes(32)
    assert values["kek"] == bytes(32) and values["kek_size"] == 0


def test_login_object_layout_matches_rdma_core_crypto_login_obj() -> None:
    """mlx5_ifc.h:5611-5640: dword 16 = reserved 4 | state 4 | credential_pointer 24,
    dword 20 = reserved 8 | session_import_kek_ptr 24, credential at byte 64."""
    data = CRYPTO_LOGIN_OBJ.pack(
        {
            "state": 1,
            "credential_pointer": 0xABCDEF,
            "session_import_kek_ptr": 0x123456,
            "credential": bytes(range(48)),
        }
    )
    assert data[16:20] == bytes.fromhex("01abcdef")
    assert data[20:24] == bytes.fromhex("00123456")
    assert data[64:112] == bytes(range(48))


def test_object_layouts() -> None:
    data = CREDENTIAL_OBJ.pack({"credential_role": 1, "state": 1})
    assert data[8:12] == bytes.fromhex("01000001")
    data = IMPORT_KEK_OBJ.pack({"key_size": 1, "state": 1, "key": b"\x33" * 40})
    assert data[8:12] == bytes.fromhex("01000100")
    assert data[0x40:0x68] == b"\x33" * 40


def test_handle_registers_nest_login_and_object() -> None:
    data = CREDENTIAL_HANDLE.pack(
        {
            "crypto_login_object": {"credential_pointer": 5, "session_import_kek_ptr": 6},
            "credential_object": {"credential_role": 1},
            "credential_id": 0x00BEEF,
            "write_operation": 2,
        }
    )
    assert data[0x10:0x18] == bytes.fromhex("0000000500000006")
    assert data[0x108:0x10C] == bytes.fromhex("00000001")
    assert data[0x200:0x204] == bytes.fromhex("0200beef")  # write_operation at 0x200.24
    values = CREDENTIAL_HANDLE.unpack(data)
    assert values["credential_id"] == 0xBEEF and values["write_operation"] == 2
    login = values["crypto_login_object"]
    assert isinstance(login, dict) and login["session_import_kek_ptr"] == 6


def test_addresses_print_in_database_notation() -> None:
    assert CRYPTO_OPERATIONAL.field("wrapped_crypto_operational").address == "0x0.31"
    assert CRYPTO_OPERATIONAL.field("kek_size").address == "0x0.0"
    assert CRYPTO_OPERATIONAL.field("kek").address == "0x30.0"
    assert IMPORT_KEK_HANDLE.field("write_operation").address == "0x200.24"
    lines = list(
        CREDENTIAL_HANDLE.describe(
            {"credential_id": 3, "crypto_login_object": {"credential": b"\x01" * 48}},
            hide=frozenset({"credential"}),
        )
    )
    assert "credential_id 0x200.0 0x3" in lines
    assert "crypto_login_object.credential 0x40.0 <hidden>" in lines


def test_tables_reject_bad_values_and_declarations() -> None:
    with pytest.raises(ValueError):
        CRYPTO_OPERATIONAL.pack({"kek_size": 16})
    with pytest.raises(ValueError):
        CRYPTO_OPERATIONAL.pack({"credential": bytes(41)})
    with pytest.raises(KeyError):
        CRYPTO_OPERATIONAL.pack({"no_such_field": 1})
    with pytest.raises(ValueError):
        Layout("overlap", 4, (adb("a", "0x0.0", "0x0.8"), adb("b", "0x0.4", "0x0.8")))
    with pytest.raises(ValueError):
        adb("straddles", "0x0.30", "0x0.4")


@given(
    role=st.integers(0, 255),
    state=st.integers(0, 255),
    cred_id=st.integers(0, 0xFFFFFF),
    op=st.integers(0, 15),
    ptr=st.integers(0, 0xFFFFFF),
    secret=st.binary(min_size=48, max_size=48),
)
def test_pack_unpack_round_trip(
    role: int, state: int, cred_id: int, op: int, ptr: int, secret: bytes
) -> None:
    values = {
        "crypto_login_object": {
            "modify_field_select": 0,
            "credential_pointer": ptr,
            "state": state & 0xF,
            "session_import_kek_ptr": cred_id,
            "credential": secret,
        },
        "credential_object": {
            "modify_field_select": 0,
            "credential_role": role,
            "state": state,
            "credential": secret[::-1],
        },
        "credential_id": cred_id,
        "write_operation": op,
    }
    assert CREDENTIAL_HANDLE.unpack(CREDENTIAL_HANDLE.pack(values)) == values
