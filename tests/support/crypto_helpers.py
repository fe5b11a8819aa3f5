"""Helpers of the end-to-end crypto tests: a commissioned lab, applications, the officer.

Applications are real processes on host crypto1 (``hcasim exec``) running crypto_driver.py;
the officer acts from other processes: the ``hcasim crypto`` CLI, or this test process
through the device's access registers (``mlx5_reg``), as an officer tool would.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hcasim.api.client import ControlClient, b64
from hcasim.api.crypto_lab import DPDK_EXAMPLE_CREDENTIAL, UserKeys
from hcasim.api.officer import CryptoOfficer, OfficerIdentity
from hcasim.devices.mlx5.keywrap import Secret
from hcasim.devices.mlx5.register_access import RegisterReply, RegStatus
from hcasim.testing import HCASIM, LabHandle, running_lab

HOST = "crypto1"
DRIVER = str(Path(__file__).with_name("crypto_driver.py"))
#: The officer's credential 0 and import KEK 0: DPDK's mlxreg example and an all-zero
#: 128-bit KEK (docs/sources.md §15.1, §15.4).
ADMIN = UserKeys(0, 0, DPDK_EXAMPLE_CREDENTIAL, bytes(16))
#: Two distinct 128-bit XTS halves.
XTS_KEY = bytes(range(100, 132))


class App:
    """An application process on a lab host, driven one step at a time."""

    def __init__(self, lab: LabHandle, host: str = HOST) -> None:
        self.proc = subprocess.Popen(
            [*HCASIM, "--home", str(lab.home), "exec", "--host", host, "--", sys.executable,
             DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=lab.env(),
        )

    def __call__(self, op: str, **args: Any) -> dict[str, Any]:
        """Run one step; its JSON result."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            assert self.proc.stderr is not None
            code, err = self.proc.returncode, self.proc.stderr.read()
            raise RuntimeError(f"application died ({code}): {err}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ok(self, op: str, **args: Any) -> dict[str, Any]:
        """Run one step that must not raise."""
        reply = self(op, **args)
        assert "error" not in reply, reply
        return reply

    def exit(self) -> None:
        """End the application normally."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"op": "exit"}\n')
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        """kill -9 the application."""
        self.proc.kill()
        self.proc.wait(timeout=30)

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.exit()


class Officer:
    """A crypto officer in this test process, through the device's access registers."""

    def __init__(self, lab: LabHandle, identity: UserKeys = ADMIN) -> None:
        self.client = ControlClient(str(lab.home / "hcasim.sock"), host=HOST)
        self.officer = CryptoOfficer(
            self._access,
            OfficerIdentity(
                identity.credential_id,
                identity.import_kek_id,
                Secret(identity.credential),
                Secret(identity.kek),
            ),
        )

    def _access(self, register_id: int, method: int, data: bytes) -> RegisterReply:
        reply = self.client.call(
            "mlx5_reg", device="mlx5_0", register_id=register_id, method=method, data=b64(data)
        )
        return RegisterReply(
            RegStatus(reply["status"]), base64.b64decode(reply["data"]), reply["message"]
        )

    def add_user(self, kek_bytes: int = 32) -> UserKeys:
        """A new USER credential and a new import KEK; both plaintexts for the test."""
        credential, kek = os.urandom(40), os.urandom(kek_bytes)
        credential_id = self.officer.add_credential(credential)
        kek_id = self.officer.add_import_kek(kek)
        return UserKeys(credential_id, kek_id, credential, kek)

    def close(self) -> None:
        """End the officer's connection."""
        self.client.close()


def write_hex(path: Path, data: bytes) -> str:
    """Write a secret file in the CLI's format; return its path as a string."""
    path.write_text(data.hex() + "\n")
    return str(path)


class CryptoLab:
    """A running default lab whose crypto1 is commissioned with :data:`ADMIN`."""

    def __init__(self, lab: LabHandle, files: Path) -> None:
        self.lab = lab
        self.files = files
        files.mkdir(exist_ok=True)
        self.cred_file = write_hex(files / "officer-cred.hex", ADMIN.credential)
        self.kek_file = write_hex(files / "officer-kek.hex", ADMIN.kek)

    def commission(self) -> None:
        """``hcasim crypto commission`` with the officer's files."""
        r = self.crypto("commission", "--host", HOST, "--credential-file", self.cred_file,
                        "--kek-file", self.kek_file)
        assert r.returncode == 0, r.stderr

    def crypto(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``hcasim crypto ...``."""
        return self.lab.hcasim("crypto", *args)

    def as_officer(self) -> list[str]:
        """The officer-login options of the CLI."""
        return ["--host", HOST, "--officer-credential-file", self.cred_file,
                "--officer-kek-file", self.kek_file]

    def app(self) -> App:
        """A new application process on crypto1."""
        return App(self.lab)

    def officer(self) -> Officer:
        """An officer connection from this test process."""
        return Officer(self.lab)

    def add_user(self, kek_bytes: int = 32) -> UserKeys:
        """Have the officer add a user credential and an import KEK."""
        officer = self.officer()
        try:
            return officer.add_user(kek_bytes)
        finally:
            officer.close()

    def state(self) -> dict[str, Any]:
        """crypto1's crypto status (mode, counts, contexts, sessions, DEKs)."""
        return crypto_status(self.lab)

    def wait_for(self, **expected: int) -> dict[str, Any]:
        """Poll the status until the given counts hold (a dying process is noticed at once,
        but the test must not race the daemon's event loop)."""
        deadline = time.monotonic() + 30
        while True:
            state = self.state()
            if all(state[k] == v for k, v in expected.items()):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{expected} never held: {state}")
            time.sleep(0.05)


def crypto_status(lab: LabHandle) -> dict[str, Any]:
    """The ``crypto`` part of crypto1's status."""
    state: dict[str, Any] = lab.device_state(HOST)["crypto"]
    return state


#: A leaf switch and two hosts, each given a ConnectX-6 Dx by :func:`two_crypto_hosts`.
TWO_CRYPTO_HOSTS = """\
Switch 8 "leaf1"
[1] "vault1"[1]
[2] "vault2"[1]

caguid=0x0002c90300003000
Hca 2 "vault1"
[1] "leaf1"[1]

caguid=0x0002c90300004000
Hca 2 "vault2"
[1] "leaf1"[2]
"""


@contextlib.contextmanager
def two_crypto_hosts(tmp: Path) -> Iterator[LabHandle]:
    """Run a lab of two crypto hosts, vault1 and vault2 (nothing commissioned), in ``tmp``."""
    net = tmp / "lab.net"
    net.write_text(TWO_CRYPTO_HOSTS)
    labfile = tmp / "lab.toml"
    labfile.write_text('[hosts.vault1]\ndevice = "mt4125"\n[hosts.vault2]\ndevice = "mt4125"\n')
    with running_lab(tmp / "home", ("--topology", str(net), "--lab", str(labfile))) as lab:
        yield lab


def crypto_lab(tmp: Path, *, commission: bool = True) -> Iterator[CryptoLab]:
    """Run a default lab in ``tmp``, crypto1 commissioned; stop it afterwards."""
    with running_lab(tmp / "home") as lab:
        clab = CryptoLab(lab, tmp / "files")
        if commission:
            clab.commission()
        yield clab


def wrapped_dek_hex(keys: UserKeys, xts_key: bytes = XTS_KEY, keytag: bytes | None = None) -> str:
    """A DEK wrapped under the user's import KEK, as hex for the driver."""
    return keys.wrap_dek(xts_key, keytag).hex()


def login(app: App, keys: UserKeys, ctx: str = "a", **kw: Any) -> int:
    """``mlx5dv_crypto_login`` with the user's credential wrapped under its KEK."""
    rc: int = app(
        "login", ctx=ctx, cred=keys.wrapped_credential().hex(), cred_id=keys.credential_id,
        kek_id=keys.import_kek_id, **kw,
    )["rc"]
    return rc


def state_of(app: App, ctx: str = "a") -> int:
    """``mlx5dv_crypto_login_query_state``: the state (rc must be 0)."""
    reply = app("state", ctx=ctx)
    assert reply["rc"] == 0, reply
    state: int = reply["state"]
    return state

