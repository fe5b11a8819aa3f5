"""``hcasim crypto``: the crypto officer's command line, its files, and secrets kept secret."""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim import mlx5dv as dv
from hcasim.api.crypto_lab import UserKeys
from tests.support.crypto_helpers import (
    ADMIN,
    HOST,
    CryptoLab,
    crypto_lab,
    login,
    state_of,
    two_crypto_hosts,
    wrapped_dek_hex,
    write_hex,
)


@pytest.fixture
def blank(tmp_path: Path) -> Iterator[CryptoLab]:
    """A lab whose crypto1 is still in commissioning mode."""
    yield from crypto_lab(tmp_path, commission=False)


@pytest.fixture(scope="module")
def blank_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CryptoLab]:
    """A lab in commissioning mode for the tests whose refusals change nothing."""
    yield from crypto_lab(tmp_path_factory.mktemp("crypto-blank"), commission=False)


@pytest.fixture(scope="module")
def clab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CryptoLab]:
    yield from crypto_lab(tmp_path_factory.mktemp("crypto-officer"))


STATUS_HEAD = "HOST     VERBS   CRYPTO         CREDENTIALS  IMPORT KEKS  CONTEXTS  SESSIONS  DEKS"


def test_default_lab_has_crypto1_in_commissioning_mode(blank: CryptoLab) -> None:
    device = blank.lab.device_state(HOST)
    assert device["device"] == "/dev/mst/mt4125_pci_cr0"
    assert (device["model"], device["verbs_device"]) == ("ConnectX-6 Dx", "mlx5_0")
    assert device["crypto"] == {
        "mode": "commissioning", "going_to_commissioning": False, "import_method": "wrapped",
        "aes_xts": "multi-block", "credentials": 0, "import_keks": 0, "max_credentials": 64,
        "max_import_keks": 64, "contexts": 0, "sessions_valid": 0, "sessions_invalid": 0,
        "deks": 0, "mkeys": 0,
    }
    text = blank.lab.hcasim("status").stdout.splitlines()
    assert text[-4].split() == [
        "crypto1", "/dev/mst/mt4125_pci_cr0", "ConnectX-6", "Dx", "22.36.1010", "-", "-", "-"
    ]
    assert text[-3:] == [
        "",
        STATUS_HEAD,
        "crypto1  mlx5_0  commissioning  0/64         0/64         0         0         0",
    ]
    r = blank.crypto("status")
    assert r.stdout.splitlines() == text[-2:]
    with blank.app() as app:
        app.ok("open")
        caps = app.ok("caps")
        assert caps == {
            "failed_selftests": 0,
            "crypto_engines": dv.MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_SINGLE_BLOCK
            | dv.MLX5DV_CRYPTO_ENGINES_CAP_AES_XTS_MULTI_BLOCK,
            "wrapped_import_method": dv.MLX5DV_CRYPTO_WRAPPED_IMPORT_METHOD_CAP_AES_XTS,
            "log_max_num_deks": 16,
            "flags": dv.MLX5DV_CRYPTO_CAPS_CRYPTO,
        }
        assert login(app, ADMIN) == errno.EOPNOTSUPP


