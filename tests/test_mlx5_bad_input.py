"""Bad input: wrong lengths, corrupted wrapping, unknown ids, comp_mask, wrong-size DEKs.

Engine-level checks are exercised through the transport (what a daemon would receive from a
misbehaving client) as well as through the mlx5dv classes.
"""

from __future__ import annotations

import errno
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcasim import mlx5dv as dv
from hcasim.api.crypto_lab import InProcessCryptoLab
from hcasim.devices.mlx5 import CONNECTX6DX_PLAINTEXT, DekInitRequest, DeviceProfile
from hcasim.devices.mlx5.constants import CryptoEnginesCaps
from hcasim.devices.mlx5.errors import (
    CmdStatus,
    CryptoError,
    CryptoInvalidArgument,
    CryptoNotSupported,
    CryptoStaleContext,
    error_from_code,
)
from hcasim.devices.mlx5.keywrap import Secret, wrap, wrap_dek

XTS_KEY = bytes(range(50, 82))


@pytest.fixture
def lab() -> InProcessCryptoLab:
    lab = InProcessCryptoLab()
    lab.commission()
    return lab


def ctx_of(lab: InProcessCryptoLab) -> dv.Mlx5Context:
    return dv.Mlx5Context(lab.device_name, transport=lab.transport)


def logged_in(lab: InProcessCryptoLab) -> dv.Mlx5Context:
    ctx = ctx_of(lab)
    dv.Mlx5Context.crypto_login(ctx, dv.Mlx5CryptoLoginAttr(lab.wrapped_credential()))
    return ctx


# --- credentials -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 40, 47, 49, 64])
def test_old_api_credential_must_be_48_bytes(lab: InProcessCryptoLab, size: int) -> None:
    with pytest.raises(dv.PyverbsUserError):
        dv.Mlx5CryptoLoginAttr(bytes(size))
    # A client that bypasses the struct gets EINVAL from the engine.
    ctx = ctx_of(lab)
    with pytest.raises(CryptoInvalidArgument):
        lab.transport.crypto_login(ctx._handle(), 0, 0, Secret(bytes(size)), 0)


@pytest.mark.parametrize("claimed", [0, 8, 40, 47])
def test_ext_api_short_credential_len_fails_to_unwrap(
    lab: InProcessCryptoLab, claimed: int
) -> None:
    """credential_len is not checked in userspace: the firmware sees a zero-padded field."""
    ctx = ctx_of(lab)
    attr = dv.Mlx5CryptoExtLoginAttr(lab.wrapped_credential(), claimed)
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        dv.Mlx5CryptoLogin(ctx, attr)
    assert exc.value.error_code == errno.EINVAL


def test_ext_api_long_credential_len_is_truncated_to_the_field(lab: InProcessCryptoLab) -> None:
    ctx = ctx_of(lab)
    attr = dv.Mlx5CryptoExtLoginAttr(lab.wrapped_credential() + b"trailing", 56)
    login = dv.Mlx5CryptoLogin(ctx, attr)
    assert login.query() == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID


