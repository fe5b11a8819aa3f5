"""Crypto officer: commissioning, handle registers, NV state, secrets at rest, resets."""

from __future__ import annotations

import errno
import json
import os
from typing import Any

import pytest

from hcasim import mlx5dv as dv
from hcasim.api.crypto_lab import DPDK_EXAMPLE_CREDENTIAL, InProcessCryptoLab
from hcasim.api.officer import (
    CryptoOfficer,
    OfficerError,
    OfficerIdentity,
    commissioning_payload,
)
from hcasim.devices.mlx5 import CONNECTX6DX_PLAINTEXT, CryptoEngine, CryptoRegisters
from hcasim.devices.mlx5.errors import CryptoIOError
from hcasim.devices.mlx5.keywrap import Secret, wrap, wrap_credential
from hcasim.devices.mlx5.register_access import RegisterMethod, RegStatus
from hcasim.devices.mlx5.registers import CREDENTIAL_HANDLE, CRYPTO_OPERATIONAL, RegisterId


def ctx_of(lab: InProcessCryptoLab) -> dv.Mlx5Context:
    return dv.Mlx5Context(lab.device_name, transport=lab.transport)


def login_state(ctx: dv.Mlx5Context) -> int:
    return dv.Mlx5Context.query_login_state(ctx)


# --- commissioning (CRYPTO_OPERATIONAL 0xC002) -----------------------------------------------


def test_factory_state_is_commissioning() -> None:
    lab = InProcessCryptoLab()
    assert lab.officer.query_operational() == (False, False)
    caps = lab.engine.current_caps()
    assert caps.flags == dv.MLX5DV_CRYPTO_CAPS_CRYPTO
    assert caps.wrapped_import_method == dv.MLX5DV_CRYPTO_WRAPPED_IMPORT_METHOD_CAP_AES_XTS
    assert caps.crypto_engines == dv.MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_SINGLE_BLOCK
    assert lab.snapshots == []


def test_commissioning_makes_credential_and_kek_zero_and_the_device_operational() -> None:
    lab = InProcessCryptoLab()
    lab.commission(DPDK_EXAMPLE_CREDENTIAL, bytes(16))
    assert lab.officer.query_operational() == (True, False)
    assert lab.engine.credential_ids() == [0] and lab.engine.import_kek_ids() == [0]
    assert lab.officer.query_credential(0) == 0  # officer role
    assert lab.officer.query_import_kek(0) == 0  # 128-bit
    assert lab.engine.current_caps().flags & dv.MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_OPERATIONAL
    assert len(lab.snapshots) == 1


def test_256_bit_first_kek() -> None:
    lab = InProcessCryptoLab()
    kek = os.urandom(32)
    lab.commission(os.urandom(40), kek)
    assert lab.officer.query_import_kek(0) == 1
    ctx = ctx_of(lab)
    dv.Mlx5Context.crypto_login(ctx, dv.Mlx5CryptoLoginAttr(lab.wrapped_credential()))


def test_128_bit_kek_uses_only_the_first_16_bytes_of_the_field() -> None:
    """ "In 128bit KEK, Only the 128 MSBs are valid. LSBs are reserved." """
    lab = InProcessCryptoLab()
    credential, kek = os.urandom(40), os.urandom(16)
    payload = bytearray(commissioning_payload(credential, kek))
    payload[0x40:0x50] = b"\xee" * 16  # garbage in the reserved half
    reply = lab.registers.access(RegisterId.CRYPTO_OPERATIONAL, RegisterMethod.WRITE, payload)
    assert reply.status is RegStatus.OK
    ctx = ctx_of(lab)
    attr = dv.Mlx5CryptoLoginAttr(wrap_credential(kek, credential))
    assert dv.mlx5dv_crypto_login(ctx, attr) == 0