def test_commission_then_status(blank: CryptoLab) -> None:
    # White space anywhere and upper case are fine in a secret file.
    spaced = blank.files / "spaced.hex"
    digits = ADMIN.credential.hex().upper()
    spaced.write_text(" ".join(digits[i : i + 8] for i in range(0, 80, 8)).replace(" ", "\n", 4))
    r = blank.crypto("commission", "--host", HOST, "--credential-file", str(spaced),
                     "--kek-file", blank.kek_file)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == (
        "hcasim: mlx5_0 on crypto1 is operational: credential 0 (officer) and import KEK 0 "
        "(128-bit) written\n"
    )
    again = blank.crypto("commission", "--host", HOST, "--credential-file", blank.cred_file,
                         "--kek-file", blank.kek_file)
    assert again.returncode == 1
    assert again.stderr == (
        "hcasim: CRYPTO_OPERATIONAL refused (BAD_PARAM): the first credential and import KEK "
        "can be written only once\n"
    )
    with blank.app() as app:
        app.ok("open")
        assert app.ok("caps")["flags"] == (
            dv.MLX5DV_CRYPTO_CAPS_CRYPTO | dv.MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_OPERATIONAL
        )
        assert login(app, ADMIN) == 0
        app.ok("dek", name="d", key=wrapped_dek_hex(ADMIN))
        assert blank.crypto("status").stdout.splitlines()[1] == (
            "crypto1  mlx5_0  operational  1/64         1/64         1         1         1"
        )
        data = json.loads(blank.crypto("status", "--json", "--host", HOST).stdout)
        assert [(d["host"], d["verbs_device"], d["crypto"]["sessions_valid"]) for d in data] == [
            (HOST, "mlx5_0", 1)
        ]


def test_add_list_and_delete_credentials_and_keks(clab: CryptoLab) -> None:
    files = clab.files
    user_cred = write_hex(files / "user.hex", os.urandom(40))
    officer2 = os.urandom(40)
    r = clab.crypto("credential", "add", *clab.as_officer(), "--credential-file", user_cred)
    assert (r.returncode, r.stdout) == (0, "hcasim: credential 1 (user) added to mlx5_0 on "
                                           "crypto1\n")
    r = clab.crypto("credential", "add", *clab.as_officer(), "--role", "officer",
                    "--credential-file", write_hex(files / "officer2.hex", officer2))
    assert r.stdout == "hcasim: credential 2 (officer) added to mlx5_0 on crypto1\n"
    kek2 = os.urandom(16)
    r = clab.crypto("kek", "add", *clab.as_officer(), "--kek-file",
                    write_hex(files / "kek2.hex", kek2))
    assert r.stdout == "hcasim: import KEK 1 (128-bit) added to mlx5_0 on crypto1\n"
    r = clab.crypto("kek", "add", *clab.as_officer(), "--kek-file",
                    write_hex(files / "kek3.hex", os.urandom(32)))
    assert r.stdout == "hcasim: import KEK 2 (256-bit) added to mlx5_0 on crypto1\n"
    r = clab.crypto("credential", "list", *clab.as_officer())
    assert r.stdout == "ID  ROLE\n0   officer\n1   user\n2   officer\n"
    r = clab.crypto("kek", "list", *clab.as_officer())
    assert r.stdout == "ID  SIZE\n0   128-bit\n1   128-bit\n2   256-bit\n"
    # The second officer, logging in with credential 2 through KEK 1, manages the tables too.
    second = ["--host", HOST, "--officer-credential-file", str(files / "officer2.hex"),
              "--officer-kek-file", str(files / "kek2.hex"), "--officer-credential-id", "2",
              "--officer-kek-id", "1"]
    r = clab.crypto("kek", "delete", *second, "2")
    assert (r.returncode, r.stdout) == (0, "hcasim: import KEK 2 deleted from mlx5_0 on "
                                           "crypto1\n")
    r = clab.crypto("credential", "delete", *second, "1")
    assert r.stdout == "hcasim: credential 1 deleted from mlx5_0 on crypto1\n"
    assert clab.crypto("credential", "list", *second).stdout == (
        "ID  ROLE\n0   officer\n2   officer\n"
    )
    assert clab.crypto("kek", "list", *second).stdout == "ID  SIZE\n0   128-bit\n1   128-bit\n"
    # The freed id is the next one handed out.
    r = clab.crypto("credential", "add", *second, "--credential-file", user_cred)
    assert r.stdout == "hcasim: credential 1 (user) added to mlx5_0 on crypto1\n"
    # A user-role credential is no officer.
    as_user = ["--host", HOST, "--officer-credential-file", user_cred,
               "--officer-kek-file", clab.kek_file, "--officer-credential-id", "1"]
    r = clab.crypto("credential", "list", *as_user)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (
        "hcasim: CREDENTIAL_HANDLE refused (BAD_PARAM): credential 1 does not have the "
        "officer role\n"
    )
    # The new user logs in with what the officer gave it.
    with clab.app() as app:
        app.ok("open")
        user = UserKeys(1, 1, bytes.fromhex(Path(user_cred).read_text()), kek2)
        assert login(app, user) == 0 and state_of(app) == dv.MLX5DV_CRYPTO_LOGIN_STATE_VALID