@settings(max_examples=40, deadline=None)
@given(position=st.integers(0, 47), bit=st.integers(0, 7))
def test_any_corrupted_bit_of_the_wrapped_credential_is_refused(position: int, bit: int) -> None:
    lab = InProcessCryptoLab()
    lab.commission()
    bad = bytearray(lab.wrapped_credential())
    bad[position] ^= 1 << bit
    ctx = ctx_of(lab)
    assert dv.mlx5dv_crypto_login(ctx, dv.Mlx5CryptoLoginAttr(bytes(bad))) == errno.EINVAL
    assert dv.Mlx5Context.query_login_state(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN


@pytest.mark.parametrize(
    ("credential_id", "import_kek_id"),
    [(5, 0), (0, 5), (0xFFFFFF, 0), (1 << 24, 0), (0, 1 << 24), (0xFFFFFFFF, 0), (-1, 0)],
)
def test_unknown_or_out_of_range_ids(
    lab: InProcessCryptoLab, credential_id: int, import_kek_id: int
) -> None:
    ctx = ctx_of(lab)
    attr = dv.Mlx5CryptoLoginAttr(
        lab.wrapped_credential(), credential_id=credential_id, import_kek_id=import_kek_id
    )
    assert dv.mlx5dv_crypto_login(ctx, attr) == errno.EINVAL


def test_check_order_of_crypto_login(lab: InProcessCryptoLab) -> None:
    """verbs.c:7734-7768 then crypto_login_create(): comp_mask, EEXIST, EOPNOTSUPP, ids,
    firmware. Each step is observed by making it and every later step fail."""
    engine = lab.engine
    early = ("early", 1)
    engine.open_context(early)  # cached caps: operational (commissioned above)
    bad = Secret(bytes(48))
    with pytest.raises(CryptoInvalidArgument, match="comp_mask"):
        engine.crypto_login(early, 1 << 24, 0, bad, comp_mask=2)
    engine.crypto_login(early, 0, 0, lab.wrapped_credential())
    with pytest.raises(CryptoError) as exc:
        engine.crypto_login(early, 1 << 24, 0, bad)
    assert exc.value.errno == errno.EEXIST
    fresh = InProcessCryptoLab()
    fresh.engine.open_context("c")
    with pytest.raises(CryptoNotSupported):
        fresh.engine.crypto_login("c", 1 << 24, 0, bad)
    engine.open_context(("x", 2))
    with pytest.raises(CryptoInvalidArgument, match="24-bit") as ids:
        engine.crypto_login(("x", 2), 1 << 24, 0, bad)
    assert ids.value.status is None  # a userspace check, no firmware status
    with pytest.raises(CryptoInvalidArgument, match="import KEK") as fw:
        engine.crypto_login(("x", 2), 0, 9, bad)
    assert fw.value.status is CmdStatus.BAD_PARAM


# --- DEKs --------------------------------------------------------------------------------------


def dek_request(key: bytes, **overrides: object) -> DekInitRequest:
    fields: dict[str, object] = {
        "key_size": 0,
        "has_keytag": False,
        "key_purpose": 0,
        "pd": 1,
        "opaque": bytes(8),
        "key": Secret(key.ljust(128, b"\0")),
    }
    fields.update(overrides)
    return DekInitRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"key_purpose": 1}, errno.EINVAL),
        ({"key_size": 2}, errno.EINVAL),
        ({"comp_mask": 2}, errno.EINVAL),
        ({"comp_mask": 1 << 40}, errno.EINVAL),
        ({"key_size": 1}, errno.EINVAL),  # 40 wrapped bytes do not unwrap as a 72-byte key
        ({"has_keytag": True}, errno.EINVAL),  # nor as a 48-byte key with keytag
        ({"pd": 1 << 24}, errno.EINVAL),
        ({"opaque": bytes(9)}, errno.EINVAL),
        ({"comp_mask": 1}, errno.EINVAL),  # plaintext DEK (no login object) on a wrapped engine
    ],
)
def test_dek_create_rejects(
    lab: InProcessCryptoLab, overrides: dict[str, object], expected: int
) -> None:
    ctx = logged_in(lab)
    request = dek_request(wrap_dek(bytes(16), XTS_KEY), **overrides)
    with pytest.raises(CryptoError) as exc:
        lab.transport.dek_create(ctx._handle(), request)
    assert exc.value.errno == expected


def test_wrong_size_wrapped_deks(lab: InProcessCryptoLab) -> None:
    ctx = logged_in(lab)
    pd = dv.PD(ctx)
    cases = [
        (dv.MLX5DV_CRYPTO_KEY_SIZE_128, wrap_dek(bytes(16), bytes(range(64)))),  # 72 B given
        (dv.MLX5DV_CRYPTO_KEY_SIZE_256, wrap_dek(bytes(16), XTS_KEY)),  # 40 B given
        (dv.MLX5DV_CRYPTO_KEY_SIZE_128, XTS_KEY),  # plaintext instead of wrapped
        (dv.MLX5DV_CRYPTO_KEY_SIZE_128, wrap(bytes(16), XTS_KEY[:24])),  # 32 wrapped bytes
        (dv.MLX5DV_CRYPTO_KEY_SIZE_128, b""),
    ]
    for key_size, key in cases:
        with pytest.raises(dv.PyverbsRDMAError) as exc:
            dv.Mlx5DEK(ctx, dv.Mlx5DEKInitAttr(pd, key_size, key=key))
        assert exc.value.error_code == errno.EINVAL
    with pytest.raises(dv.PyverbsUserError):
        dv.Mlx5DEKInitAttr(pd, dv.MLX5DV_CRYPTO_KEY_SIZE_128, key=bytes(129))
    with pytest.raises(dv.PyverbsUserError):
        dv.Mlx5DEKInitAttr(pd, dv.MLX5DV_CRYPTO_KEY_SIZE_128, opaque=b"123456789")
    with pytest.raises(CryptoInvalidArgument):  # the 128-byte field, no more, no less
        lab.transport.dek_create(ctx._handle(), replace(dek_request(b""), key=Secret(bytes(100))))


