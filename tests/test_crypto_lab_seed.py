"""mlx5dv_crypto_login(3) against the running lab daemon, sentence by sentence.

Every sentence of the seed (libibverbs-dev 44.0-2) is quoted above the test that plays it.
Applications are real processes on crypto1 (``hcasim exec``, hcasim.mlx5dv over the daemon's
socket); the crypto officer acts from other processes (``hcasim crypto`` or this test process
through the access registers). The pyverbs API test (docs/sources.md §16.3) and its traffic tests
(docs/sources.md §16.3, one and two data units) close the file.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim import mlx5dv as dv
from tests.support.crypto_helpers import (
    ADMIN,
    HOST,
    XTS_KEY,
    CryptoLab,
    crypto_lab,
    login,
    state_of,
    wrapped_dek_hex,
)
from tests.support.xts import xts_reference

VALID = dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
NO_LOGIN = dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
INVALID = dv.MLX5DV_CRYPTO_LOGIN_STATE_INVALID
PLAIN = b"c" * 512


@pytest.fixture(scope="module")
def clab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CryptoLab]:
    yield from crypto_lab(tmp_path_factory.mktemp("crypto-seed"))


def delete_credential(clab: CryptoLab, credential_id: int) -> None:
    r = clab.crypto("credential", "delete", *clab.as_officer(), str(credential_id))
    assert r.returncode == 0, r.stderr


def delete_kek(clab: CryptoLab, kek_id: int) -> None:
    r = clab.crypto("kek", "delete", *clab.as_officer(), str(kek_id))
    assert r.returncode == 0, r.stderr


# DESCRIPTION ----------------------------------------------------------------------------------


def test_wrapped_import_method_needs_an_active_login_for_deks(clab: CryptoLab) -> None:
    """ "When using a crypto engine that is in wrapped import method, an active crypto login
    session must be present in order to create and query Data Encryption Keys (DEKs).\""""
    user = clab.add_user()
    with clab.app() as app:
        app.ok("open")
        caps = app.ok("caps")
        assert caps["wrapped_import_method"] & dv.MLX5DV_CRYPTO_WRAPPED_IMPORT_METHOD_CAP_AES_XTS
        assert caps["flags"] & dv.MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_OPERATIONAL
        before = app("dek", name="d", key=wrapped_dek_hex(user))
        assert (before["error"], before["code"]) == ("PyverbsRDMAError", errno.EINVAL)
        assert login(app, user) == 0
        app.ok("dek", name="d", key=wrapped_dek_hex(user), opaque="mine")
        assert app.ok("dek_query", name="d")["opaque"] == "mine"
        assert app("logout")["rc"] == 0
        after = app("dek_query", name="d")
        assert (after["error"], after["code"]) == ("PyverbsRDMAError", errno.EINVAL)


def test_login_associates_the_session_with_its_context(clab: CryptoLab) -> None:
    """ "mlx5dv_crypto_login() Creates a crypto login session with the credential given in
    login_attr and associates it with context.\""""
    user = clab.add_user()
    with clab.app() as app, clab.app() as other_process:
        app.ok("open", ctx="a")
        app.ok("open", ctx="b")
        other_process.ok("open")
        assert login(app, user, ctx="a") == 0
        assert state_of(app, "a") == VALID
        assert state_of(app, "b") == NO_LOGIN  # another context of the same process
        assert state_of(other_process) == NO_LOGIN
        assert clab.state()["sessions_valid"] >= 1


def test_only_one_session_per_context(clab: CryptoLab) -> None:
    """ "Only one active crypto login session can be associated per device context.\""""
    user, other = clab.add_user(), clab.add_user()
    with clab.app() as app:
        app.ok("open", ctx="a")
        app.ok("open", ctx="b")
        assert login(app, user, ctx="a") == 0
        assert login(app, user, ctx="a") == errno.EEXIST
        assert login(app, other, ctx="a") == errno.EEXIST  # another valid credential too
        assert login(app, other, ctx="b") == 0  # the other context has its own session
        assert (state_of(app, "a"), state_of(app, "b")) == (VALID, VALID)


def test_query_state_says_valid_invalid_or_none(clab: CryptoLab) -> None:
    """ "mlx5dv_crypto_login_query_state() queries the state of the crypto login session
    associated with context and returns the state in state, which indicates whether it is
    valid, invalid or doesn't exist.\""""
    user = clab.add_user()
    with clab.app() as app:
        app.ok("open")
        assert app("state") == {"rc": 0, "state": NO_LOGIN}
        assert login(app, user) == 0
        assert app("state") == {"rc": 0, "state": VALID}
        delete_credential(clab, user.credential_id)
        assert app("state") == {"rc": 0, "state": INVALID}