def test_refusals_name_the_problem_and_change_nothing(clab: CryptoLab) -> None:
    before = clab.state()
    wrong_officer = ["--host", HOST, "--officer-credential-file",
                     write_hex(clab.files / "not-officer.hex", os.urandom(40)),
                     "--officer-kek-file", clab.kek_file]
    r = clab.crypto("credential", "delete", *wrong_officer, "0")
    assert r.stderr == (
        "hcasim: CREDENTIAL_HANDLE refused (BAD_PARAM): the credential does not match "
        "credential 0\n"
    )
    r = clab.crypto("credential", "delete", *clab.as_officer(), "9")
    refused = "hcasim: CREDENTIAL_HANDLE refused (BAD_PARAM): "
    assert r.stderr == refused + "credential 9 does not exist\n"
    r = clab.crypto("kek", "delete", *clab.as_officer(), "9")
    refused = "hcasim: IMPORT_KEK_HANDLE refused (BAD_PARAM): "
    assert r.stderr == refused + "import KEK 9 does not exist\n"
    r = clab.crypto("kek", "delete", *clab.as_officer(), "16777216")
    assert r.returncode == 2 and "invalid 24-bit id value: '16777216'" in r.stderr
    r = clab.crypto("credential", "list", "--host", "nosuch", "--officer-credential-file",
                    clab.cred_file, "--officer-kek-file", clab.kek_file)
    assert r.stderr == "hcasim: unknown host 'nosuch'\n"
    r = clab.crypto("going-to-commissioning", "--host", "node1")
    assert r.stderr == "hcasim: node1: no verbs device 'mlx5_0' on this host\n"
    r = clab.crypto("commission", "--host", HOST, "--device", "mlx5_1", "--credential-file",
                    clab.cred_file, "--kek-file", clab.kek_file)
    assert r.stderr == "hcasim: crypto1: no verbs device 'mlx5_1' on this host\n"
    r = clab.crypto("status", "--host", "nosuch")
    assert r.stderr == "hcasim: unknown host 'nosuch'\n"
    assert clab.state() == before


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (bytes(39).hex(), "a credential must be 40 bytes (80 hex digits); this file holds 39 "
                          "bytes"),
        (bytes(41).hex(), "a credential must be 40 bytes (80 hex digits); this file holds 41 "
                          "bytes"),
        ("", "a credential must be 40 bytes (80 hex digits); this file holds 0 bytes"),
        ("0x" + bytes(40).hex(), "line 1, column 2: not a hex digit (the file holds only hex "
                                 "digits and white space)"),
        (bytes(40).hex() + "\n# officer\n", "line 2, column 1: not a hex digit (the file holds "
                                            "only hex digits and white space)"),
        ("abc", "odd number of hex digits (3)"),
        ("\u00e9" * 80, "not a hex text file"),
    ],
)
def test_bad_credential_files(blank_shared: CryptoLab, content: str, error: str) -> None:
    blank = blank_shared
    path = blank.files / "cred.hex"
    path.write_text(content)
    r = blank.crypto("commission", "--host", HOST, "--credential-file", str(path),
                     "--kek-file", blank.kek_file)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", f"hcasim: {path}: {error}\n")
    assert blank.state()["mode"] == "commissioning"


