"""``make demo``: start a lab on the default SQLite store and walk the seeds' flows.

Every step runs the real command line (``hcasim ...``, ``hcasim exec --host H -- flint ...``)
as a subprocess, prints it and its output, and checks the exit status it expects, so the
demo fails loudly if the lab stops behaving as the seed says.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

DEV = "/dev/mst/mt4099_pci_cr0"
#: The same ConnectX-3 by PCI address, as the real mstflint names it on its host.
PCI = "01:00.0"
KEY = "1a1a1a1a2b2b2b2b"


class DemoFailed(Exception):
    """A step did not end as the seed says it should."""


def step(
    title: str,
    argv: list[str],
    env: dict[str, str],
    *,
    expect: int = 0,
    input: str | None = None,
    cwd: str | None = None,
    contains: str | None = None,
) -> str:
    """Run one command of the walk-through, show it, and check its outcome."""
    print(f"\n# {title}\n$ {shlex.join(argv)}", flush=True)
    raw = subprocess.run(
        argv,
        env=env,
        input=None if input is None else input.encode(),
        capture_output=True,
        cwd=cwd,
    )
    result = subprocess.CompletedProcess(
        argv,
        raw.returncode,
        raw.stdout.decode(errors="replace"),
        raw.stderr.decode(errors="replace"),
    )
    # Show progress lines the way a terminal leaves them: the text after the last \r.
    shown = "\n".join(
        line.rsplit("\r", 1)[-1] for line in (result.stdout + result.stderr).split("\n")
    )
    if shown.strip():
        print(shown.rstrip())
    print(f"[exit {result.returncode}]", flush=True)
    if result.returncode != expect or (contains and contains not in result.stdout):
        raise DemoFailed(
            f"{title}: expected exit {expect}" + (f" and {contains!r}" if contains else "")
        )
    return result.stdout


def main() -> int:
    """Run the walk-through; return 0 when every step behaved."""
    scripts = sysconfig.get_path("scripts")
    hcasim = [str(Path(scripts) / "hcasim")]
    with tempfile.TemporaryDirectory(prefix="hcasim-demo-") as tmp:
        env = dict(os.environ, HCASIM_HOME=str(Path(tmp) / "lab"))
        env["HCASIM_DAEMON_WATCH_PID"] = str(os.getpid())

        def on(host: str, *cmd: str) -> list[str]:
            return [*hcasim, "exec", "--host", host, "--", *cmd]

        try:
            step("Start the default lab (state in SQLite under the lab home)", [*hcasim, "up"], env)
            step("Hosts, devices and secure-host state", [*hcasim, "status"], env)
            step("Query node1's ConnectX-3", on("node1", "flint", "-d", DEV, "q"), env)
            step(
                "The real mstflint 4.21 by PCI address: the same device (the PCI preload)",
                on("node1", "mstflint", "-d", PCI, "q"),
                env,
                contains="HW Access Key:         Disabled",
            )
            step("mstmcra reads its hardware id", on("node1", "mstmcra", PCI, "0xf0014"), env,
                 contains="0x00a001f5")
            step(
                "Only the host's own functions: another address is not there",
                on("node1", "mstflint", "-d", "02:00.0", "q"),
                env,
                expect=1,
                contains="No such file or directory. MFE_CR_ERROR",
            )
            step(
                "Firmware without cr_protection_en refuses a key",
                on("sm", "flint", "-d", DEV, "set_key", KEY),
                env,
                expect=1,
            )
            step(
                "Enable secure mode: set the 64-bit key",
                on("node1", "flint", "-d", DEV, "set_key", KEY),
                env,
            )
            step(
                "The key becomes active at driver restart",
                [*hcasim, "driver", "restart", "node1"],
                env,
            )
            step(
                "Check: HW access is disabled (CR-space locked)",
                on("node1", "flint", "-d", DEV, "-qq", "q"),
                env,
                expect=1,
                contains="HW access is disabled",
            )
            step(
                "The real mstflint fails as on locked hardware",
                on("node1", "mstflint", "-d", PCI, "-qq", "q"),
                env,
                expect=1,
                contains="HW access is disabled",
            )
            step("mstmcra reads the lock's pattern", on("node1", "mstmcra", PCI, "0xf0014"),
                 env, contains="0xbad0cafe")
            step("A host reboot comes back secure", [*hcasim, "host", "reboot", "node1"], env)
            step(
                "Temporarily enable HW access (key typed at the prompt)",
                on("node1", "flint", "-d", DEV, "hw_access", "enable"),
                env,
                input=KEY + "\n",
                contains="disabled successfully",
            )
            step(
                "Build new firmware from an mlxburn-style ini",
                [
                    *hcasim,
                    "fw",
                    "build",
                    "--ini",
                    _ini(tmp),
                    "--fw-version",
                    "2.42.5100",
                    "-o",
                    str(Path(tmp) / "fw.bin"),
                ],
                env,
            )
            step(
                "Burn it while access is enabled",
                on("node1", "flint", "-d", DEV, "-i", str(Path(tmp) / "fw.bin"), "-y", "b"),
                env,
            )
            step(
                "mstflint 4.21 burns the image's (empty) key: set it again before rebooting",
                on("node1", "flint", "-d", DEV, "set_key", KEY),
                env,
            )
            step(
                "Reboot the host (not just the driver) to run the new firmware",
                [*hcasim, "host", "reboot", "node1"],
                env,
            )
            step("Secure again, new firmware running", [*hcasim, "status"], env)
            step(
                "Permanent disable: enable, set_key 0, reboot",
                on("node1", "flint", "-d", DEV, "hw_access", "enable", KEY),
                env,
            )
            step("", on("node1", "flint", "-d", DEV, "set_key", "0"), env)
            step("", [*hcasim, "host", "reboot", "node1"], env)
            step(
                "Always insecure after",
                on("node1", "flint", "-d", DEV, "-qq", "q"),
                env,
                contains="HW Access Key:         Disabled",
            )
            step(
                "The real mstflint agrees",
                on("node1", "mstflint", "-d", PCI, "-qq", "q"),
                env,
                contains="HW Access Key:         Disabled",
            )
            _fabric_and_crypto(tmp, env, hcasim, on)
            step("Stop the lab", [*hcasim, "down"], env)
        except DemoFailed as exc:
            print(f"\ndemo FAILED: {exc}", file=sys.stderr)
            subprocess.run([*hcasim, "down"], env=env, capture_output=True)
            return 1
    print("\ndemo finished: every step behaved as the seed says")
    return 0


APP = """\
import os
from pathlib import Path
from typing import Any

