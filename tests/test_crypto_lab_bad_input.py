"""Bad input to the crypto device in the running lab: each refused with the errno a real
client sees, nothing changed, and the daemon serving on.

Applications are processes on crypto1 (``hcasim exec``); the raw control-protocol cases talk
to the daemon's socket directly, as a broken client would.
"""

from __future__ import annotations

import base64
import errno
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from hcasim import mlx5dv as dv
from hcasim.api.client import ControlClient, LabError
from hcasim.devices.mlx5.errors import CryptoInvalidArgument, WcStatus
from hcasim.lab.crypto_protocol import MAX_TRANSFER
from hcasim.mlx5dv import SocketCryptoTransport
from tests.support.crypto_helpers import (
    ADMIN,
    HOST,
    XTS_KEY,
    App,
    CryptoLab,
    crypto_lab,
    login,
    state_of,
    wrapped_dek_hex,
)
from tests.support.xts import xts_reference

NO_LOGIN = dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN


@pytest.fixture(scope="module")
def clab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CryptoLab]:
    yield from crypto_lab(tmp_path_factory.mktemp("crypto-bad"))


@pytest.fixture
def app(clab: CryptoLab) -> Iterator[App]:
    with clab.app() as application:
        application.ok("open")
        yield application


def refused(reply: dict[str, Any], code: int, kind: str = "PyverbsRDMAError") -> bool:
    return (reply.get("error"), reply.get("code")) == (kind, code)


def test_wrong_length_credentials(app: App) -> None:
    wrapped = ADMIN.wrapped_credential()
    # The C struct holds exactly 48 bytes: pyverbs-style refusal before any call.
    for size in (0, 40, 47, 49):
        assert app("login", cred=wrapped[:size].hex().ljust(2 * size, "0"))["error"] == (
            "PyverbsUserError"
        )
    # The ext API copies credential_len bytes into the 48-byte field (rdma-core does not check
    # the length, docs/sources.md §14.5): shorter does not unwrap; longer is cut to 48.
    for length in (0, 40, 47):
        r = app("login_create", name="l", cred=wrapped.hex(), len=length)
        assert refused(r, errno.EINVAL), r
    app.ok("login_create", name="l", cred=(wrapped + bytes(16)).hex(), len=64)
    assert app.ok("login_query", name="l")["state"] == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
    app.ok("login_destroy", name="l")


@pytest.mark.parametrize("position", [0, 7, 8, 30, 47])
def test_corrupted_wrapping(app: App, position: int) -> None:
    wrapped = bytearray(ADMIN.wrapped_credential())
    wrapped[position] ^= 0x80
    assert app("login", cred=wrapped.hex())["rc"] == errno.EINVAL
    assert state_of(app) == NO_LOGIN
    assert login(app, ADMIN) == 0
    dek = bytearray(ADMIN.wrap_dek(XTS_KEY))
    dek[position % len(dek)] ^= 0x01
    assert refused(app("dek", name="d", key=dek.hex()), errno.EINVAL)


def test_unknown_ids(app: App, clab: CryptoLab) -> None:
    wrapped = ADMIN.wrapped_credential().hex()
    for ids in ({"cred_id": 63}, {"kek_id": 63}, {"cred_id": 1 << 24}, {"kek_id": (1 << 32) - 1}):
        assert app("login", cred=wrapped, **ids)["rc"] == errno.EINVAL, ids
    assert state_of(app) == NO_LOGIN
    r = clab.crypto("kek", "delete", *clab.as_officer(), "63")
    assert r.returncode == 1 and "import KEK 63 does not exist" in r.stderr


def test_non_zero_comp_masks(app: App) -> None:
    wrapped = ADMIN.wrapped_credential().hex()
    assert app("login", cred=wrapped, comp_mask=2)["rc"] == errno.EINVAL
    assert refused(app("login_create", name="l", cred=wrapped, comp_mask=1), errno.EINVAL)
    app.ok("login_create", name="l", cred=wrapped)
    assert refused(app("login_query", name="l", comp_mask=1), errno.EINVAL)
    app.ok("dek", name="d", key=wrapped_dek_hex(ADMIN), comp_mask=1, login="l")
    assert refused(app("dek", name="x", key=wrapped_dek_hex(ADMIN), comp_mask=2), errno.EINVAL)
    assert refused(app("dek_query", name="d", comp_mask=1), errno.EINVAL)
    assert app.ok("dek_query", name="d")["opaque"] == "dek"