def test_bad_kek_files_and_missing_files(blank_shared: CryptoLab) -> None:
    blank = blank_shared
    for size in (0, 15, 20, 24, 33, 64):
        path = write_hex(blank.files / "kek.hex", os.urandom(size))
        r = blank.crypto("commission", "--host", HOST, "--credential-file", blank.cred_file,
                         "--kek-file", path)
        assert r.stderr == (
            f"hcasim: {path}: an import KEK must be 16 bytes (32 hex digits) or 32 bytes "
            f"(64 hex digits); this file holds {size} bytes\n"
        )
    missing = str(blank.files / "missing.hex")
    r = blank.crypto("commission", "--host", HOST, "--credential-file", missing,
                     "--kek-file", blank.kek_file)
    assert r.stderr == f"hcasim: {missing}: No such file or directory\n"
    assert blank.state()["mode"] == "commissioning"


def test_secrets_are_never_printed_logged_or_stored_in_the_clear(clab: CryptoLab) -> None:
    user_cred, user_kek = os.urandom(40), os.urandom(32)
    outputs = []
    cred_file = write_hex(clab.files / "secret-cred.hex", user_cred)
    kek_file = write_hex(clab.files / "secret-kek.hex", user_kek)
    for args in (
        ("credential", "add", *clab.as_officer(), "--credential-file", cred_file),
        ("kek", "add", *clab.as_officer(), "--kek-file", kek_file),
        ("credential", "list", *clab.as_officer()),
        ("kek", "list", *clab.as_officer()),
        ("status", "--json"),
        ("wrap-credential", "--credential-file", cred_file, "--kek-file", kek_file, "-o",
         str(clab.files / "wcs.hex")),
    ):
        r = clab.crypto(*args)
        assert r.returncode == 0, r.stderr
        outputs.append(r.stdout + r.stderr)
    outputs.append(clab.lab.hcasim("status", "--json").stdout)
    with clab.app() as app:
        app.ok("open")
        ids = [int(line.split()[0]) for line in outputs[2].splitlines()[1:]]
        user = UserKeys(ids[-1], len(outputs[3].splitlines()) - 2, user_cred, user_kek)
        assert login(app, user) == 0
        app.ok("dek", name="d", key=wrapped_dek_hex(user))
        outputs.append(json.dumps(app.ok("dek_query", name="d")))
    home = clab.lab.home
    storage_secret = bytes.fromhex((home / "crypto-storage.key").read_text())
    stored = b"".join(p.read_bytes() for p in home.iterdir() if p.name.startswith("lab.db"))
    log = (home / "daemon.log").read_bytes()
    printed = "".join(outputs).encode()
    for secret in (user_cred, user_kek, ADMIN.credential[:16], storage_secret):
        for form in (secret, secret.hex().encode(), secret.hex().upper().encode()):
            assert form not in stored and form not in log and form not in printed
    assert os.stat(home / "crypto-storage.key").st_mode & 0o777 == 0o600
    assert os.stat(clab.files / "wcs.hex").st_mode & 0o777 == 0o600


def test_wrap_credential_writes_a_dpdk_wcs_file(clab: CryptoLab) -> None:
    out = clab.files / "wcs.hex"
    r = clab.crypto("wrap-credential", "--credential-file", clab.cred_file, "--kek-file",
                    clab.kek_file, "-o", str(out))
    assert r.stdout == f"hcasim: wrote {out} (48-byte wrapped credential, hex)\n"
    # DPDK reads wcs_file with fscanf("%02hhX") 48 times (docs/sources.md §15.3).
    assert out.read_text() == ADMIN.wrapped_credential().hex() + "\n"
    with clab.app() as app:
        app.ok("open")
        assert app("login", cred=out.read_text().strip())["rc"] == 0


def test_no_lab_running(tmp_path: Path) -> None:
    from hcasim.testing import LabHandle

    lab = LabHandle(tmp_path / "nowhere")
    r = lab.hcasim("crypto", "status")
    assert r.stderr == f"hcasim: no lab is running at {tmp_path / 'nowhere'} (start it with " \
                       "'hcasim up')\n"



