"""Benchmark: the web view's first render of a big lab in headless Chromium, beside
``hcasim status --json`` for the same lab in the same run, and the daemon's added memory.

One fat tree of ``--hcas`` HCAs (20,000 by default: a three-level tree of 36-port switches,
:mod:`hcasim.fabric.fattree`) is started as a lab (``hcasim up --topology NET``). Then,
alternately, ``--runs`` times each:

* ``hcasim status --json``: process start to exit (the peer: the same daemon describing the
  same hosts, as text for a program);
* the page: a fresh headless Chromium tab (Debian's chromium through chromium-driver)
  loads the view's URL; timed from the request to the first frame after the whole picture
  was drawn (the page marks it), plus the page's own fetch-to-drawn time.

The medians and their ratio (page / status) are printed, with the daemon's resident
memory before ``hcasim web``, with the page open, and its peak (VmRSS, VmHWM from /proc).

Run: ``.venv/bin/python bench/web_view.py [--hcas 20000] [--runs 3]``. Nothing is
asserted; the numbers are for docs/design-notes.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hcasim.fabric.fattree import fat_tree
from hcasim.fabric.netfile import format_netfile
from hcasim.lab.home import LabHome
from hcasim.testing import LabHandle, headless_chromium, page_ready

RADIX = 36


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def time_status(lab: LabHandle) -> float:
    """Seconds ``hcasim status --json`` takes, start to exit."""
    start = time.perf_counter()
    result = lab.hcasim("status", "--json", timeout=600)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"hcasim status failed: {result.stderr}")
    return elapsed


def time_page(url: str) -> tuple[float, float, float]:
    """Seconds from request to the drawn page, and in the page: fetch to drawn, of which
    the snapshot's fetch and parse."""
    with headless_chromium() as driver:
        driver.set_page_load_timeout(600)
        start = time.perf_counter()
        driver.get(url)
        inner = page_ready(driver, timeout=600)
        total = time.perf_counter() - start
        fetch = float(driver.execute_script("return document.body.dataset.fetchMs"))
        return total, inner / 1000, fetch / 1000


def main() -> int:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hcas", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hcasim-web-bench-") as tmp:
        work = Path(tmp)
        net = work / "fabric.net"
        net.write_text(format_netfile(fat_tree(args.hcas, RADIX)))
        lab = LabHandle(work / "home")
        start = time.perf_counter()
        lab.up("--topology", str(net))
        print(f"{args.hcas} HCAs: hcasim up {time.perf_counter() - start:.1f} s")
        try:
            pid = int(LabHome(lab.home).lock.read_text().strip())
            before = memory_mib(pid)
            result = lab.hcasim("web")
            if result.returncode != 0:
                raise SystemExit(f"hcasim web failed: {result.stderr}")
            url = result.stdout.strip()
            served = memory_mib(pid)
            status_s: list[float] = []
            page_s: list[float] = []
            inner_s: list[float] = []
            fetch_s: list[float] = []
            for _ in range(args.runs):
                status_s.append(time_status(lab))
                total, inner, fetched = time_page(url)
                page_s.append(total)
                inner_s.append(inner)
                fetch_s.append(fetched)
            with headless_chromium() as driver:  # memory with a page open and listening
                driver.get(url)
                page_ready(driver, timeout=600)
                time.sleep(2.0)
                opened = memory_mib(pid)
        finally:
            lab.hcasim("down")
    status_m, page_m = statistics.median(status_s), statistics.median(page_s)
    print(f"hcasim status --json: median {status_m:.2f} s  (runs: "
          + ", ".join(f"{s:.2f}" for s in status_s) + ")")
    print(f"web view first render: median {page_m:.2f} s  (runs: "
          + ", ".join(f"{s:.2f}" for s in page_s) + "; in the page, fetch to drawn: "
          + ", ".join(f"{s:.2f}" for s in inner_s) + "; of which the snapshot's fetch: "
          + ", ".join(f"{s:.2f}" for s in fetch_s) + ")")
    print(f"ratio page / status: {page_m / status_m:.2f}")
    print(f"daemon RSS: {before['VmRSS']:.0f} MiB before hcasim web, "
          f"{served['VmRSS']:.0f} MiB serving it, "
          f"{opened['VmRSS']:.0f} MiB with the page open "
          f"(+{opened['VmRSS'] - before['VmRSS']:.0f} MiB); peak {opened['VmHWM']:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
