"""rdma-core's pyverbs crypto tests (tests/test_mlx5_crypto.py, docs/sources.md §16.3) on the model.

The API test is replayed step by step; the RC traffic tests are reduced to what the crypto
MKeys do to the data: the client's wire_enc MKey (encrypt_on_tx) sends the plaintext half of its
buffer, its mem_enc MKey (not encrypt_on_tx) sends the ciphertext half, and the server must
receive the ciphertext and the plaintext respectively. Expected ciphertexts come from
cryptography's XTS, independently of the model.
"""

from __future__ import annotations

import errno
import struct

import pytest

from hcasim import mlx5dv as dv
from hcasim.api.crypto_lab import InProcessCryptoLab
from hcasim.devices.mlx5 import (
    CONNECTX6DX,
    CONNECTX6DX_MULTI_BLOCK,
    CONNECTX6DX_PLAINTEXT,
    CONNECTX7,
    DeviceProfile,
)
from hcasim.devices.mlx5.keywrap import wrap_dek
from tests.support.xts import xts_reference

# 128-bit XTS key halves as the JSON test file would give them (distinct halves).
KEY_128 = bytes(range(1, 33))
KEY_256 = bytes(range(64, 128))


def suite_skip_reason(ctx: dv.Mlx5Context, wrapped: bool, multi_block: bool) -> str | None:
    """check_crypto_caps of the pyverbs suite (docs/sources.md §16.2): why it would skip the test on
    this context, or None when it would run it. The profiles here must have what the tests
    need, so the tests assert None: a regression in the caps fails instead of skipping."""
    caps = ctx.query_mlx5_device().crypto_caps
    engines = caps["crypto_engines"]
    single = dv.MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_SINGLE_BLOCK
    multi = dv.MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_MULTI_BLOCK
    if caps["failed_selftests"] or not engines & (single | multi):
        return "crypto engine unusable"
    if multi_block and not engines & multi:
        return "multi-block AES-XTS not supported"
    if engines & multi:
        assert engines & single
    wrapped_bit = caps["wrapped_import_method"] & dv.MLX5DV_CRYPTO_WRAPPED_IMPORT_METHOD_CAP_AES_XTS
    operational = caps["flags"] & dv.MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_OPERATIONAL
    if wrapped and not (wrapped_bit and operational):
        return "wrapped mode not operational"
    if not wrapped and wrapped_bit and operational:
        return "plaintext DEKs need a plaintext-import engine"
    return None


def make_lab(profile: DeviceProfile) -> InProcessCryptoLab:
    lab = InProcessCryptoLab(profile)
    if profile.wrapped_import:
        lab.commission()
    return lab