def test_a_lab_file_can_name_crypto_hosts(tmp_path: Path) -> None:
    """Each ConnectX-6 Dx of a lab has its own NV state (and storage key)."""
    with two_crypto_hosts(tmp_path) as lab:
        cred = write_hex(tmp_path / "cred.hex", ADMIN.credential)
        kek = write_hex(tmp_path / "kek.hex", ADMIN.kek)
        r = lab.hcasim("crypto", "commission", "--host", "vault2", "--credential-file", cred,
                       "--kek-file", kek)
        assert r.returncode == 0, r.stderr
        modes = {h["name"]: h["devices"][0]["crypto"]["mode"] for h in lab.status()["hosts"]}
        assert modes == {"vault1": "commissioning", "vault2": "operational"}
        r = lab.run("vault2", sys.executable, "-c", LOGIN_PROBE, ADMIN.wrapped_credential().hex())
        assert r.stdout == "0\n", r.stderr
        r = lab.run("vault1", sys.executable, "-c", LOGIN_PROBE, ADMIN.wrapped_credential().hex())
        assert r.stdout == f"{errno.EOPNOTSUPP}\n", r.stderr


LOGIN_PROBE = """
import sys
from hcasim.mlx5dv import Mlx5Context, Mlx5CryptoLoginAttr, mlx5dv_crypto_login
ctx = Mlx5Context("mlx5_0")
print(mlx5dv_crypto_login(ctx, Mlx5CryptoLoginAttr(bytes.fromhex(sys.argv[1]))))
"""


def test_a_hosts_root_runs_the_officer_commands_on_its_own_device(blank: CryptoLab) -> None:
    # On crypto1 itself, as its root would with mlxreg: the register path of its own
    # device, with the officer's credential where the device asks for it.
    def on(host: str, *args: str) -> tuple[int, str, str]:
        r = blank.lab.run(host, "hcasim", "crypto", *args)
        return r.returncode, r.stdout, r.stderr

    assert on(HOST, "commission", "--host", HOST, "--credential-file", blank.cred_file,
              "--kek-file", blank.kek_file) == (
        0, "hcasim: mlx5_0 on crypto1 is operational: credential 0 (officer) and import KEK "
           "0 (128-bit) written\n", "")
    user_cred = write_hex(blank.files / "user.hex", os.urandom(40))
    assert on(HOST, "credential", "add", *blank.as_officer(), "--credential-file",
              user_cred) == (0, "hcasim: credential 1 (user) added to mlx5_0 on crypto1\n", "")
    assert on(HOST, "credential", "list", *blank.as_officer()) == (
        0, "ID  ROLE\n0   officer\n1   user\n", "")
    assert on(HOST, "kek", "list", *blank.as_officer()) == (0, "ID  SIZE\n0   128-bit\n", "")
    # its own devices' status, as the operator sees them
    mine = (0, "HOST     VERBS   CRYPTO       CREDENTIALS  IMPORT KEKS  CONTEXTS  SESSIONS  DEKS\n"
               "crypto1  mlx5_0  operational  2/64         1/64         0         0         0\n",
            "")
    assert on(HOST, "status") == mine == on(HOST, "status", "--host", HOST)
    assert blank.crypto("status").stdout == mine[1]
    assert json.loads(on(HOST, "status", "--json")[1])[0]["crypto"]["credentials"] == 2
    # what is not its own: another host's device, the lab's status
    refused = "hcasim: a process of host node1 cannot act as host crypto1\n"
    assert on("node1", "credential", "list", *blank.as_officer()) == (1, "", refused)
    assert on("node1", "going-to-commissioning", "--host", HOST) == (1, "", refused)
    assert on("node1", "status", "--host", HOST) == (1, "", refused)
    assert on("node1", "status") == (0, "hcasim: no crypto device\n", "")
    r = blank.lab.run(HOST, "hcasim", "status")
    assert (r.returncode, r.stderr) == (
        1, "hcasim: status is the lab operator's: refused from host crypto1\n")
    assert blank.crypto("credential", "list", *blank.as_officer()).stdout == (
        "ID  ROLE\n0   officer\n1   user\n")
