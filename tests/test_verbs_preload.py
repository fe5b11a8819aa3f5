"""Real libibverbs / libmlx5 programs on a lab host, through the verbs preload.

The program is docs/examples/mlx5_crypto_login.c, compiled here against the Debian rdma-core
headers and linked against the real libibverbs and libmlx5, run under ``hcasim exec --host
crypto1`` against a commissioned crypto1: the login sequence with the man page's errnos, the
login-object API, DEKs; a flipped credential word gives the real EINVAL.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.api.crypto_lab import UserKeys
from tests.support.crypto_helpers import HOST, CryptoLab, crypto_lab, write_hex
from tests.support.verbs_clients import EXAMPLES, PRELOAD, build_preload, compile_program

XTS_KEY = bytes(range(1, 33))
ZERO = {"contexts": 0, "sessions_valid": 0, "sessions_invalid": 0, "deks": 0}

EXPECTED = """\
devices                                  1 (mlx5_0)
caps: wrapped crypto operational         yes
dek_create without login                 EINVAL
query_state                              NO_LOGIN
logout without login                     ENOENT
login comp_mask=1                        EINVAL
login credential_id >= 2^24              EINVAL
login                                    0
query_state                              VALID
login again                              EEXIST
dek_create in session                    0
dek_query                                0
dek opaque                               disk0
dek_query comp_mask=1                    EINVAL
logout                                   0
query_state                              NO_LOGIN
logout again                             ENOENT
mkey configure outside session           0
encrypt outside session                  0
decrypt outside session                  0
round trip outside session               same
dek_query outside session                EINVAL
dek_destroy outside session              0
login_create comp_mask=1                 EINVAL
login_create                             0
login_query                              VALID
login_query comp_mask=1                  EINVAL
dek_create with login object             0
dek_destroy                              0
login_destroy                            0
ok
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs' C program, built against the real libraries (and the preload built)."""
    build_preload()
    out = tmp_path_factory.mktemp("verbs-c") / "mlx5_crypto_login"
    return compile_program(EXAMPLES / "mlx5_crypto_login.c", out)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CryptoLab]:
    """One commissioned lab for this module."""
    yield from crypto_lab(tmp_path_factory.mktemp("verbs-lab"))


def secret_files(clab: CryptoLab, keys: UserKeys, cred: bytes | None = None) -> list[str]:
    """The program's arguments: ids and the wrapped credential and DEK files."""
    wrapped = keys.wrapped_credential() if cred is None else cred
    return [
        str(keys.credential_id),
        str(keys.import_kek_id),
        write_hex(clab.files / f"cred-{keys.credential_id}.hex", wrapped),
        write_hex(clab.files / f"dek-{keys.credential_id}.hex", keys.wrap_dek(XTS_KEY)),
    ]


def test_the_login_sequence_of_the_man_page_from_c(shared: CryptoLab, program: Path) -> None:
    keys = shared.add_user()
    result = shared.lab.run(HOST, str(program), *secret_files(shared, keys))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == EXPECTED
    # the process ended: its context, sessions and DEKs are gone
    shared.wait_for(**ZERO)


def test_a_flipped_credential_word_fails_with_einval(shared: CryptoLab, program: Path) -> None:
    keys = shared.add_user()
    wrapped = bytearray(keys.wrapped_credential())
    wrapped[8:16] = bytes(b ^ 0xFF for b in wrapped[8:16])
    result = shared.lab.run(HOST, str(program), *secret_files(shared, keys, bytes(wrapped)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].split() == ["login", "EINVAL"]
    assert errno.EINVAL == 22


def test_other_hosts_see_no_crypto_device(shared: CryptoLab, program: Path) -> None:
    keys = shared.add_user()
    result = shared.lab.run("node1", str(program), *secret_files(shared, keys))
    assert result.returncode == 1
    assert "no verbs device: empty list" in result.stderr


def test_no_secret_reaches_the_output(shared: CryptoLab, program: Path) -> None:
    keys = shared.add_user()
    result = shared.lab.run(HOST, str(program), *secret_files(shared, keys))
    assert result.returncode == 0
    text = (result.stdout + result.stderr).lower()
    for secret in (keys.wrapped_credential(), keys.wrap_dek(XTS_KEY), XTS_KEY, keys.kek):
        assert secret.hex() not in text
    log = (shared.lab.home / "daemon.log").read_text().lower()
    assert keys.wrapped_credential().hex() not in log


def test_rdma_link_show_answers_for_the_host(shared: CryptoLab, program: Path) -> None:
    result = shared.lab.run(HOST, "rdma", "link", "show", "-j")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"ifindex": 0, "ifname": "mlx5_0", "port": 1, "state": "ACTIVE",
         "physical_state": "LINK_UP"}
    ]
    assert shared.lab.run(HOST, "rdma", "link").stdout == (
        "link mlx5_0/1 state ACTIVE physical_state LINK_UP\n"
    )
    assert shared.lab.run(HOST, "rdma", "link", "show", "mlx5_9/1").returncode == 1
    assert json.loads(shared.lab.run("node1", "rdma", "link", "show", "-j").stdout) == []
    assert shared.lab.run(HOST, "rdma", "dev").returncode == 1


def test_outside_a_lab_host_and_without_a_daemon(tmp_path: Path, program: Path) -> None:
    """No HCASIM_HOST: no verbs device; a daemon that cannot be reached: the connect errno."""
    cred, dek = tmp_path / "c.hex", tmp_path / "d.hex"
    cred.write_text("00" * 48)
    dek.write_text("00" * 40)
    args = [str(program), "1", "1", str(cred), str(dek)]
    env = {"PATH": os.environ["PATH"], "LD_PRELOAD": str(PRELOAD)}
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stderr) == (1, "no verbs device: empty list\n")
    env.update(HCASIM_HOST=HOST, HCASIM_SOCKET=str(tmp_path / "no.sock"))
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stderr) == (1, "no verbs device: No such file or directory\n")
