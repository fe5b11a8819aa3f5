"""Benchmark: median wall time of ``flint -d DEV -qq q`` on a running lab.

Printed beside two peers measured in the same run on the same machine: the installed
``mstflint -d 99:00.0 q`` (a missing device: its start-up and open path) and
``python3 -c pass`` (the interpreter's floor). Targets: flint under 100 ms median, and at
most 2.5 times ``python3 -c pass`` (docs/flint.md section 4).

Run: ``.venv/bin/python bench/flint_startup.py [--runs N]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from hcasim.testing import running_lab


def median_ms(commands: list[list[str]], env: dict[str, str], runs: int) -> list[float]:
    """Median wall time of running each command to completion, in milliseconds.

    The commands take turns (one run of each, ``runs`` times over), so a change in the
    machine's load during the benchmark weighs on all of them alike and the ratios hold.
    """
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for argv, series in zip(commands, times, strict=True):
            start = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            series.append((time.perf_counter() - start) * 1000)
    return [statistics.median(series) for series in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    flint = str(Path(sysconfig.get_path("scripts")) / "flint")
    mstflint = shutil.which("mstflint")
    with tempfile.TemporaryDirectory() as tmp, running_lab(Path(tmp) / "home") as lab:
        env = dict(os.environ)
        env.update(HCASIM_SOCKET=str(lab.home / "hcasim.sock"), HCASIM_HOST="node1")
        check = subprocess.run(
            [flint, "-d", "/dev/mst/mt4099_pci_cr0", "-qq", "q"],
            env=env,
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            print(check.stdout, check.stderr, file=sys.stderr)
            return 1
        commands = [[flint, "-d", "/dev/mst/mt4099_pci_cr0", "-qq", "q"],
                    [sys.executable, "-c", "pass"]]
        if mstflint:
            commands.append([mstflint, "-d", "99:00.0", "q"])
        ours, python, *rest = median_ms(commands, env, args.runs)
        real = rest[0] if rest else None
    print(f"flint -d /dev/mst/mt4099_pci_cr0 -qq q : {ours:7.1f} ms median of {args.runs}")
    if real is not None:
        print(
            f"mstflint -d 99:00.0 q (missing device) : {real:7.1f} ms   ratio flint/mstflint "
            f"{ours / real:5.2f}"
        )
    print(
        f"python3 -c pass                        : {python:7.1f} ms   ratio flint/python "
        f"{ours / python:5.2f}"
    )
    print(f"target < 100 ms: {'met' if ours < 100 else 'NOT met'}")
    print(f"target flint/python <= 2.5: {'met' if ours / python <= 2.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