@pytest.mark.parametrize("deleted", ["credential", "import KEK"])
def test_officer_deletion_invalidates_a_live_session(clab: CryptoLab, deleted: str) -> None:
    """ "A valid crypto login session can become invalid if the credential or the import KEK
    used in the crypto login session were deleted during the login session (for example by a
    crypto officer).\""""
    user, bystander = clab.add_user(), clab.add_user()
    with clab.app() as app, clab.app() as other:
        app.ok("open")
        other.ok("open")
        assert login(app, user) == 0 and login(other, bystander) == 0
        if deleted == "credential":
            delete_credential(clab, user.credential_id)
        else:
            delete_kek(clab, user.import_kek_id)
        assert state_of(app) == INVALID
        assert state_of(other) == VALID  # a session on other keys is untouched
        refused = app("dek", name="d", key=wrapped_dek_hex(user))
        assert (refused["error"], refused["code"]) == ("PyverbsRDMAError", errno.EINVAL)
        assert clab.state()["sessions_invalid"] >= 1


def test_invalid_session_logout_then_login_with_another_credential(clab: CryptoLab) -> None:
    """ "In this case, mlx5dv_crypto_logout() should be called to destroy the current invalid
    crypto login session and if still necessary, mlx5dv_crypto_login() should be called to
    create a new crypto login session with valid credential and import KEK.\""""
    user, replacement = clab.add_user(), clab.add_user()
    with clab.app() as app:
        app.ok("open")
        assert login(app, user) == 0
        delete_credential(clab, user.credential_id)  # the officer, from another process
        assert state_of(app) == INVALID
        assert login(app, replacement) == errno.EEXIST  # the invalid session is still there
        assert app("logout")["rc"] == 0
        assert state_of(app) == NO_LOGIN
        assert login(app, user) == errno.EINVAL  # the deleted credential is gone for good
        assert login(app, replacement) == 0
        assert state_of(app) == VALID
        app.ok("dek", name="d", key=wrapped_dek_hex(replacement))


def test_logout_ends_the_contexts_session(clab: CryptoLab) -> None:
    """ "mlx5dv_crypto_logout() logs out from the current crypto login session associated with
    context.\""""
    user = clab.add_user()
    with clab.app() as app:
        app.ok("open", ctx="a")
        app.ok("open", ctx="b")
        assert login(app, user, ctx="a") == 0 and login(app, user, ctx="b") == 0
        assert app("logout", ctx="a")["rc"] == 0
        assert (state_of(app, "a"), state_of(app, "b")) == (NO_LOGIN, VALID)
        refused = app("dek", ctx="a", name="d", key=wrapped_dek_hex(user))
        assert refused["code"] == errno.EINVAL


@pytest.mark.parametrize("how", ["logout", "credential deleted", "KEK deleted"])
def test_existing_deks_work_without_a_session(clab: CryptoLab, how: str) -> None:
    """ "Existing DEKs that were previously loaded to the device during a crypto login session
    don't need an active crypto login session in order to be used (in MKey or during
    traffic).\""""
    user = clab.add_user()
    expected = xts_reference(XTS_KEY, 7, PLAIN)
    with clab.app() as app:
        app.ok("open")
        assert login(app, user) == 0
        app.ok("dek", name="d", key=wrapped_dek_hex(user))
        app.ok("mkey", name="before", dek="d", length=512, tweak=(7).to_bytes(16, "little").hex())
        if how == "logout":
            assert app("logout")["rc"] == 0
        elif how == "credential deleted":
            delete_credential(clab, user.credential_id)
        else:
            delete_kek(clab, user.import_kek_id)
        assert state_of(app) in (NO_LOGIN, INVALID)
        # Traffic through the MKey made during the session ...
        assert app.ok("send", mkey="before", data=PLAIN.hex())["data"] == expected.hex()
        assert app.ok("recv", mkey="before", data=expected.hex())["data"] == PLAIN.hex()
        # ... and a new MKey set up with the DEK afterwards.
        app.ok("mkey", name="after", dek="d", length=512, tweak=(7).to_bytes(16, "little").hex())
        assert app.ok("encrypt", mkey="after", data=PLAIN.hex())["data"] == expected.hex()


# ARGUMENTS ------------------------------------------------------------------------------------


def test_credential_id_names_the_stored_credential_to_check(clab: CryptoLab) -> None:
    """ "credential_id An ID of a credential, from the credentials stored on the device, that
    indicates the credential that should be validated against the credential provided in
    credential.\""""
    user = clab.add_user()
    with clab.app() as app:
        app.ok("open")
        # The user's credential, presented under the officer's credential id: no match.
        cred = user.wrapped_credential().hex()
        assert app("login", cred=cred, cred_id=0, kek_id=user.import_kek_id)["rc"] == errno.EINVAL
        assert app("login", cred=cred, cred_id=63, kek_id=user.import_kek_id)["rc"] == errno.EINVAL
        assert state_of(app) == NO_LOGIN
        assert login(app, user) == 0