from hcasim.devices.mlx5.keywrap import wrap_credential, wrap_dek
from hcasim.mlx5dv import (
    MLX5DV_BLOCK_SIZE_512, MLX5DV_CRYPTO_KEY_SIZE_128, MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO,
    MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT, PD, Mlx5Context, Mlx5CryptoAttr, Mlx5CryptoLoginAttr,
    Mlx5DEK, Mlx5DEKInitAttr, Mlx5Mkey, mlx5dv_crypto_login, mlx5dv_crypto_login_query_state,
    mlx5dv_crypto_logout,
)

kek = bytes.fromhex(Path("app-kek.hex").read_text())
cred = bytes.fromhex(Path("app-cred.hex").read_text())
ctx = Mlx5Context("mlx5_0")
print("login:", mlx5dv_crypto_login(ctx, Mlx5CryptoLoginAttr(
    credential=wrap_credential(kek, cred), credential_id=1, import_kek_id=1)))
print("query_state (rc, state):", mlx5dv_crypto_login_query_state(ctx))
pd = PD(ctx)
dek = Mlx5DEK(ctx, Mlx5DEKInitAttr(pd, MLX5DV_CRYPTO_KEY_SIZE_128, opaque=b"disk0",
                                   key=wrap_dek(kek, os.urandom(32))))
