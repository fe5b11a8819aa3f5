"""Benchmark: what running a command on a lab host costs, against running it plainly.

Times ``hcasim exec --host H -- true`` (the daemon registers the process tree, then the
command runs in H's bubblewrap sandbox) and a plain ``true``, alternately, in a default lab
in a temporary home, and prints the medians and their ratio. The numbers are for
docs/security-model.md §3.

Run: ``.venv/bin/python bench/host_exec.py [--runs 30] [--host node2]``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from hcasim.testing import HCASIM, running_lab


def timed(cmd: list[str]) -> float:
    """Seconds one run of ``cmd`` takes, start to exit."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--host", default="node2")
    args = parser.parse_args()
    with running_lab() as lab:
        on_host = [*HCASIM, "--home", str(lab.home), "exec", "--host", args.host, "--", "true"]
        plain = ["true"]
        timed(on_host)  # warm the caches once
        lab_times, plain_times = [], []
        for _ in range(args.runs):
            lab_times.append(timed(on_host))
            plain_times.append(timed(plain))
    lab_median = statistics.median(lab_times)
    plain_median = statistics.median(plain_times)
    print(f"hcasim exec --host {args.host} -- true: median {lab_median * 1000:.1f} ms "
          f"(best {min(lab_times) * 1000:.1f} ms)")
    print(f"true: median {plain_median * 1000:.2f} ms (best {min(plain_times) * 1000:.2f} ms)")
    print(f"ratio (median): {lab_median / plain_median:.0f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