def test_dek_query_comp_mask_and_unknown_ids(lab: InProcessCryptoLab) -> None:
    ctx = logged_in(lab)
    pd = dv.PD(ctx)
    dek = dv.Mlx5DEK(
        ctx, dv.Mlx5DEKInitAttr(pd, 0, key=wrap_dek(bytes(16), XTS_KEY), opaque=b"12345678")
    )
    assert dek.query().opaque == b"12345678"
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        dek.query(comp_mask=1)
    assert exc.value.error_code == errno.EINVAL
    for op in (lab.transport.dek_destroy, lab.transport.crypto_login_destroy):
        with pytest.raises(CryptoInvalidArgument):
            op(ctx._handle(), 0x7777)
    with pytest.raises(CryptoInvalidArgument):
        lab.transport.crypto_login_query(ctx._handle(), 0x7777, 0)
    dek.close()
    with pytest.raises(dv.PyverbsUserError):
        dek.query()


def test_plaintext_engine_refuses_wrapped_deks_and_logins() -> None:
    lab = InProcessCryptoLab(CONNECTX6DX_PLAINTEXT)
    ctx = ctx_of(lab)
    pd = dv.PD(ctx)
    plaintext = dv.Mlx5DEKInitAttr(
        pd, 0, key=XTS_KEY, comp_mask=dv.MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN
    )
    assert dv.Mlx5DEK(ctx, plaintext).query().state == dv.MLX5DV_DEK_STATE_READY
    old_path = dv.Mlx5DEKInitAttr(pd, 0, key=wrap_dek(bytes(16), XTS_KEY))
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        dv.Mlx5DEK(ctx, old_path)
    assert exc.value.error_code == errno.EINVAL
    attr = dv.Mlx5CryptoLoginAttr(bytes(48))
    assert dv.mlx5dv_crypto_login(ctx, attr) == errno.EOPNOTSUPP


def test_no_crypto_engine_gives_eopnotsupp() -> None:
    profile = DeviceProfile("ConnectX-6 Dx", "mt4125", engines=CryptoEnginesCaps(0))
    lab = InProcessCryptoLab(profile)
    lab.commission()
    ctx = ctx_of(lab)
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        dv.Mlx5DEK(ctx, dv.Mlx5DEKInitAttr(dv.PD(ctx), 0, key=XTS_KEY))
    assert exc.value.error_code == errno.EOPNOTSUPP
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        dv.Mlx5Mkey(dv.PD(ctx), dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO, 1)
    assert exc.value.error_code == errno.EOPNOTSUPP


def test_dek_table_full() -> None:
    profile = DeviceProfile("ConnectX-6 Dx", "mt4125", log_max_num_deks=2)
    lab = InProcessCryptoLab(profile)
    lab.commission()
    ctx = logged_in(lab)
    attr = dv.Mlx5DEKInitAttr(dv.PD(ctx), 0, key=wrap_dek(bytes(16), XTS_KEY))
    deks = [dv.Mlx5DEK(ctx, attr) for _ in range(4)]
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        dv.Mlx5DEK(ctx, attr)
    assert exc.value.error_code == errno.ENOMEM
    deks[0].close()
    dv.Mlx5DEK(ctx, attr)


# --- MKeys -------------------------------------------------------------------------------------


def test_mkey_create_flags(lab: InProcessCryptoLab) -> None:
    ctx = ctx_of(lab)
    pd = dv.PD(ctx)
    for flags in (0, 1 << 5):
        with pytest.raises(dv.PyverbsRDMAError) as exc:
            dv.Mlx5Mkey(pd, flags, 1)
        assert exc.value.error_code == errno.EOPNOTSUPP
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        dv.Mlx5Mkey(pd, dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO, 0)
    assert exc.value.error_code == errno.EINVAL


