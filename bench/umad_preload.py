"""Benchmark: libibumad tools under the lab's umad preload, against Debian's libumad2sim.

In a default lab with OpenSM up, one ``hcasim exec --host H`` runs a timing loop on the
host: ``sminfo`` (one SMP), ``saquery`` (the NodeRecord table: one RMPP answer under the
preload, its first 224 bytes under libumad2sim) and ``smpquery portinfo`` of a LID, each
started alternately under the preload (as ``hcasim exec`` sets it up) and under
libumad2sim (the same ``LD_PRELOAD`` with libumad2sim in the preload's place; run from a
temporary directory, where libumad2sim writes its sysfs). Prints the medians and their
ratio per tool. The numbers are for docs/fabric.md §10.

Run: ``.venv/bin/python bench/umad_preload.py [--runs 30] [--host node2]``. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from hcasim.lab.home import UMAD2SIM, umad_preload
from hcasim.testing import HCASIM, running_lab

#: Runs on the lab host: times each tool under both preloads, prints JSON.
LOOP = r"""
import json, os, statistics, subprocess, sys, tempfile, time
runs, umad2sim, preload = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tools = {"sminfo": ["sminfo"], "saquery": ["saquery"], "smpquery": ["smpquery", "portinfo", "1"]}
ours = dict(os.environ)
theirs = dict(os.environ, LD_PRELOAD=" ".join(
    umad2sim if p == preload else p for p in os.environ["LD_PRELOAD"].split()))
tmp = tempfile.mkdtemp()
def timed(argv, env):
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start
out = {}
for name, argv in tools.items():
    timed(argv, ours), timed(argv, theirs)
    a, b = [], []
    for _ in range(runs):
        a.append(timed(argv, ours))
        b.append(timed(argv, theirs))
    out[name] = [statistics.median(a), statistics.median(b)]
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--host", default="node2")
    args = parser.parse_args()
    with running_lab() as lab:
        started = lab.hcasim("sm", "start")
        if started.returncode:
            sys.exit(started.stderr)
        result = subprocess.run(
            [*HCASIM, "--home", str(lab.home), "exec", "--host", args.host, "--",
             sys.executable, "-c", LOOP, str(args.runs), UMAD2SIM, umad_preload()],
            env=lab.env(), capture_output=True, text=True, check=True)
    medians = json.loads(result.stdout)
    for tool, (ours, theirs) in medians.items():
        print(f"{tool}: umad preload median {ours * 1000:.1f} ms, libumad2sim median "
              f"{theirs * 1000:.1f} ms, ratio (preload / libumad2sim) {ours / theirs:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