mkey = Mlx5Mkey(pd, MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO | MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT, 1)
mkey.configure(4096, Mlx5CryptoAttr(encrypt_on_tx=True, data_unit_size=MLX5DV_BLOCK_SIZE_512,
                                    initial_tweak=(1000).to_bytes(16, "little"), dek=dek))
data = os.urandom(4096)
wire = bytes(mkey.send(data))
print("AES-XTS through the crypto MKey round-trips:", bytes(mkey.recv(wire)) == data != wire)
print("logout:", mlx5dv_crypto_logout(ctx))
print("DEK still works after logout:", bytes(mkey.send(data)) == wire)
"""


def _fabric_and_crypto(tmp: str, env: dict[str, str], hcasim: list[str], on: Any) -> None:
    """The real OpenSM and diags on the lab's fabric, then the mlx5 crypto engine."""
    step("The real OpenSM on host sm, until SUBNET UP", [*hcasim, "sm", "start"], env)
    step("sminfo from node2", on("node2", "sminfo"), env, contains="SMINFO_MASTER")
    step("Secure node2: set a key", on("node2", "flint", "-d", DEV, "set_key", KEY), env)
    step("Driver restart: MAD_DEMUX, SMP firewall on", [*hcasim, "driver", "restart", "node2"], env)
    shown = step(
        "What node2's driver learnt from firmware events",
        [*hcasim, "driver", "show", "node2"],
        env,
        contains="SMP firewall activated",
    )
    lid = re.search(r"LID (\d+),", shown)
    step(
        "The seed's sminfo failure on the firewalled host",
        on("node2", "sminfo"),
        env,
        expect=255,
        contains="sminfo: iberror: failed: query",
    )
    step(
        "Nor may it query or set its own port (zero-hop SMPs are dropped too)",
        on("node2", "smpquery", "-D", "portinfo", "0", "1"),
        env,
        expect=255,
        contains="port info query failed",
    )
    step(
        "The rest of the subnet still sees node2 (its firmware answers)",
        on("node1", "ibnetdiscover"),
        env,
        contains='"node2 HCA-1"',
    )
    if lid:
        step(
            "In-band CR-space read of node2 from node1: locked",
            on("node1", "mstmcra", f"lid-{lid.group(1)}", "0xf0014"),
            env,
            contains="0xbad0cafe",
        )
    work = Path(tmp)
    for name, size in (
        ("officer-cred", 40),
        ("officer-kek", 32),
        ("app-cred", 40),
        ("app-kek", 32),
    ):
        (work / f"{name}.hex").write_text(os.urandom(size).hex() + "\n")
        (work / f"{name}.hex").chmod(0o600)
    (work / "my_app.py").write_text(APP)
    officer = [
        "--host",
        "crypto1",
        "--officer-credential-file",
        str(work / "officer-cred.hex"),
        "--officer-kek-file",
        str(work / "officer-kek.hex"),
    ]
    step(
        "Crypto officer: commission crypto1 (CRYPTO_OPERATIONAL)",
        [
            *hcasim,
            "crypto",
            "commission",
            "--host",
            "crypto1",
            "--credential-file",
            str(work / "officer-cred.hex"),
            "--kek-file",
            str(work / "officer-kek.hex"),
        ],
        env,
    )
    step(
        "Officer: a credential for the application",
        [
            *hcasim,
            "crypto",
            "credential",
            "add",
            *officer,
            "--credential-file",
            str(work / "app-cred.hex"),
        ],
        env,
    )
    step(
        "Officer: an import KEK for the application",
        [*hcasim, "crypto", "kek", "add", *officer, "--kek-file", str(work / "app-kek.hex")],
        env,
    )
    step(
        "The application on crypto1: login, DEK, AES-XTS data path",
        on("crypto1", sys.executable, "my_app.py"),
        env,
        cwd=tmp,
        contains="DEK still works after logout: True",
    )
    step("Crypto state (never a secret)", [*hcasim, "crypto", "status"], env)


def _ini(tmp: str) -> str:
    path = Path(tmp) / "secure_host.ini"
    path.write_text("[HCA]\ncr_protection_en = 1\n")
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