def test_mlx5_dek_management() -> None:
    """Mlx5CryptoAPITest.test_mlx5_dek_management, steps 1-7 (RC44 :208-242)."""
    lab = make_lab(CONNECTX6DX)
    # The JSON "credential" is '!6Q' big-endian u64s: round-trip the lab's credential that way.
    words = struct.unpack("!6Q", lab.wrapped_credential())
    cred_bytes = struct.pack("!6Q", *words)
    wrapped_key = struct.pack("!5Q", *struct.unpack("!5Q", wrap_dek(bytes(16), KEY_128)))
    with dv.Mlx5Context(lab.device_name, transport=lab.transport) as ctx:
        assert suite_skip_reason(ctx, wrapped=True, multi_block=False) is None
        pd = dv.PD(ctx)  # 1
        dek_attr = dv.Mlx5DEKInitAttr(
            pd,
            key=wrapped_key,
            key_size=dv.MLX5DV_CRYPTO_KEY_SIZE_128,
            key_purpose=dv.MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS,
            opaque=b"dek",
        )
        with pytest.raises(dv.PyverbsRDMAError) as ex:  # 2
            dv.Mlx5DEK(ctx, dek_attr)
        assert ex.value.error_code == errno.EINVAL
        state = dv.Mlx5Context.query_login_state(ctx)  # 3
        assert state == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
        login_attr = dv.Mlx5CryptoLoginAttr(cred_bytes)  # 4
        dv.Mlx5Context.crypto_login(ctx, login_attr)
        assert dv.Mlx5Context.query_login_state(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
        with pytest.raises(dv.PyverbsRDMAError) as ex:  # 5
            dv.Mlx5Context.crypto_login(ctx, login_attr)
        assert ex.value.error_code == errno.EEXIST
        dek = dv.Mlx5DEK(ctx, dek_attr)  # 6
        assert dek.query().opaque == b"dek"
        dek.close()
        dv.Mlx5Context.crypto_logout(ctx)  # 7
        assert dv.Mlx5Context.query_login_state(ctx) == dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN


def run_traffic(
    lab: InProcessCryptoLab,
    *,
    api: str,
    msg_size: int = 1024,
    key_size: int = dv.MLX5DV_CRYPTO_KEY_SIZE_128,
    signature: bool = False,
    suite_skips: str | None = None,
) -> None:
    """The Mlx5CryptoTrafficTest flow for one client context against the server's MR.

    ``suite_skips``: why the pyverbs suite would skip this test on the lab's device (None:
    it runs it); the flow is run either way."""
    xts_key = KEY_128 if key_size == dv.MLX5DV_CRYPTO_KEY_SIZE_128 else KEY_256
    half = msg_size // 2
    with dv.Mlx5Context(lab.device_name, transport=lab.transport) as client:
        multi_block = half > 512  # more than one data unit (MLX5DV_BLOCK_SIZE_512) per MKey
        reason = suite_skip_reason(client, wrapped=api != "plaintext", multi_block=multi_block)
        assert reason == suite_skips
        pd = dv.PD(client)
        login_obj = None
        if api == "old":
            dv.Mlx5Context.crypto_login(client, dv.Mlx5CryptoLoginAttr(lab.wrapped_credential()))
            attr = dv.Mlx5DEKInitAttr(
                pd, key_size=key_size, key=wrap_dek(bytes(16), xts_key), opaque=b"t"
            )
        elif api == "login_object":
            ext = dv.Mlx5CryptoExtLoginAttr(lab.wrapped_credential(), 48)
            login_obj = dv.Mlx5CryptoLogin(client, ext)
            attr = dv.Mlx5DEKInitAttr(
                pd,
                key_size=key_size,
                key=wrap_dek(bytes(16), xts_key),
                comp_mask=dv.MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN,
                crypto_login=login_obj,
            )
        else:  # plaintext
            attr = dv.Mlx5DEKInitAttr(
                pd,
                key_size=key_size,
                key=xts_key,
                comp_mask=dv.MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN,
                crypto_login=None,
            )
        dek = dv.Mlx5DEK(client, attr)
        flags = dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO | dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT
        if signature:
            flags |= dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_BLOCK_SIGNATURE
        wire_enc = dv.Mlx5Mkey(pd, flags, 1)
        mem_enc = dv.Mlx5Mkey(pd, flags, 1)
        for mkey in (wire_enc, mem_enc):  # reg_client_mkey
            mkey.configure(
                half,
                dv.Mlx5CryptoAttr(
                    dv.MLX5DV_CRYPTO_STANDARD_AES_XTS,
                    encrypt_on_tx=mkey is wire_enc,
                    signature_crypto_order=dv.MLX5DV_SIGNATURE_CRYPTO_ORDER_SIGNATURE_BEFORE_CRYPTO_ON_TX,
                    data_unit_size=dv.MLX5DV_BLOCK_SIZE_512,
                    dek=dek,
                    initial_tweak=bytes(16),
                ),
            )
        expected = xts_reference(xts_key, 0, b"c" * half)
        client_mr = b"c" * half + expected
        for _ in range(10):  # iters=10
            server_first = wire_enc.send(client_mr[:half])
            server_second = mem_enc.send(client_mr[half:])
            assert server_first == client_mr[half:]  # the device encrypted on TX
            assert server_second == b"c" * half  # the device decrypted on TX
        if login_obj is not None:
            assert login_obj.query() == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID


def test_mlx5_crypto_mkey_old_api() -> None:
    lab = make_lab(CONNECTX6DX)
    run_traffic(lab, api="old")


def test_mlx5_crypto_wrapped_dek() -> None:
    lab = make_lab(CONNECTX6DX)
    run_traffic(lab, api="login_object")


def test_mlx5_crypto_plaintext_dek() -> None:
    lab = make_lab(CONNECTX6DX_PLAINTEXT)
    run_traffic(lab, api="plaintext")


def test_mlx5_crypto_signature_mkey_with_256_bit_key() -> None:
    lab = make_lab(CONNECTX6DX)
    run_traffic(lab, api="old", key_size=dv.MLX5DV_CRYPTO_KEY_SIZE_256, signature=True)


@pytest.mark.parametrize("api", ["plaintext", "login_object"])
def test_multi_block(api: str) -> None:
    """test_mlx5_{plaintext,wrapped}_dek_multi_block: msg_size 2048 = 2 data units per half."""
    profile = (
        DeviceProfile("ConnectX-7", "mt4129", engines=CONNECTX7.engines, wrapped_import=False)
        if api == "plaintext"
        else CONNECTX7
    )
    lab = make_lab(profile)
    run_traffic(lab, api=api, msg_size=2048)


def test_multi_block_on_the_lab_daemons_connectx6dx() -> None:
    """The lab daemon's ConnectX-6 Dx (CONNECTX6DX_MULTI_BLOCK) reports SINGLE | MULTI: the
    suite runs its wrapped multi-block test there, and the data comes out right."""
    run_traffic(make_lab(CONNECTX6DX_MULTI_BLOCK), api="login_object", msg_size=2048)


def test_multi_block_needs_a_multi_block_engine() -> None:
    """On a single-block engine (ConnectX-6 Dx) a 2-unit MKey fails at wr_complete (EINVAL,
    qp.c:2650-2662)."""
    lab = make_lab(CONNECTX6DX)
    with pytest.raises(dv.PyverbsRDMAError) as exc:
        run_traffic(lab, api="old", msg_size=2048, suite_skips="multi-block AES-XTS not supported")
    assert exc.value.error_code == errno.EINVAL


def test_skips_like_the_suite() -> None:
    """A context opened before commissioning caches 'not operational': the suite would skip
    its wrapped tests, and its multi-block ones on this single-block engine."""
    lab = InProcessCryptoLab(CONNECTX6DX)
    with dv.Mlx5Context(lab.device_name, transport=lab.transport) as ctx:
        assert suite_skip_reason(ctx, wrapped=True, multi_block=False) == (
            "wrapped mode not operational")
        assert suite_skip_reason(ctx, wrapped=False, multi_block=True) == (
            "multi-block AES-XTS not supported")