def test_deks_of_the_wrong_size_or_kind(app: App) -> None:
    assert login(app, ADMIN) == 0
    k128, k256 = wrapped_dek_hex(ADMIN), ADMIN.wrap_dek(bytes(range(64))).hex()
    tagged = ADMIN.wrap_dek(XTS_KEY, b"tagtag01").hex()
    cases = [
        {"key": k128, "key_size": dv.MLX5DV_CRYPTO_KEY_SIZE_256},  # 40 bytes read as 72
        {"key": k256, "key_size": dv.MLX5DV_CRYPTO_KEY_SIZE_128},  # 72 bytes read as 40
        {"key": k128, "has_keytag": True},  # 40 bytes read as 48
        {"key": tagged},  # 48 bytes read as 40
        {"key": k128, "key_size": 2},
        {"key": k128, "key_purpose": 1},
        {"key": XTS_KEY.hex(), "comp_mask": dv.MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN},  # plaintext
    ]
    for case in cases:
        assert refused(app("dek", name="d", **case), errno.EINVAL), case
    assert app("dek", name="d", key="00" * 129)["error"] == "PyverbsUserError"  # > key[128]
    app.ok("dek", name="d128", key=k128)
    app.ok("dek", name="d256", key=k256, key_size=dv.MLX5DV_CRYPTO_KEY_SIZE_256)
    app.ok("dek", name="tagged", key=tagged, has_keytag=True)


def test_keytags_and_the_multi_block_engine(app: App) -> None:
    assert login(app, ADMIN) == 0
    app.ok("dek", name="t", key=ADMIN.wrap_dek(XTS_KEY, b"tagtag01").hex(), has_keytag=True)
    app.ok("mkey", name="wrong", dek="t", length=512, keytag=b"tagtag02".hex())
    r = app("encrypt", mkey="wrong", data=bytes(512).hex())
    assert (r["error"], r["wc_status"]) == ("Mlx5CompletionError", WcStatus.LOC_PROT_ERR)
    # crypto1 has a multi-block engine: one MKey spans eight 512-byte data units.
    app.ok("mkey", name="right", dek="t", length=4096, keytag=b"tagtag01".hex())
    plain = bytes(range(256)) * 16
    out = app.ok("encrypt", mkey="right", data=plain.hex())["data"]
    assert out == xts_reference(XTS_KEY, 0, plain).hex()
    r = app("encrypt", mkey="right", data=bytes(47).hex())  # job-size rule
    assert (r["error"], r["wc_status"]) == ("Mlx5CompletionError", WcStatus.LOC_LEN_ERR)


