"""Lifetimes of the crypto objects in the running lab.

Volatile (contexts, sessions, login objects, DEKs, MKeys) end with their process, a driver
restart, a host reboot or a daemon restart; non-volatile (operational mode, credentials, import
KEKs) survive all of them, and a kill -9 of the daemon in the middle of officer operations
leaves each one done or not done.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim import mlx5dv as dv
from hcasim.api.crypto_lab import UserKeys
from hcasim.devices.mlx5.keywrap import wrap_credential
from tests.support.crypto_helpers import (
    ADMIN,
    HOST,
    XTS_KEY,
    CryptoLab,
    crypto_lab,
    login,
    state_of,
    wrapped_dek_hex,
    write_hex,
)
from tests.support.xts import xts_reference

VALID = dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID
NO_LOGIN = dv.MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN
ZERO = {"contexts": 0, "sessions_valid": 0, "sessions_invalid": 0, "deks": 0, "mkeys": 0}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CryptoLab]:
    """One commissioned lab for the tests that do not restart or reset anything."""
    yield from crypto_lab(tmp_path_factory.mktemp("crypto-life"))


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[CryptoLab]:
    """A commissioned lab of this test's own."""
    yield from crypto_lab(tmp_path)


def daemon_pid(clab: CryptoLab) -> int:
    return int((clab.lab.home / "daemon.lock").read_text())


def test_a_dying_process_takes_its_session_and_deks_along(shared: CryptoLab) -> None:
    user = shared.add_user()
    shared.wait_for(**ZERO)
    with shared.app() as survivor:
        victim = shared.app()
        for app in (victim, survivor):
            app.ok("open")
            assert login(app, user) == 0
            app.ok("dek", name="d", key=wrapped_dek_hex(user))
            app.ok("mkey", name="m", dek="d", length=512)
        shared.wait_for(contexts=2, sessions_valid=2, deks=2, mkeys=2)
        victim.kill()
        shared.wait_for(contexts=1, sessions_valid=1, deks=1, mkeys=1)
        # The other process keeps its own session, DEK and MKey.
        assert state_of(survivor) == VALID
        plain = b"x" * 512
        assert survivor.ok("encrypt", mkey="m", data=plain.hex())["data"] == (
            xts_reference(XTS_KEY, 0, plain).hex()
        )
    shared.wait_for(**ZERO)


def test_closing_a_context_ends_its_session_and_deks(shared: CryptoLab) -> None:
    shared.wait_for(**ZERO)
    with shared.app() as app:
        app.ok("open", ctx="a")
        app.ok("open", ctx="b")
        for ctx in ("a", "b"):
            assert login(app, ADMIN, ctx=ctx) == 0
        app.ok("dek", ctx="a", name="d", key=wrapped_dek_hex(ADMIN))
        shared.wait_for(contexts=2, sessions_valid=2, deks=1)
        app.ok("close", ctx="a")
        shared.wait_for(contexts=1, sessions_valid=1, deks=0)
        assert state_of(app, "b") == VALID
    shared.wait_for(**ZERO)


def test_login_objects_end_with_their_process(shared: CryptoLab) -> None:
    shared.wait_for(**ZERO)
    app = shared.app()
    app.ok("open")
    app.ok("login_create", name="l", cred=ADMIN.wrapped_credential().hex())
    app.ok("dek", name="d", key=wrapped_dek_hex(ADMIN),
           comp_mask=dv.MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN, login="l")
    assert app.ok("login_query", name="l")["state"] == VALID
    shared.wait_for(contexts=1, sessions_valid=1, deks=1)
    app.kill()
    shared.wait_for(**ZERO)


@pytest.mark.parametrize("how", ["hcasim down", "kill -9"])
def test_daemon_restart_keeps_nv_objects_but_not_sessions(fresh: CryptoLab, how: str) -> None:
    user = fresh.add_user()
    app = fresh.app()
    app.ok("open")
    assert login(app, user) == 0
    app.ok("dek", name="d", key=wrapped_dek_hex(user))
    before = fresh.state()
    assert (before["credentials"], before["import_keks"], before["sessions_valid"]) == (2, 2, 1)
    if how == "kill -9":
        os.kill(daemon_pid(fresh), signal.SIGKILL)
    else:
        fresh.lab.down()
    # The application's context died with the daemon: EIO, as a disassociated device.
    assert app("state") == {"rc": errno.EIO, "state": None}
    assert app("dek_query", name="d")["code"] == errno.EIO
    fresh.lab.up()
    after = fresh.state()
    assert after["mode"] == "operational"
    assert (after["credentials"], after["import_keks"]) == (2, 2)
    assert {k: after[k] for k in ZERO} == ZERO
    assert app("state")["rc"] == errno.EIO  # a new daemon does not revive old contexts
    app.exit()
    with fresh.app() as again:
        again.ok("open")
        assert state_of(again) == NO_LOGIN
        assert login(again, user) == 0
        again.ok("dek", name="d", key=wrapped_dek_hex(user))
    r = fresh.crypto("credential", "list", *fresh.as_officer())
    assert r.stdout == "ID  ROLE\n0   officer\n1   user\n"


