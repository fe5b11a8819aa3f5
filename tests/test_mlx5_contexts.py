"""Device contexts: own sessions, owned DEKs and MKeys, cached caps, login objects, MKey data."""

from __future__ import annotations

import errno
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcasim import mlx5dv as dv
from hcasim.api.crypto_lab import InProcessCryptoLab, UserKeys
from hcasim.devices.mlx5 import CONNECTX7, Direction
from hcasim.devices.mlx5.constants import EncryptionOrder
from hcasim.devices.mlx5.errors import CryptoCompletionError, CryptoInvalidArgument, WcStatus
from hcasim.devices.mlx5.xts import tweak_add, xts_decrypt, xts_encrypt

XTS_KEY = bytes(range(200, 232))
CRYPTO_FLAGS = dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO | dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT


@pytest.fixture
def lab() -> InProcessCryptoLab:
    lab = InProcessCryptoLab()
    lab.commission()
    return lab


@pytest.fixture
def lab7() -> InProcessCryptoLab:
    lab = InProcessCryptoLab(CONNECTX7)
    lab.commission()
    return lab


def open_logged_in(lab: InProcessCryptoLab, keys: UserKeys | None = None) -> dv.Mlx5Context:
    keys = keys or lab.admin_keys()
    ctx = dv.Mlx5Context(lab.device_name, transport=lab.transport)
    attr = dv.Mlx5CryptoLoginAttr(
        keys.wrapped_credential(),
        credential_id=keys.credential_id,
        import_kek_id=keys.import_kek_id,
    )
    dv.Mlx5Context.crypto_login(ctx, attr)
    return ctx


def make_dek(
    ctx: dv.Mlx5Context, keys: UserKeys, key: bytes = XTS_KEY, keytag: bytes | None = None
) -> dv.Mlx5DEK:
    size = dv.MLX5DV_CRYPTO_KEY_SIZE_128 if len(key) == 32 else dv.MLX5DV_CRYPTO_KEY_SIZE_256
    attr = dv.Mlx5DEKInitAttr(
        dv.PD(ctx), size, has_keytag=keytag is not None, key=keys.wrap_dek(key, keytag)
    )
    return dv.Mlx5DEK(ctx, attr)


def make_mkey(
    ctx: dv.Mlx5Context,
    dek: dv.Mlx5DEK,
    length: int,
    *,
    dus: int = dv.MLX5DV_BLOCK_SIZE_512,
    encrypt_on_tx: bool = True,
    tweak: bytes = bytes(16),
    keytag: bytes = b"",
) -> dv.Mlx5Mkey:
    mkey = dv.Mlx5Mkey(dv.PD(ctx), CRYPTO_FLAGS, 1)
    attr = dv.Mlx5CryptoAttr(
        encrypt_on_tx=encrypt_on_tx,
        data_unit_size=dus,
        initial_tweak=tweak,
        dek=dek,
        keytag=keytag,
    )
    mkey.configure(length, attr)
    return mkey


# --- sessions per context ----------------------------------------------------------------------


def test_two_contexts_have_their_own_sessions(lab: InProcessCryptoLab) -> None:
    user = lab.add_user()
    a = open_logged_in(lab)
    b = open_logged_in(lab, user)
    lab.officer.delete_credential(user.credential_id)
    assert dv.Mlx5Context.query_login_state(a) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
    assert dv.Mlx5Context.query_login_state(b) == dv.MLX5DV_CRYPTO_LOGIN_STATE_INVALID
    dv.Mlx5Context.crypto_logout(a)
    assert dv.Mlx5Context.query_login_state(b) == dv.MLX5DV_CRYPTO_LOGIN_STATE_INVALID
    assert dv.mlx5dv_crypto_logout(b) == 0


