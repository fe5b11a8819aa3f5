"""``make demo``: start a lab on the default SQLite store and walk the seeds' flows.

Every step runs the real command line (``hcasim ...``, ``hcasim exec --host H -- flint ...``)
as a subprocess, prints it and its output, and checks the exit status it expects, so the
demo fails loudly if the lab stops behaving as the seed says.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

DEV = "/dev/mst/mt4099_pci_cr0"
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
    contains: str | None = None,
) -> str:
    """Run one command of the walk-through, show it, and check its outcome."""
    print(f"\n# {title}\n$ {shlex.join(argv)}", flush=True)
    raw = subprocess.run(
        argv, env=env, input=None if input is None else input.encode(), capture_output=True
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
            step("Stop the lab", [*hcasim, "down"], env)
        except DemoFailed as exc:
            print(f"\ndemo FAILED: {exc}", file=sys.stderr)
            subprocess.run([*hcasim, "down"], env=env, capture_output=True)
            return 1
    print("\ndemo finished: every step behaved as the seed says")
    return 0


def _ini(tmp: str) -> str:
    path = Path(tmp) / "secure_host.ini"
    path.write_text("[HCA]\ncr_protection_en = 1\n")
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