OFFICER_LOOP = textwrap.dedent(
    """
    import sys
    from tests.support.crypto_helpers import Officer
    from hcasim.testing import LabHandle
    from pathlib import Path
    officer = Officer(LabHandle(Path(sys.argv[1]))).officer
    op = int(sys.argv[2])
    while True:
        # Even operations add credential n, odd ones import KEK n (n: the id it will get).
        n = op // 2 + 1
        if op % 2 == 0:
            assert officer.add_credential(bytes([n]) * 40) == n
        else:
            assert officer.add_import_kek(bytes([n]) * 32) == n
        print(op, flush=True)
        op += 1
    """
)


def test_kill_9_in_the_middle_of_officer_operations(fresh: CryptoLab, tmp_path: Path) -> None:
    """Each officer operation is one SQLite transaction: killed at any moment, the daemon
    comes back with it done or not done, and every stored credential and KEK usable."""
    script = tmp_path / "officer_loop.py"
    script.write_text(OFFICER_LOOP)
    env = fresh.lab.env()
    # The script imports tests.support: the repository root goes on its path.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, (str(Path(__file__).parents[1]), env.get("PYTHONPATH"))))
    done = 0
    for threshold in (3, 8, 1):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(fresh.lab.home), str(done)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        assert proc.stdout is not None
        acked = [int(proc.stdout.readline()) for _ in range(threshold)]
        os.kill(daemon_pid(fresh), signal.SIGKILL)
        # read on through the same text stream: readline() may already hold later lines in
        # its buffer, which communicate() (reading the pipe itself) would never see
        rest = proc.stdout.read()
        assert proc.stderr is not None
        proc.stderr.read()  # the officer's traceback when it lost the daemon: drained
        proc.wait(timeout=30)
        acked += [int(line) for line in rest.split()]
        assert proc.returncode != 0  # it lost the daemon
        last_acked = acked[-1] + 1  # operations known done
        fresh.lab.up()
        state = fresh.state()
        applied = (state["credentials"] - 1) + (state["import_keks"] - 1)
        assert applied in (last_acked, last_acked + 1), (acked, state)
        assert state["credentials"] - 1 == (applied + 1) // 2
        done = applied
    # Nothing torn: every stored credential and KEK still works for a login.
    with fresh.app() as app:
        app.ok("open")
        for n in range(1, (done + 1) // 2 + 1):
            credential = UserKeys(n, 0, bytes([n]) * 40, ADMIN.kek)
            assert login(app, credential) == 0, n
            assert app("logout")["rc"] == 0
        for n in range(1, done // 2 + 1):
            through_kek = UserKeys(0, n, ADMIN.credential, bytes([n]) * 32)
            assert login(app, through_kek) == 0, n
            assert app("logout")["rc"] == 0


def test_driver_restart_ends_contexts_and_keeps_the_firmware(fresh: CryptoLab) -> None:
    r = fresh.crypto("going-to-commissioning", "--host", HOST)
    assert r.returncode == 0, r.stderr
    with fresh.app() as app:
        app.ok("open")
        assert login(app, ADMIN) == 0
        app.ok("dek", name="d", key=wrapped_dek_hex(ADMIN))
        assert fresh.lab.hcasim("driver", "restart", HOST).returncode == 0
        assert app("state")["rc"] == errno.EIO
        state = fresh.state()
        assert {k: state[k] for k in ZERO} == ZERO
        # The firmware kept running: still operational, the return to commissioning pending.
        assert (state["mode"], state["going_to_commissioning"]) == ("operational", True)
        app.ok("open", ctx="new")
        assert login(app, ADMIN, ctx="new") == 0


def test_going_to_commissioning_takes_effect_at_the_host_reboot(fresh: CryptoLab) -> None:
    user = fresh.add_user()
    r = fresh.crypto("going-to-commissioning", "--host", HOST)
    assert r.returncode == 0
    assert "returns to commissioning mode at the next firmware reset" in r.stdout
    with fresh.app() as app:
        app.ok("open")
        flags = app.ok("caps")["flags"]
        assert flags & dv.MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_GOING_TO_COMMISSIONING
        assert login(app, user) == 0
        assert "(to commissioning at next reset)" in fresh.lab.hcasim("status").stdout
        fresh.lab.reboot(HOST)
        assert app("state")["rc"] == errno.EIO
    state = fresh.state()
    assert (state["mode"], state["credentials"], state["import_keks"]) == ("commissioning", 0, 0)
    with fresh.app() as app:
        app.ok("open")
        assert app.ok("caps")["flags"] == dv.MLX5DV_CRYPTO_CAPS_CRYPTO
        assert login(app, ADMIN) == errno.EOPNOTSUPP
    # A new officer commissions it again; the old keys are gone for good.
    new_cred, new_kek = os.urandom(40), os.urandom(32)
    r = fresh.crypto("commission", "--host", HOST,
                     "--credential-file", write_hex(fresh.files / "c2.hex", new_cred),
                     "--kek-file", write_hex(fresh.files / "k2.hex", new_kek))
    assert r.returncode == 0, r.stderr
    assert "import KEK 0 (256-bit)" in r.stdout
    with fresh.app() as app:
        app.ok("open")
        assert login(app, ADMIN) == errno.EINVAL
        assert login(app, UserKeys(0, 0, new_cred, new_kek)) == 0


def test_cancelled_return_to_commissioning(fresh: CryptoLab) -> None:
    assert fresh.crypto("going-to-commissioning", "--host", HOST).returncode == 0
    r = fresh.crypto("going-to-commissioning", "--host", HOST, "--cancel")
    assert (r.returncode, r.stdout) == (0, f"hcasim: mlx5_0 on {HOST} stays operational at "
                                           "the next reset\n")
    fresh.lab.reboot(HOST)
    assert (fresh.state()["mode"], fresh.state()["credentials"]) == ("operational", 1)


def test_a_context_keeps_the_caps_it_opened_with(tmp_path: Path) -> None:
    """rdma-core reads the caps once, at context open (docs/sources.md §14.1): a context opened in
    commissioning mode keeps getting EOPNOTSUPP after the device became operational."""
    for clab in crypto_lab(tmp_path, commission=False):
        assert clab.state()["mode"] == "commissioning"
        with clab.app() as app:
            app.ok("open", ctx="early")
            assert login(app, ADMIN, ctx="early") == errno.EOPNOTSUPP
            clab.commission()
            assert login(app, ADMIN, ctx="early") == errno.EOPNOTSUPP
            app.ok("open", ctx="late")
            assert login(app, ADMIN, ctx="late") == 0


def test_a_lost_storage_key_fails_the_device_instead_of_losing_its_keys(
    fresh: CryptoLab, tmp_path: Path
) -> None:
    key_file = fresh.lab.home / "crypto-storage.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    saved = tmp_path / "saved.key"
    fresh.lab.down()
    key_file.rename(saved)
    fresh.lab.up()
    state = fresh.state()
    assert state["mode"] == "failed" and "crypto-storage.key is missing" in state["reason"]
    assert "failed" in fresh.lab.hcasim("status").stdout
    r = fresh.lab.run(HOST, sys.executable, "-c", OPEN_MLX5_0)
    assert r.stdout == "PyverbsRDMAError: Failed to open device mlx5_0. Errno: 5, " \
                       "Input/output error (5)\n"
    r = fresh.crypto("kek", "list", *fresh.as_officer())
    assert r.returncode == 1 and "the device failed" in r.stderr
    assert not key_file.exists()  # not silently replaced by a new one
    fresh.lab.down()
    key_file.write_text("zz" * 32 + "\n")  # damaged: 64 characters, not hex
    fresh.lab.up()
    assert "is not hexadecimal" in fresh.state()["reason"]
    fresh.lab.down()
    saved.rename(key_file)
    fresh.lab.up()
    assert (fresh.state()["mode"], fresh.state()["credentials"]) == ("operational", 1)
    with fresh.app() as app:
        app.ok("open")
        assert login(app, ADMIN) == 0


OPEN_MLX5_0 = """
from hcasim.mlx5dv import Mlx5Context, PyverbsRDMAError
try:
    Mlx5Context("mlx5_0")
except PyverbsRDMAError as exc:
    print(f"PyverbsRDMAError: {exc} ({exc.error_code})")
"""


def test_wrapped_credential_unwraps_under_the_commissioned_kek() -> None:
    """The officer's credential 0 wrapped under KEK 0 is docs/sources.md §15.4's derived example."""
    assert wrap_credential(ADMIN.kek, ADMIN.credential).hex() == (
        "ce411e908b3a77d1206bdb38496b3011c8da790b13bea3ff4042381a498caae7"
        "67932d3d1e9ba0723c66fda7cc0c6405"
    )