def test_import_kek_unwraps_the_credential_and_everything_after(clab: CryptoLab) -> None:
    """ "import_kek_id An ID of an import KEK, from the import KEKs stored on the device, that
    indicates the import KEK that will be used for unwrapping the credential provided in
    credential and also for all other secured communications during the crypto login
    session.\""""
    user = clab.add_user()
    with clab.app() as app:
        app.ok("open")
        cred = user.wrapped_credential().hex()
        # Wrapped under the user's KEK but named with KEK 0: does not unwrap.
        assert app("login", cred=cred, cred_id=user.credential_id, kek_id=0)["rc"] == errno.EINVAL
        assert login(app, user) == 0
        # DEKs of the session must be wrapped under the session's import KEK.
        refused = app("dek", name="x", key=ADMIN.wrap_dek(XTS_KEY).hex())
        assert (refused["error"], refused["code"]) == ("PyverbsRDMAError", errno.EINVAL)
        app.ok("dek", name="d", key=wrapped_dek_hex(user))


def test_credential_must_come_wrapped_under_the_import_kek(clab: CryptoLab) -> None:
    """ "credential The credential to login with. Must be provided wrapped by the AES key wrap
    algorithm using the import KEK indicated by import_kek_id.\""""
    user = clab.add_user()
    plain48 = (user.credential + bytes(8)).hex()
    with clab.app() as app:
        app.ok("open")
        assert app("login", cred=plain48, cred_id=user.credential_id,
                   kek_id=user.import_kek_id)["rc"] == errno.EINVAL
        assert login(app, user) == 0


def test_comp_mask_must_be_zero(clab: CryptoLab) -> None:
    """ "comp_mask Reserved For future extension, must be 0 now.\""""
    with clab.app() as app:
        app.ok("open")
        assert login(app, ADMIN, comp_mask=1) == errno.EINVAL
        assert login(app, ADMIN, comp_mask=1 << 63) == errno.EINVAL
        assert state_of(app) == NO_LOGIN
        assert login(app, ADMIN) == 0


def test_state_takes_the_three_documented_values(clab: CryptoLab) -> None:
    """ "state Indicates the state of the current crypto login session. can be one of
    MLX5DV_CRYPTO_LOGIN_STATE_VALID, MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN and
    MLX5DV_CRYPTO_LOGIN_STATE_INVALID.\""""
    user = clab.add_user()
    seen = []
    with clab.app() as app:
        app.ok("open")
        seen.append(state_of(app))
        login(app, user)
        seen.append(state_of(app))
        delete_kek(clab, user.import_kek_id)
        seen.append(state_of(app))
    assert seen == [NO_LOGIN, VALID, INVALID] == [1, 0, 2]


# RETURN VALUE and ERRORS --------------------------------------------------------------------


def test_return_values_are_zero_or_errno(clab: CryptoLab) -> None:
    """ "mlx5dv_crypto_login() returns 0 on success and errno value on error.
    mlx5dv_crypto_login_query_state() returns 0 on success and updates state with the queried
    state. On error, errno value is returned. mlx5dv_crypto_logout() returns 0 on success and
    errno value on error.\""""
    with clab.app() as app:
        app.ok("open")
        assert login(app, ADMIN) == 0
        assert app("state") == {"rc": 0, "state": VALID}
        assert app("logout") == {"rc": 0}
        assert app("logout") == {"rc": errno.ENOENT}
        # A context the driver disassociated: query_state itself fails, with EIO.
        r = clab.lab.hcasim("driver", "restart", HOST)
        assert r.returncode == 0, r.stderr
        assert app("state") == {"rc": errno.EIO, "state": None}
        assert login(app, ADMIN) == errno.EIO
        assert app("logout") == {"rc": errno.EIO}


def test_errors_eexist_einval_enoent(clab: CryptoLab) -> None:
    """ "EEXIST A crypto login session already exists. EINVAL Invalid attributes were provided,
    or one or more of credential, credential_id and import_kek_id are invalid. ENOENT No crypto
    login session exists.\""""
    wrapped = ADMIN.wrapped_credential()
    corrupted = bytes([wrapped[0] ^ 1]) + wrapped[1:]
    with clab.app() as app:
        app.ok("open")
        assert app("logout")["rc"] == errno.ENOENT
        assert app("login", cred=corrupted.hex())["rc"] == errno.EINVAL  # credential
        assert app("login", cred=wrapped.hex(), cred_id=40)["rc"] == errno.EINVAL  # credential_id
        assert app("login", cred=wrapped.hex(), kek_id=40)["rc"] == errno.EINVAL  # import_kek_id
        assert app("login", cred=wrapped.hex(), kek_id=1 << 24)["rc"] == errno.EINVAL  # 24-bit
        assert app("login", cred=wrapped.hex(), comp_mask=4)["rc"] == errno.EINVAL  # attributes
        assert login(app, ADMIN) == 0
        assert login(app, ADMIN) == errno.EEXIST
        assert app("logout")["rc"] == 0
        assert app("logout")["rc"] == errno.ENOENT


