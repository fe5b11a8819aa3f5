"""Every sentence of mlx5dv_crypto_login(3) (libibverbs-dev 44.0-2) as a scenario.

The sentence under test is quoted at the top of each test.
"""

from __future__ import annotations

import errno
import os

import pytest

from hcasim import mlx5dv as dv
from hcasim.api.crypto_lab import InProcessCryptoLab, UserKeys
from hcasim.api.officer import CryptoOfficer, OfficerError, OfficerIdentity
from hcasim.devices.mlx5.keywrap import Secret, wrap_credential
from hcasim.devices.mlx5.register_access import RegStatus

XTS_KEY = bytes(range(100, 132))  # two distinct 128-bit halves


@pytest.fixture
def lab() -> InProcessCryptoLab:
    lab = InProcessCryptoLab()
    lab.commission()
    return lab


def open_ctx(lab: InProcessCryptoLab) -> dv.Mlx5Context:
    return dv.Mlx5Context(lab.device_name, transport=lab.transport)


def login(ctx: dv.Mlx5Context, keys: UserKeys, **kw: int) -> int:
    attr = dv.Mlx5CryptoLoginAttr(
        keys.wrapped_credential(),
        credential_id=keys.credential_id,
        import_kek_id=keys.import_kek_id,
        **kw,
    )
    return dv.mlx5dv_crypto_login(ctx, attr)


def state_of(ctx: dv.Mlx5Context) -> int:
    state: dv.Ref[int] = dv.Ref(-1)
    assert dv.mlx5dv_crypto_login_query_state(ctx, state) == 0
    return state.value


def wrapped_dek(ctx: dv.Mlx5Context, keys: UserKeys, opaque: bytes = b"dek") -> dv.Mlx5DEK:
    attr = dv.Mlx5DEKInitAttr(
        dv.PD(ctx), dv.MLX5DV_CRYPTO_KEY_SIZE_128, opaque=opaque, key=keys.wrap_dek(XTS_KEY)
    )
    return dv.Mlx5DEK(ctx, attr)


def crypto_mkey(ctx: dv.Mlx5Context, dek: dv.Mlx5DEK, length: int = 512) -> dv.Mlx5Mkey:
    flags = dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO | dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT
    mkey = dv.Mlx5Mkey(dv.PD(ctx), flags, 1)
    mkey.configure(length, dv.Mlx5CryptoAttr(encrypt_on_tx=True, dek=dek))
    return mkey


def test_constants_have_the_mlx5dv_h_values() -> None:
    assert dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID == 0
    assert dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN == 1
    assert dv.MLX5DV_CRYPTO_LOGIN_STATE_INVALID == 2


# DESCRIPTION ----------------------------------------------------------------------------------


def test_wrapped_import_method_needs_an_active_login_to_create_and_query_deks(
    lab: InProcessCryptoLab,
) -> None:
    """ "When using a crypto engine that is in wrapped import method, an active crypto login
    session must be present in order to create and query Data Encryption Keys (DEKs).\""""
    ctx = open_ctx(lab)
    caps = ctx.query_mlx5_device().crypto_caps
    assert caps["wrapped_import_method"] & dv.MLX5DV_CRYPTO_WRAPPED_IMPORT_METHOD_CAP_AES_XTS
    with pytest.raises(dv.PyverbsRDMAError) as create_without:
        wrapped_dek(ctx, lab.admin_keys())
    assert create_without.value.error_code == errno.EINVAL
    assert login(ctx, lab.admin_keys()) == 0
    dek = wrapped_dek(ctx, lab.admin_keys())
    assert dek.query().opaque == b"dek"
    assert dv.mlx5dv_crypto_logout(ctx) == 0
    with pytest.raises(dv.PyverbsRDMAError) as query_without:
        dek.query()
    assert query_without.value.error_code == errno.EINVAL


def test_login_creates_a_session_associated_with_the_context(lab: InProcessCryptoLab) -> None:
    """ "mlx5dv_crypto_login() Creates a crypto login session with the credential given in
    login_attr and associates it with context.\""""
    mine, other = open_ctx(lab), open_ctx(lab)
    assert login(mine, lab.admin_keys()) == 0
    assert state_of(mine) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
    assert state_of(other) == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN


def test_only_one_session_per_context(lab: InProcessCryptoLab) -> None:
    """ "Only one active crypto login session can be associated per device context.\""""
    user = lab.add_user()
    ctx = open_ctx(lab)
    assert login(ctx, lab.admin_keys()) == 0
    assert login(ctx, lab.admin_keys()) == errno.EEXIST
    assert login(ctx, user) == errno.EEXIST  # another valid credential changes nothing
    assert state_of(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID


def test_query_state_reports_valid_invalid_or_none(lab: InProcessCryptoLab) -> None:
    """ "mlx5dv_crypto_login_query_state() queries the state of the crypto login session
    associated with context and returns the state in state, which indicates whether it is
    valid, invalid or doesn't exist.\""""
    user = lab.add_user()
    ctx = open_ctx(lab)
    assert state_of(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
    assert login(ctx, user) == 0
    assert state_of(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
    lab.officer.delete_credential(user.credential_id)
    assert state_of(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_INVALID


@pytest.mark.parametrize("deleted", ["credential", "import KEK"])
def test_officer_deleting_the_credential_or_kek_invalidates_the_session(
    lab: InProcessCryptoLab, deleted: str
) -> None:
    """ "A valid crypto login session can become invalid if the credential or the import KEK
    used in the crypto login session were deleted during the login session (for example by a
    crypto officer).\""""
    user, bystander = lab.add_user(), lab.add_user()
    ctx, other = open_ctx(lab), open_ctx(lab)
    assert login(ctx, user) == 0
    assert login(other, bystander) == 0
    if deleted == "credential":
        lab.officer.delete_credential(user.credential_id)
    else:
        lab.officer.delete_import_kek(user.import_kek_id)
    assert state_of(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_INVALID
    assert state_of(other) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
    # An INVALID session can no longer create wrapped DEKs, and still blocks a new login.
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        wrapped_dek(ctx, user)
    assert exc.value.error_code == errno.EINVAL
    assert login(ctx, bystander) == errno.EEXIST


def test_logout_of_an_invalid_session_then_login_with_valid_credential_and_kek(
    lab: InProcessCryptoLab,
) -> None:
    """ "In this case, mlx5dv_crypto_logout() should be called to destroy the current invalid
    crypto login session and if still necessary, mlx5dv_crypto_login() should be called to
    create a new crypto login session with valid credential and import KEK.\""""
    user, replacement = lab.add_user(), lab.add_user()
    ctx = open_ctx(lab)
    assert login(ctx, user) == 0
    lab.officer.delete_credential(user.credential_id)
    assert dv.mlx5dv_crypto_logout(ctx) == 0
    assert state_of(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
    assert login(ctx, user) == errno.EINVAL  # the deleted credential is gone for good
    assert login(ctx, replacement) == 0
    assert state_of(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
    assert wrapped_dek(ctx, replacement).query().state == dv.MLX5DV_DEK_STATE_READY


def test_logout_ends_only_this_contexts_session(lab: InProcessCryptoLab) -> None:
    """ "mlx5dv_crypto_logout() logs out from the current crypto login session associated with
    context.\""""
    ctx, other = open_ctx(lab), open_ctx(lab)
    assert login(ctx, lab.admin_keys()) == 0
    assert login(other, lab.admin_keys()) == 0
    assert dv.mlx5dv_crypto_logout(ctx) == 0
    assert state_of(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
    assert state_of(other) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID


@pytest.mark.parametrize("how", ["logout", "credential deleted", "kek deleted"])
def test_existing_deks_work_without_an_active_session(lab: InProcessCryptoLab, how: str) -> None:
    """ "Existing DEKs that were previously loaded to the device during a crypto login session
    don't need an active crypto login session in order to be used (in MKey or during
    traffic).\""""
    user = lab.add_user()
    ctx = open_ctx(lab)
    assert login(ctx, user) == 0
    dek = wrapped_dek(ctx, user)
    before = crypto_mkey(ctx, dek)  # an MKey configured during the session ...
    expected = before.send(b"c" * 512)
    if how == "logout":
        assert dv.mlx5dv_crypto_logout(ctx) == 0
    elif how == "credential deleted":
        lab.officer.delete_credential(user.credential_id)
    else:
        lab.officer.delete_import_kek(user.import_kek_id)
    assert before.send(b"c" * 512) == expected  # ... keeps encrypting (traffic)
    after = crypto_mkey(ctx, dek)  # and the DEK can go into a new MKey
    assert after.send(b"c" * 512) == expected
    assert after.recv(expected) == b"c" * 512


# ARGUMENTS ------------------------------------------------------------------------------------


def test_credential_id_names_the_stored_credential_to_validate_against(
    lab: InProcessCryptoLab,
) -> None:
    """ "credential_id An ID of a credential, from the credentials stored on the device, that
    indicates the credential that should be validated against the credential provided in
    credential.\""""
    user = lab.add_user()
    ctx = open_ctx(lab)
    # The user's credential, correctly wrapped under the user's KEK, but checked against
    # credential 0: it does not match.
    attr = dv.Mlx5CryptoLoginAttr(
        user.wrapped_credential(), credential_id=0, import_kek_id=user.import_kek_id
    )
    assert dv.mlx5dv_crypto_login(ctx, attr) == errno.EINVAL
    attr = dv.Mlx5CryptoLoginAttr(
        user.wrapped_credential(), credential_id=77, import_kek_id=user.import_kek_id
    )
    assert dv.mlx5dv_crypto_login(ctx, attr) == errno.EINVAL
    assert state_of(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
    assert login(ctx, user) == 0


def test_import_kek_unwraps_the_credential_and_the_sessions_deks(
    lab: InProcessCryptoLab,
) -> None:
    """ "import_kek_id An ID of an import KEK, from the import KEKs stored on the device, that
    indicates the import KEK that will be used for unwrapping the credential provided in
    credential and also for all other secured communications during the crypto login
    session.\""""
    user = lab.add_user()
    admin = lab.admin_keys()
    ctx = open_ctx(lab)
    # Right credential, wrong KEK id for its wrapping.
    attr = dv.Mlx5CryptoLoginAttr(
        user.wrapped_credential(), credential_id=user.credential_id, import_kek_id=0
    )
    assert dv.mlx5dv_crypto_login(ctx, attr) == errno.EINVAL
    assert login(ctx, user) == 0
    # DEKs of this session must be wrapped under the session's import KEK ...
    assert wrapped_dek(ctx, user).query().state == dv.MLX5DV_DEK_STATE_READY
    # ... not under another stored KEK.
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        wrapped_dek(ctx, admin)
    assert exc.value.error_code == errno.EINVAL


def test_credential_must_be_aes_key_wrapped_with_the_import_kek(
    lab: InProcessCryptoLab,
) -> None:
    """ "credential The credential to login with. Must be provided wrapped by the AES key wrap
    algorithm using the import KEK indicated by import_kek_id.\""""
    admin = lab.admin_keys()
    ctx = open_ctx(lab)
    plaintext_padded = admin.credential + bytes(8)
    assert dv.mlx5dv_crypto_login(ctx, dv.Mlx5CryptoLoginAttr(plaintext_padded)) == errno.EINVAL
    under_other_kek = wrap_credential(os.urandom(16), admin.credential)
    assert dv.mlx5dv_crypto_login(ctx, dv.Mlx5CryptoLoginAttr(under_other_kek)) == errno.EINVAL
    assert dv.mlx5dv_crypto_login(ctx, dv.Mlx5CryptoLoginAttr(admin.wrapped_credential())) == 0


def test_comp_mask_must_be_zero(lab: InProcessCryptoLab) -> None:
    """ "comp_mask Reserved For future extension, must be 0 now.\""""
    ctx = open_ctx(lab)
    assert login(ctx, lab.admin_keys(), comp_mask=1) == errno.EINVAL
    assert state_of(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
    # Checked before anything else, even an existing session (verbs.c:7734-7768).
    assert login(ctx, lab.admin_keys()) == 0
    assert login(ctx, lab.admin_keys(), comp_mask=1 << 63) == errno.EINVAL


def test_state_is_one_of_the_three_enum_values(lab: InProcessCryptoLab) -> None:
    """ "state Indicates the state of the current crypto login session. can be one of
    MLX5DV_CRYPTO_LOGIN_STATE_VALID, MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN and
    MLX5DV_CRYPTO_LOGIN_STATE_INVALID.\""""
    ctx = open_ctx(lab)
    seen = {state_of(ctx)}
    assert login(ctx, lab.admin_keys()) == 0
    seen.add(state_of(ctx))
    lab.officer.delete_import_kek(0)
    seen.add(state_of(ctx))
    assert seen == {
        dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID,
        dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN,
        dv.MLX5DV_CRYPTO_LOGIN_STATE_INVALID,
    }


# RETURN VALUE / ERRORS ---------------------------------------------------------------------


def test_return_values_are_zero_or_an_errno_value(lab: InProcessCryptoLab) -> None:
    """ "mlx5dv_crypto_login() returns 0 on success and errno value on error.
    mlx5dv_crypto_login_query_state() returns 0 on success and updates state with the queried
    state. On error, errno value is returned. mlx5dv_crypto_logout() returns 0 on success and
    errno value on error.\""""
    ctx = open_ctx(lab)
    state: dv.Ref[int] = dv.Ref(-1)
    assert dv.mlx5dv_crypto_login_query_state(ctx, state) == 0
    assert state.value == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
    assert login(ctx, lab.admin_keys()) == 0
    assert dv.mlx5dv_crypto_login_query_state(ctx, state) == 0
    assert state.value == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
    assert dv.mlx5dv_crypto_logout(ctx) == 0
    assert dv.mlx5dv_crypto_logout(ctx) == errno.ENOENT
    # query_state on a context that died (e.g. in a firmware reset) returns an errno value.
    lab.engine.firmware_reset()
    state.value = 42
    assert dv.mlx5dv_crypto_login_query_state(ctx, state) == errno.EIO
    assert state.value == 42


def test_errors_eexist_einval_enoent(lab: InProcessCryptoLab) -> None:
    """ "EEXIST A crypto login session already exists. EINVAL Invalid attributes were
    provided, or one or more of credential, credential_id and import_kek_id are invalid.
    ENOENT No crypto login session exists.\""""
    ctx = open_ctx(lab)
    admin = lab.admin_keys()
    assert dv.mlx5dv_crypto_logout(ctx) == errno.ENOENT
    bad = bytearray(admin.wrapped_credential())
    bad[-1] ^= 0x80
    assert dv.mlx5dv_crypto_login(ctx, dv.Mlx5CryptoLoginAttr(bytes(bad))) == errno.EINVAL
    for cred_id, kek_id in [(1, 0), (0, 1), (1 << 24, 0), (0, 1 << 24)]:
        attr = dv.Mlx5CryptoLoginAttr(
            admin.wrapped_credential(), credential_id=cred_id, import_kek_id=kek_id
        )
        assert dv.mlx5dv_crypto_login(ctx, attr) == errno.EINVAL
    assert login(ctx, admin) == 0
    assert login(ctx, admin) == errno.EEXIST
    assert dv.mlx5dv_crypto_logout(ctx) == 0
    assert dv.mlx5dv_crypto_logout(ctx) == errno.ENOENT


def test_officer_cannot_manage_keys_with_a_user_credential(lab: InProcessCryptoLab) -> None:
    """The officer of the seed's "(for example by a crypto officer)": a USER-role credential
    cannot delete anything."""
    user = lab.add_user()
    as_user = CryptoOfficer(
        lab.registers.access,
        OfficerIdentity(
            user.credential_id, user.import_kek_id, Secret(user.credential), Secret(user.kek)
        ),
    )
    with pytest.raises(OfficerError) as exc:
        as_user.delete_credential(0)
    assert exc.value.status is RegStatus.BAD_PARAM
    assert lab.engine.credential_ids() == [0, user.credential_id]