def test_officer_deletes_credential_under_a_live_session_then_relogin(
    lab: InProcessCryptoLab,
) -> None:
    """INVALID, DEK create refused, logout, login with another credential: VALID again."""
    first, second = lab.add_user(), lab.add_user()
    ctx = open_logged_in(lab, first)
    dek = make_dek(ctx, first)
    mkey = make_mkey(ctx, dek, 512)
    wire = mkey.send(b"p" * 512)
    lab.officer.delete_credential(first.credential_id)
    assert dv.Mlx5Context.query_login_state(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_INVALID
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        make_dek(ctx, first)
    assert exc.value.error_code == errno.EINVAL
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        dek.query()  # querying a wrapped DEK needs a VALID login
    assert exc.value.error_code == errno.EINVAL
    assert mkey.send(b"p" * 512) == wire  # the DEK keeps working
    dv.Mlx5Context.crypto_logout(ctx)
    attr = dv.Mlx5CryptoLoginAttr(
        second.wrapped_credential(),
        credential_id=second.credential_id,
        import_kek_id=second.import_kek_id,
    )
    dv.Mlx5Context.crypto_login(ctx, attr)
    assert dv.Mlx5Context.query_login_state(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
    assert dek.query().state == dv.MLX5DV_DEK_STATE_READY
    assert make_dek(ctx, second).query().state == dv.MLX5DV_DEK_STATE_READY


def test_closing_a_context_ends_its_session_and_destroys_its_deks(
    lab: InProcessCryptoLab,
) -> None:
    ctx = open_logged_in(lab)
    dek = make_dek(ctx, lab.admin_keys())
    make_mkey(ctx, dek, 512)
    assert len(lab.engine.context_ids()) == 1
    ctx.close()
    assert lab.engine.context_ids() == []
    assert lab.engine._deks == {} and lab.engine._logins == {} and lab.engine._mkeys == {}
    ctx.close()  # idempotent
    with pytest.raises(dv.PyverbsUserError):
        dv.Mlx5Context.query_login_state(ctx)


def test_deks_and_mkeys_belong_to_their_context(lab: InProcessCryptoLab) -> None:
    a, b = open_logged_in(lab), open_logged_in(lab)
    dek_a = make_dek(a, lab.admin_keys())
    # Another context cannot query or destroy it ...
    with pytest.raises(CryptoInvalidArgument):
        lab.transport.dek_query(b._handle(), dek_a._id(), 0)
    with pytest.raises(CryptoInvalidArgument):
        lab.transport.dek_destroy(b._handle(), dek_a._id())
    assert dek_a.query().state == dv.MLX5DV_DEK_STATE_READY
    # ... nor use it in its MKeys: the transfer completes in error.
    mkey_b = make_mkey(b, dek_a, 512)
    with pytest.raises(dv.Mlx5CompletionError) as cqe:
        mkey_b.send(bytes(512))
    assert cqe.value.wc_status is WcStatus.LOC_PROT_ERR


def test_caps_are_cached_when_the_context_opens() -> None:
    """rdma-core reads crypto caps at context init (docs/sources.md §14.1): a context opened before
    commissioning keeps reporting 'not operational' and its login gives EOPNOTSUPP."""
    lab = InProcessCryptoLab()
    early = dv.Mlx5Context(lab.device_name, transport=lab.transport)
    lab.commission()
    late = dv.Mlx5Context(lab.device_name, transport=lab.transport)
    op = dv.MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_OPERATIONAL
    assert not early.query_mlx5_device().crypto_caps["flags"] & op
    assert late.query_mlx5_device().crypto_caps["flags"] & op
    attr = dv.Mlx5CryptoLoginAttr(lab.wrapped_credential())
    assert dv.mlx5dv_crypto_login(early, attr) == errno.EOPNOTSUPP
    # EOPNOTSUPP comes before the 24-bit id check (verbs.c crypto_login_create).
    big = dv.Mlx5CryptoLoginAttr(lab.wrapped_credential(), credential_id=1 << 24)
    assert dv.mlx5dv_crypto_login(early, big) == errno.EOPNOTSUPP
    assert dv.mlx5dv_crypto_login(late, attr) == 0
    assert early.query_mlx5_device(comp_mask=0).crypto_caps == {}


def test_query_device_caps_dict(lab7: InProcessCryptoLab) -> None:
    ctx = dv.Mlx5Context(lab7.device_name, transport=lab7.transport)
    caps = ctx.query_mlx5_device().crypto_caps
    assert caps == {
        "failed_selftests": 0,
        "crypto_engines": dv.MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_SINGLE_BLOCK
        | dv.MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_MULTI_BLOCK,
        "wrapped_import_method": dv.MLX5DV_CRYPTO_WRAPPED_IMPORT_METHOD_CAP_AES_XTS,
        "log_max_num_deks": lab7.engine.profile.log_max_num_deks,
        "flags": dv.MLX5DV_CRYPTO_CAPS_CRYPTO | dv.MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_OPERATIONAL,
    }


# --- login objects (ext API) -------------------------------------------------------------------


def test_login_object_lifecycle(lab: InProcessCryptoLab) -> None:
    ctx = dv.Mlx5Context(lab.device_name, transport=lab.transport)
    login = dv.Mlx5CryptoLogin(ctx, dv.Mlx5CryptoExtLoginAttr(lab.wrapped_credential(), 48))
    assert login.query() == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
    # The old API does not see the login object (mctx->crypto_login stays NULL) ...
    assert dv.Mlx5Context.query_login_state(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
    old_path = dv.Mlx5DEKInitAttr(
        dv.PD(ctx), dv.MLX5DV_CRYPTO_KEY_SIZE_128, key=lab.admin_keys().wrap_dek(XTS_KEY)
    )
    with pytest.raises(dv.PyverbsRDMAError):
        dv.Mlx5DEK(ctx, old_path)
    # ... and a second login on the context is refused by the firmware (model choice).
    attr = dv.Mlx5CryptoLoginAttr(lab.wrapped_credential())
    assert dv.mlx5dv_crypto_login(ctx, attr) == errno.EINVAL
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        dv.Mlx5CryptoLogin(ctx, dv.Mlx5CryptoExtLoginAttr(lab.wrapped_credential(), 48))
    assert exc.value.error_code == errno.EINVAL
    new_path = dv.Mlx5DEKInitAttr(
        dv.PD(ctx),
        dv.MLX5DV_CRYPTO_KEY_SIZE_128,
        key=lab.admin_keys().wrap_dek(XTS_KEY),
        comp_mask=dv.MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN,
        crypto_login=login,
    )
    dek = dv.Mlx5DEK(ctx, new_path)
    lab.officer.delete_import_kek(0)
    assert login.query() == dv.MLX5DV_CRYPTO_LOGIN_STATE_INVALID
    with pytest.raises(dv.PyverbsRDMAError):
        dv.Mlx5DEK(ctx, new_path)
    login.close()
    login.close()
    assert make_mkey(ctx, dek, 512).send(bytes(512)) != bytes(512)


def test_login_object_query_comp_mask(lab: InProcessCryptoLab) -> None:
    ctx = dv.Mlx5Context(lab.device_name, transport=lab.transport)
    login = dv.Mlx5CryptoLogin(ctx, dv.Mlx5CryptoExtLoginAttr(lab.wrapped_credential(), 48))
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        login.query(comp_mask=1)
    assert exc.value.error_code == errno.EINVAL


# --- crypto MKey data path ----------------------------------------------------------------------


def test_directions_follow_encrypt_on_tx(lab7: InProcessCryptoLab) -> None:
    ctx = open_logged_in(lab7)
    dek = make_dek(ctx, lab7.admin_keys())
    plain = os.urandom(2048)
    cipher = xts_encrypt(XTS_KEY, bytes(16), plain, 512)
    tx_enc = make_mkey(ctx, dek, 2048, encrypt_on_tx=True)
    rx_enc = make_mkey(ctx, dek, 2048, encrypt_on_tx=False)
    assert tx_enc.send(plain) == cipher and tx_enc.recv(cipher) == plain
    assert rx_enc.recv(plain) == cipher and rx_enc.send(cipher) == plain
    assert tx_enc.encrypt(plain) == cipher == rx_enc.encrypt(plain)
    assert tx_enc.decrypt(cipher) == plain == rx_enc.decrypt(cipher)
    engine = lab7.engine
    handle = ctx._handle()
    ctx_id = (lab7.transport._serial, handle)
    assert engine.mkey_encryption_order(ctx_id, tx_enc._id()) is EncryptionOrder.ENCRYPTED_RAW_WIRE
    assert (
        engine.mkey_encryption_order(ctx_id, rx_enc._id())
        is EncryptionOrder.ENCRYPTED_MEMORY_SIGNATURE
    )


@settings(max_examples=25, deadline=None)
@given(
    dus=st.sampled_from([0, 1, 2, 3, 4]),
    units=st.integers(1, 4),
    start_unit=st.integers(0, 3),
    tweak=st.binary(min_size=16, max_size=16),
)
def test_offsets_use_the_tweak_of_their_data_unit(
    dus: int, units: int, start_unit: int, tweak: bytes
) -> None:
    lab = InProcessCryptoLab(CONNECTX7)
    lab.commission()
    ctx = open_logged_in(lab)
    dek = make_dek(ctx, lab.admin_keys())
    size = dv.data_unit_bytes(dus)
    mkey = make_mkey(ctx, dek, size * 8, dus=dus, tweak=tweak)
    data = os.urandom(size * units)
    expected = xts_encrypt(XTS_KEY, tweak_add(tweak, start_unit), data, size)
    assert mkey.send(data, offset=start_unit * size) == expected
    assert xts_decrypt(XTS_KEY, tweak_add(tweak, start_unit), expected, size) == data
    ctx.close()


def test_job_size_rule_and_bounds(lab7: InProcessCryptoLab) -> None:
    """man mlx5dv_wr_set_mkey_crypto: dus 512 allows 512 and 128 but not 47; dus 520 allows
    520 and 496 but not 512."""
    ctx = open_logged_in(lab7)
    dek = make_dek(ctx, lab7.admin_keys())
    m512 = make_mkey(ctx, dek, 4096)
    m520 = make_mkey(ctx, dek, 4160, dus=dv.MLX5DV_BLOCK_SIZE_520)
    assert len(m512.send(bytes(512))) == 512 and len(m512.send(bytes(128))) == 128
    assert len(m520.send(bytes(520))) == 520 and len(m520.send(bytes(496))) == 496
    assert len(m512.send(bytes(512 + 496))) == 1008
    for mkey, size in [(m512, 47), (m520, 512), (m512, 500)]:
        with pytest.raises(dv.Mlx5CompletionError) as exc:
            mkey.send(bytes(size))
        assert exc.value.wc_status is WcStatus.LOC_LEN_ERR
    with pytest.raises(dv.Mlx5CompletionError):
        m512.send(bytes(512), offset=4096)  # past the MKey
    with pytest.raises(dv.Mlx5CompletionError) as exc:
        m512.send(bytes(512), offset=16)  # not at a data-unit boundary
    assert exc.value.wc_status is WcStatus.LOC_PROT_ERR
    assert m512.send(b"") == b""


def test_single_block_engine_allows_one_data_unit_per_mkey(lab: InProcessCryptoLab) -> None:
    ctx = open_logged_in(lab)
    dek = make_dek(ctx, lab.admin_keys())
    make_mkey(ctx, dek, 4160, dus=dv.MLX5DV_BLOCK_SIZE_4160)
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        make_mkey(ctx, dek, 1024)
    assert exc.value.error_code == errno.EINVAL


def test_keytag_must_match_the_deks(lab: InProcessCryptoLab) -> None:
    ctx = open_logged_in(lab)
    tag = b"\x00\x00\x00\x00\x00\x00\x12\x34"  # DPDK stores its u64 keytag big-endian
    dek = make_dek(ctx, lab.admin_keys(), keytag=tag)
    good = make_mkey(ctx, dek, 512, keytag=tag)
    assert good.send(bytes(512)) == xts_encrypt(XTS_KEY, bytes(16), bytes(512), 512)
    bad = make_mkey(ctx, dek, 512, keytag=b"\x00" * 8)
    with pytest.raises(dv.Mlx5CompletionError) as exc:
        bad.send(bytes(512))
    assert exc.value.wc_status is WcStatus.LOC_PROT_ERR
    # Without a keytag in the DEK, the MKey's keytag is ignored.
    plain_dek = make_dek(ctx, lab.admin_keys())
    assert make_mkey(ctx, plain_dek, 512, keytag=b"whatever").send(bytes(512))


def test_destroyed_dek_and_unconfigured_mkey_fail_traffic(lab: InProcessCryptoLab) -> None:
    ctx = open_logged_in(lab)
    dek = make_dek(ctx, lab.admin_keys())
    mkey = make_mkey(ctx, dek, 512)
    dek.close()
    with pytest.raises(dv.Mlx5CompletionError):
        mkey.send(bytes(512))
    bare = dv.Mlx5Mkey(dv.PD(ctx), CRYPTO_FLAGS, 1)
    bare.configure(512)
    with pytest.raises(CryptoCompletionError):
        lab.transport.mkey_transfer(ctx._handle(), bare._id(), Direction.TX, bytes(512), 0)
    with pytest.raises(dv.PyverbsUserError):
        bare.encrypt(bytes(512))
    bare.close()
    mkey.close()


def test_256_bit_keys_and_equal_halves(lab7: InProcessCryptoLab) -> None:
    ctx = open_logged_in(lab7)
    key = bytes(range(64))
    dek = make_dek(ctx, lab7.admin_keys(), key=key)
    mkey = make_mkey(ctx, dek, 4096, dus=dv.MLX5DV_BLOCK_SIZE_4096)
    data = os.urandom(4096)
    assert mkey.send(data) == xts_encrypt(key, bytes(16), data, 4096)
    same = bytes(16) * 2
    dek2 = make_dek(ctx, lab7.admin_keys(), key=same)  # key1 == key2 accepted (DPDK vectors)
    assert make_mkey(ctx, dek2, 512).recv(bytes(512)) == xts_decrypt(
        same, bytes(16), bytes(512), 512
    )