# The pyverbs suite (docs/sources.md §16.3) --------------------------------------------------------


def test_pyverbs_api_test_sequence(clab: CryptoLab, tmp_path: Path) -> None:
    """Mlx5CryptoAPITest.test_mlx5_dek_management, as an application of its own."""
    script = tmp_path / "pyverbs_api.py"
    script.write_text(PYVERBS_API_TEST)
    wrapped_key = ADMIN.wrap_dek(XTS_KEY)
    r = clab.lab.run(HOST, "python3", str(script), ADMIN.wrapped_credential().hex(),
                     wrapped_key.hex())
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.splitlines() == [
        "DEK before login: EINVAL",
        "state: NO_LOGIN",
        "state: VALID",
        "second login: EEXIST",
        "opaque: b'dek'",
        "state: NO_LOGIN",
    ]


PYVERBS_API_TEST = '''
import errno, sys
from hcasim.mlx5dv import (
    MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS, MLX5DV_CRYPTO_KEY_SIZE_128,
    MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN, MLX5DV_CRYPTO_LOGIN_STATE_VALID, PD, Mlx5Context,
    Mlx5CryptoLoginAttr, Mlx5DEK, Mlx5DEKInitAttr, PyverbsRDMAError,
)
NAMES = {MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN: "NO_LOGIN", MLX5DV_CRYPTO_LOGIN_STATE_VALID: "VALID"}
cred_bytes, wrapped_key = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
with Mlx5Context("mlx5_0") as ctx:
    pd = PD(ctx)
    attr = Mlx5DEKInitAttr(pd, key=wrapped_key, key_size=MLX5DV_CRYPTO_KEY_SIZE_128,
                           key_purpose=MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS, opaque=b"dek")
    try:
        Mlx5DEK(ctx, attr)
    except PyverbsRDMAError as ex:
        assert ex.error_code == errno.EINVAL
        print("DEK before login: EINVAL")
    print("state:", NAMES[Mlx5Context.query_login_state(ctx)])
    Mlx5Context.crypto_login(ctx, Mlx5CryptoLoginAttr(cred_bytes))
    print("state:", NAMES[Mlx5Context.query_login_state(ctx)])
    try:
        Mlx5Context.crypto_login(ctx, Mlx5CryptoLoginAttr(cred_bytes))
    except PyverbsRDMAError as ex:
        assert ex.error_code == errno.EEXIST
        print("second login: EEXIST")
    dek = Mlx5DEK(ctx, attr)
    print("opaque:", dek.query().opaque)
    dek.close()
    Mlx5Context.crypto_logout(ctx)
    print("state:", NAMES[Mlx5Context.query_login_state(ctx)])
'''


@pytest.mark.parametrize("api", ["old", "login object"])
@pytest.mark.parametrize("half", [512, 1024])
def test_pyverbs_traffic(clab: CryptoLab, api: str, half: int) -> None:
    """Mlx5CryptoTrafficTest (old API and login object; one and two 512-byte data units per
    half, as test_mlx5_crypto_mkey_old_api / test_mlx5_wrapped_dek_multi_block): the client's
    first half is plaintext and leaves encrypted (wire_enc MKey), its second half is the
    expected ciphertext and leaves decrypted (mem_enc MKey), ten times."""
    user = clab.add_user()
    plain = b"c" * half
    cipher = xts_reference(XTS_KEY, 0, plain)
    with clab.app() as client:
        client.ok("open")
        if api == "old":
            assert login(client, user) == 0
            client.ok("dek", name="d", key=wrapped_dek_hex(user))
        else:
            client.ok("login_create", name="l", cred=user.wrapped_credential().hex(), len=48,
                      cred_id=user.credential_id, kek_id=user.import_kek_id)
            client.ok("dek", name="d", key=wrapped_dek_hex(user),
                      comp_mask=dv.MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN, login="l")
        order = dv.MLX5DV_SIGNATURE_CRYPTO_ORDER_SIGNATURE_BEFORE_CRYPTO_ON_TX
        client.ok("mkey", name="wire_enc", dek="d", length=half, encrypt_on_tx=True, order=order)
        client.ok("mkey", name="mem_enc", dek="d", length=half, encrypt_on_tx=False, order=order)
        for _ in range(10):
            server_first = client.ok("send", mkey="wire_enc", data=plain.hex())["data"]
            server_second = client.ok("send", mkey="mem_enc", data=cipher.hex())["data"]
            assert (server_first, server_second) == (cipher.hex(), plain.hex())