@pytest.mark.parametrize(
    "overrides",
    [
        {"comp_mask": 1},
        {"crypto_standard": 1},
        {"signature_crypto_order": 2},
        {"data_unit_size": 5},
    ],
)
def test_crypto_setter_checks(lab: InProcessCryptoLab, overrides: dict[str, int]) -> None:
    ctx = logged_in(lab)
    pd = dv.PD(ctx)
    dek = dv.Mlx5DEK(ctx, dv.Mlx5DEKInitAttr(pd, 0, key=wrap_dek(bytes(16), XTS_KEY)))
    mkey = dv.Mlx5Mkey(pd, dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO, 1)
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        mkey.configure(512, dv.Mlx5CryptoAttr(dek=dek, **overrides))  # type: ignore[arg-type]
    assert exc.value.error_code == errno.EINVAL


def test_crypto_setter_on_a_non_crypto_mkey(lab: InProcessCryptoLab) -> None:
    ctx = logged_in(lab)
    pd = dv.PD(ctx)
    dek = dv.Mlx5DEK(ctx, dv.Mlx5DEKInitAttr(pd, 0, key=wrap_dek(bytes(16), XTS_KEY)))
    mkey = dv.Mlx5Mkey(pd, dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT, 1)
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        mkey.configure(512, dv.Mlx5CryptoAttr(dek=dek))
    assert exc.value.error_code == errno.EINVAL
    with pytest.raises(dv.PyverbsRDMAError):
        mkey.configure(1 << 32)
    with pytest.raises(dv.PyverbsUserError):
        dv.Mlx5CryptoAttr(dek=dek, initial_tweak=bytes(17))


# --- contexts and transports -------------------------------------------------------------------


def test_unknown_device_and_stale_handles(
    lab: InProcessCryptoLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As pyverbs' Context when ibv_get_device_list does not list the name: no errno (-1).
    with pytest.raises(dv.PyverbsRDMAError) as unknown:
        dv.Mlx5Context("mlx5_9", transport=lab.transport)
    assert (str(unknown.value), unknown.value.error_code) == ("Failed to find device mlx5_9", -1)
    with pytest.raises(CryptoStaleContext):
        lab.transport.query_device(12345)
    ctx = ctx_of(lab)
    with pytest.raises(ValueError):  # the daemon must not reuse a live context id
        lab.engine.open_context((lab.transport._serial, ctx._handle()))
    dv.set_default_transport(None)
    monkeypatch.delenv("HCASIM_HOST", raising=False)  # not inside hcasim exec: no device
    with pytest.raises(dv.PyverbsRDMAError, match="Failed to find device mlx5_0"):
        dv.Mlx5Context(lab.device_name)
    dv.set_default_transport(lab.transport)
    try:
        with dv.Mlx5Context(lab.device_name) as ctx:
            assert dv.Mlx5Context.query_login_state(ctx) == 1
    finally:
        dv.set_default_transport(None)


def test_errors_rebuild_from_their_wire_form() -> None:
    err = error_from_code(errno.EINVAL, "bad", status=int(CmdStatus.BAD_PARAM))
    assert isinstance(err, CryptoInvalidArgument) and err.status is CmdStatus.BAD_PARAM
    assert error_from_code(errno.EEXIST, "x").errno == errno.EEXIST
    assert error_from_code(errno.EIO, "x", wc_status=4).errno == errno.EIO
    assert isinstance(error_from_code(errno.EIO, "x", stale_context=True), CryptoStaleContext)
    assert "errno=22" in repr(err)
    with pytest.raises(ValueError):
        CryptoInvalidArgument("x", status=CmdStatus.LIM)


def test_attrs_do_not_print_secrets(lab: InProcessCryptoLab) -> None:
    wrapped = lab.wrapped_credential()
    attr = dv.Mlx5CryptoLoginAttr(wrapped)
    ext = dv.Mlx5CryptoExtLoginAttr(wrapped, 48)
    ctx = ctx_of(lab)
    dek_attr = dv.Mlx5DEKInitAttr(dv.PD(ctx), 0, key=b"\xab" * 40)
    crypto = dv.Mlx5CryptoAttr(keytag=b"\xcd" * 8)
    for obj in (attr, ext, dek_attr, crypto):
        text = repr(obj) + str(obj)
        assert wrapped.hex() not in text and "abab" not in text and "cdcd" not in text