def test_unknown_device_names(clab: CryptoLab) -> None:
    probe = (
        "from hcasim.mlx5dv import Mlx5Context, PyverbsRDMAError\n"
        "try:\n    Mlx5Context({name!r})\n"
        "except PyverbsRDMAError as e:\n    print(e, e.error_code)\n"
    )
    # As pyverbs when ibv_get_device_list does not list the name: no errno (-1).
    for host, name in ((HOST, "mlx5_1"), (HOST, "mlx4_0"), ("node1", "mlx5_0")):
        r = clab.lab.run(host, sys.executable, "-c", probe.format(name=name))
        assert r.stdout == f"Failed to find device {name} -1\n", (host, name, r.stderr)
    # Outside hcasim exec no device exists at all (the lab runs, but the process is on no host).
    env = {k: v for k, v in clab.lab.env().items() if k != "HCASIM_HOST"}
    out = subprocess.run([sys.executable, "-c", probe.format(name="mlx5_0")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout == "Failed to find device mlx5_0 -1\n"


# The control protocol, as a broken client would use it --------------------------------------


def raw(clab: CryptoLab, host: str | None = HOST) -> ControlClient:
    return ControlClient(str(clab.lab.home / "hcasim.sock"), host=host)


def call_errno(client: ControlClient, op: str, **args: Any) -> int:
    try:
        client.call(op, **args)
    except LabError as exc:
        return exc.errno
    return 0


def test_control_protocol_refusals(clab: CryptoLab) -> None:
    before = clab.state()
    nowhere = raw(clab, host=None)
    assert call_errno(nowhere, "mlx5_open", device="mlx5_0") == errno.ENODEV  # no hello
    assert call_errno(nowhere, "mlx5_reg", device="mlx5_0", register_id=0xC002, method=1,
                      data="") == errno.ENODEV
    nowhere.close()
    client = raw(clab)
    assert call_errno(client, "mlx5_crypto_login_query_state") == errno.EBADF  # no context
    assert call_errno(client, "mlx5_open") == errno.EINVAL
    assert call_errno(client, "mlx5_open", device=5) == errno.EINVAL
    assert call_errno(client, "mlx5_open", device="mlx5_9") == errno.ENODEV
    assert client.call("mlx5_open", device="mlx5_0")["caps"]["crypto_engines"] == 6
    assert call_errno(client, "mlx5_open", device="mlx5_0") == errno.EBUSY
    bad_login: list[dict[str, Any]] = [
        {"credential": "!!not base64", "credential_id": 0, "import_kek_id": 0, "comp_mask": 0},
        {"credential": "AAAA", "credential_id": -1, "import_kek_id": 0, "comp_mask": 0},
        {"credential": "AAAA", "credential_id": True, "import_kek_id": 0, "comp_mask": 0},
        {"credential": "AAAA", "credential_id": 0, "import_kek_id": "0", "comp_mask": 0},
        {"credential": "A" * 4000, "credential_id": 0, "import_kek_id": 0, "comp_mask": 0},
        {"credential_id": 0, "import_kek_id": 0, "comp_mask": 0},
    ]
    for args in bad_login:
        assert call_errno(client, "mlx5_crypto_login", **args) == errno.EINVAL, args
    # Unknown object ids are firmware refusals (BAD_RES -> EINVAL), carried in the reply.
    for op, args in (
        ("mlx5_dek_query", {"dek": 12345, "comp_mask": 0}),
        ("mlx5_dek_destroy", {"dek": 12345}),
        ("mlx5_mkey_destroy", {"mkey": 12345}),
        ("mlx5_crypto_login_query", {"login": 12345, "comp_mask": 0}),
        ("mlx5_mkey_transfer", {"mkey": 12345, "direction": 0, "data": "", "offset": 0}),
    ):
        fault = client.call(op, **args)["crypto_error"]
        assert (fault["errno"], fault["status"]) == (errno.EINVAL, 0x5), op
    for args in ({"direction": 2}, {"offset": -1}, {"data": 5}):
        full = {"mkey": 1, "direction": 0, "data": "", "offset": 0, **args}
        assert call_errno(client, "mlx5_mkey_transfer", **full) == errno.EINVAL
    mkey = client.call("mlx5_mkey_create", create_flags=5, max_entries=1)["mkey"]
    assert call_errno(client, "mlx5_mkey_configure", mkey=mkey, length=512,
                      crypto="x") == errno.EINVAL
    # Registers: unknown id, short data, oversized data, unknown method.
    reg = client.call("mlx5_reg", device="mlx5_0", register_id=0x9001, method=1, data="")
    assert reg["status"] == 0x4  # REG_NOT_SUPP
    reg = client.call("mlx5_reg", device="mlx5_0", register_id=0xC005, method=2,
                      data=base64.b64encode(bytes(16)).decode())
    assert reg["status"] == 0x24  # LEN_TOO_SMALL
    reg = client.call("mlx5_reg", device="mlx5_0", register_id=0xC002, method=3,
                      data=base64.b64encode(bytes(0x80)).decode())
    assert reg["status"] == 0x6  # METHOD_NOT_SUPP
    assert call_errno(client, "mlx5_reg", device="mlx5_0", register_id=0xC002, method=1,
                      data=base64.b64encode(bytes(5000)).decode()) == errno.EINVAL
    client.call("ping")
    client.close()
    assert clab.wait_for(contexts=0, mkeys=0)["credentials"] == before["credentials"]


def test_socket_transport_refusals(clab: CryptoLab) -> None:
    """The socket transport from this process: errors come back as the engine's classes."""
    transport = SocketCryptoTransport(str(clab.lab.home / "hcasim.sock"), HOST)
    with dv.Mlx5Context("mlx5_0", transport=transport) as ctx:
        with pytest.raises(CryptoInvalidArgument) as exc:
            transport.dek_query(ctx._handle(), 999, 0)
        assert exc.value.status is not None and exc.value.status.name == "BAD_RES"
        mkey = dv.Mlx5Mkey(dv.PD(ctx), dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO, 1)
        with pytest.raises(dv.PyverbsRDMAError) as big:
            mkey.send(bytes(MAX_TRANSFER + 1))
        assert big.value.error_code == errno.EINVAL
    with pytest.raises(dv.PyverbsUserError):
        dv.Mlx5Context.query_login_state(ctx)  # closed
    lost = SocketCryptoTransport(str(clab.lab.home / "nothing.sock"), HOST)
    with pytest.raises(dv.PyverbsRDMAError, match="Failed to find device mlx5_0"):
        dv.Mlx5Context("mlx5_0", transport=lost)