def test_first_credential_and_kek_are_write_once() -> None:
    lab = InProcessCryptoLab()
    lab.commission()
    with pytest.raises(OfficerError) as exc:
        lab.officer.commission(os.urandom(40), os.urandom(16))
    assert exc.value.status is RegStatus.BAD_PARAM
    # mlxreg's read-modify-write sends the WO fields back as zero: that is accepted.
    current = lab.registers.access(RegisterId.CRYPTO_OPERATIONAL, RegisterMethod.QUERY, bytes(128))
    assert current.status is RegStatus.OK
    again = lab.registers.access(RegisterId.CRYPTO_OPERATIONAL, RegisterMethod.WRITE, current.data)
    assert again.status is RegStatus.OK
    assert lab.engine.credential_ids() == [0]


def test_going_to_commissioning_only_when_operational_and_at_next_reset() -> None:
    lab = InProcessCryptoLab()
    with pytest.raises(OfficerError):
        lab.officer.set_going_to_commissioning()  # "Valid only when operational"
    lab.commission()
    user = lab.add_user()
    ctx = ctx_of(lab)
    dv.Mlx5Context.crypto_login(ctx, dv.Mlx5CryptoLoginAttr(lab.wrapped_credential()))
    lab.officer.set_going_to_commissioning()
    assert lab.officer.query_operational() == (True, True)
    flags = lab.engine.current_caps().flags
    assert flags & dv.MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_GOING_TO_COMMISSIONING
    # Nothing changes until the firmware reset ...
    assert login_state(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
    assert lab.engine.credential_ids() == [0, user.credential_id]
    lab.officer.set_going_to_commissioning(False)  # RW: can be withdrawn
    assert lab.officer.query_operational() == (True, False)
    lab.officer.set_going_to_commissioning(True)
    lab.engine.firmware_reset()
    # ... then the device is back in commissioning, empty, and old contexts are gone.
    assert lab.officer.query_operational() == (False, False)
    assert lab.engine.credential_ids() == [] and lab.engine.import_kek_ids() == []
    with pytest.raises(dv.PyverbsRDMAError):
        login_state(ctx)
    fresh = ctx_of(lab)
    assert (
        dv.mlx5dv_crypto_login(fresh, dv.Mlx5CryptoLoginAttr(lab.wrapped_credential()))
        == errno.EOPNOTSUPP
    )
    lab.commission(os.urandom(40), os.urandom(32))  # can be commissioned again


def test_firmware_reset_without_pending_commissioning_keeps_nv_and_drops_sessions() -> None:
    lab = InProcessCryptoLab()
    lab.commission()
    ctx = ctx_of(lab)
    dv.Mlx5Context.crypto_login(ctx, dv.Mlx5CryptoLoginAttr(lab.wrapped_credential()))
    snapshots = len(lab.snapshots)
    lab.engine.firmware_reset()
    assert len(lab.snapshots) == snapshots
    assert lab.engine.context_ids() == []
    again = ctx_of(lab)
    assert login_state(again) == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
    dv.Mlx5Context.crypto_login(again, dv.Mlx5CryptoLoginAttr(lab.wrapped_credential()))


def test_plaintext_engine_has_no_commissioning() -> None:
    lab = InProcessCryptoLab(CONNECTX6DX_PLAINTEXT)
    with pytest.raises(OfficerError):
        lab.commission()
    caps = lab.engine.current_caps()
    assert caps.wrapped_import_method == 0 and caps.flags == dv.MLX5DV_CRYPTO_CAPS_CRYPTO


# --- handle registers ------------------------------------------------------------------------


def test_add_query_delete_credentials_and_keks() -> None:
    lab = InProcessCryptoLab()
    lab.commission()
    user = lab.add_user()
    assert (user.credential_id, user.import_kek_id) == (1, 1)
    assert lab.officer.query_credential(1) == 1 and lab.officer.query_import_kek(1) == 1
    officer2 = lab.officer.add_credential(os.urandom(40), role=0)
    assert lab.officer.query_credential(officer2) == 0
    lab.officer.delete_credential(1)
    with pytest.raises(OfficerError):
        lab.officer.query_credential(1)
    with pytest.raises(OfficerError):
        lab.officer.delete_credential(1)
    assert lab.officer.add_credential(os.urandom(40)) == 1  # lowest free id is reused
    lab.officer.delete_import_kek(1)
    with pytest.raises(OfficerError):
        lab.officer.query_import_kek(1)


def test_new_entries_must_be_wrapped_under_the_officers_session_kek() -> None:
    lab = InProcessCryptoLab()
    lab.commission()
    with pytest.raises(OfficerError) as exc:
        lab.officer.add_wrapped_credential(wrap_credential(os.urandom(16), os.urandom(40)))
    assert exc.value.status is RegStatus.BAD_PARAM
    with pytest.raises(OfficerError):
        lab.officer.add_wrapped_import_kek(wrap(os.urandom(16), os.urandom(32)), key_size=1)
    with pytest.raises(OfficerError):  # key_size says 128-bit, the wrapped key is 256-bit
        lab.officer.add_wrapped_import_kek(wrap(bytes(16), os.urandom(32)), key_size=0)
    with pytest.raises(OfficerError):
        lab.officer.add_wrapped_credential(wrap_credential(bytes(16), os.urandom(40)), role=7)
    assert lab.engine.credential_ids() == [0] and lab.engine.import_kek_ids() == [0]


def test_officer_login_must_verify() -> None:
    lab = InProcessCryptoLab()
    lab.commission()
    wrong = CryptoOfficer(
        lab.registers.access, OfficerIdentity(0, 0, Secret(os.urandom(40)), Secret(bytes(16)))
    )
    with pytest.raises(OfficerError) as exc:
        wrong.add_credential(os.urandom(40))
    assert exc.value.status is RegStatus.BAD_PARAM
    assert "does not match" in exc.value.reply.message


def test_handle_registers_need_operational_mode() -> None:
    lab = InProcessCryptoLab()
    officer = CryptoOfficer(
        lab.registers.access,
        OfficerIdentity(0, 0, Secret(DPDK_EXAMPLE_CREDENTIAL), Secret(bytes(16))),
    )
    with pytest.raises(OfficerError) as exc:
        officer.add_credential(os.urandom(40))
    assert "commissioning" in exc.value.reply.message


def test_tables_fill_up() -> None:
    lab = InProcessCryptoLab()
    lab.commission()
    for _ in range((1 << lab.engine.profile.log_max_num_creds) - 1):
        lab.officer.add_credential(os.urandom(40))
    with pytest.raises(OfficerError) as exc:
        lab.officer.add_credential(os.urandom(40))
    assert exc.value.status is RegStatus.RES_NOT_AVLBL


def test_register_path_errors_and_no_secret_echo() -> None:
    lab = InProcessCryptoLab()
    lab.commission()
    regs = lab.registers
    assert regs.access(0x9001, RegisterMethod.QUERY, bytes(16)).status is RegStatus.REG_NOT_SUPP
    assert regs.access(0xC002, 3, bytes(128)).status is RegStatus.METHOD_NOT_SUPP
    assert regs.access(0xC002, RegisterMethod.QUERY, bytes(44)).status is RegStatus.LEN_TOO_SMALL
    login = lab.officer.identity
    assert login is not None
    # write_operation 0 is neither ADD nor DELETE.
    payload = CREDENTIAL_HANDLE.pack({"crypto_login_object": login.login_object()})
    reply = regs.access(RegisterId.CREDENTIAL_HANDLE, RegisterMethod.WRITE, payload)
    assert reply.status is RegStatus.BAD_PARAM
    secret = os.urandom(40)
    wrapped = wrap_credential(bytes(16), secret)
    payload = CREDENTIAL_HANDLE.pack(
        {
            "crypto_login_object": login.login_object(),
            "credential_object": {"credential_role": 1, "credential": wrapped},
            "write_operation": 1,
        }
    )
    reply = regs.access(RegisterId.CREDENTIAL_HANDLE, RegisterMethod.WRITE, payload)
    assert reply.status is RegStatus.OK
    officer_credential = login.login_object()["credential"]
    assert isinstance(officer_credential, bytes)
    assert wrapped not in reply.data and officer_credential not in reply.data
    # CRYPTO_OPERATIONAL reads its WO fields as zero.
    reply = regs.access(RegisterId.CRYPTO_OPERATIONAL, RegisterMethod.QUERY, bytes(128))
    values = CRYPTO_OPERATIONAL.unpack(reply.data)
    assert values["credential"] == bytes(40) and values["kek"] == bytes(32)


# --- NV state ---------------------------------------------------------------------------------


def test_snapshot_is_json_and_holds_no_secret_in_the_clear() -> None:
    lab = InProcessCryptoLab()
    admin = lab.commission(os.urandom(40), os.urandom(32))
    user = lab.add_user()
    snapshot = lab.engine.to_nv()
    text = json.dumps(snapshot)
    assert snapshot == lab.snapshots[-1]
    for secret in (admin.credential, admin.kek, user.credential, user.kek):
        assert secret.hex() not in text
        for i in range(0, len(secret) - 8, 4):  # no 8-byte window of it either
            assert secret[i : i + 8].hex() not in text
    assert lab.storage_key.hex() not in text
    assert admin.credential.hex() not in repr(lab.engine)


def test_restart_from_snapshot_keeps_credentials_keks_and_mode() -> None:
    lab = InProcessCryptoLab()
    lab.commission()
    user = lab.add_user()
    lab.officer.set_going_to_commissioning()
    restored = InProcessCryptoLab(storage_key=lab.storage_key, nv=lab.engine.to_nv())
    restored.admin = lab.admin
    restored.officer.identity = lab.officer.identity
    assert restored.officer.query_operational() == (True, True)
    ctx = ctx_of(restored)
    attr = dv.Mlx5CryptoLoginAttr(
        user.wrapped_credential(),
        credential_id=user.credential_id,
        import_kek_id=user.import_kek_id,
    )
    assert dv.mlx5dv_crypto_login(ctx, attr) == 0
    assert restored.officer.query_credential(user.credential_id) == 1


def test_snapshot_under_another_storage_key_is_refused() -> None:
    lab = InProcessCryptoLab()
    lab.commission()
    with pytest.raises(ValueError, match="storage key"):
        CryptoEngine(os.urandom(32), nv=lab.engine.to_nv())
    tampered: dict[str, Any] = json.loads(json.dumps(lab.engine.to_nv()))
    tampered["import_keks"]["0"]["sealed"] = "00" * 24
    with pytest.raises(ValueError):
        CryptoEngine(lab.storage_key, nv=tampered)
    with pytest.raises(ValueError):
        CryptoEngine(lab.storage_key, nv={**lab.engine.to_nv(), "format": "other"})


def test_a_failing_store_fails_the_operation_and_changes_nothing() -> None:
    calls: list[dict[str, Any]] = []

    def flaky_store(snapshot: dict[str, Any]) -> None:
        calls.append(snapshot)
        if len(calls) > 1:
            raise OSError("disk full")

    engine = CryptoEngine(os.urandom(32), nv_sink=flaky_store)
    officer = CryptoOfficer(CryptoRegisters(engine).access)
    officer.commission(DPDK_EXAMPLE_CREDENTIAL, bytes(16))
    officer.identity = OfficerIdentity(0, 0, Secret(DPDK_EXAMPLE_CREDENTIAL), Secret(bytes(16)))
    before = engine.to_nv()
    with pytest.raises(OfficerError) as exc:
        officer.add_credential(os.urandom(40))
    assert exc.value.status is RegStatus.INTERNAL_ERROR
    assert engine.to_nv() == before
    with pytest.raises(CryptoIOError):
        engine.write_crypto_operational(
            kek_size=0,
            credential=Secret(bytes(40)),
            kek=Secret(bytes(32)),
            going_to_commissioning=True,
        )
    assert engine.to_nv() == before


def test_engine_repr_shows_no_secret() -> None:
    lab = InProcessCryptoLab()
    admin = lab.commission(b"S" * 40, b"K" * 16)
    for text in (repr(lab.engine), repr(lab.officer), repr(lab.officer.identity), repr(admin)):
        assert "SSSS" not in text and "KKKK" not in text and "5353" not in text
