"""Benchmark: ``osmtest -f f`` (SA queries forwarded between two clients) on the lab, beside
the real ibsim.

Every SA query ``osmtest -f f`` sends (a PortInfoRecord of its own port, 100,000 of them,
one at a time; docs/sources.md §2.11) goes through the simulator twice: from osmtest to
OpenSM's SA, and OpenSM's answer back. Neither is answered by the simulator itself, so
this measures how fast the endpoint forwards datagrams between clients (docs/fabric.md §8).

One small fat tree (``--hcas``, default 16; :mod:`hcasim.fabric.fattree`, written as in
``bench/opensm_sweep.py``) is served, in the same run, alternately, by

* the lab: ``hcasim up --topology NET`` in a temporary home, OpenSM started with
  ``hcasim sm start`` on the first HCA and osmtest run with ``hcasim exec`` on the last
  (so both go through whatever a lab host uses to reach the fabric), and
* the real ``ibsim -s -n NET``, with OpenSM and osmtest under libumad2sim.so, and, when
  the lab has its own umad preload (docs/fabric.md §10), once more under that, so that
  the two servers are also compared with the same clients (the preload does more per
  query than libumad2sim: it acknowledges each answer's RMPP segment, a third datagram).

Each side's processes are grouped alike for the scheduler (Linux groups tasks by session
when ``kernel.sched_autogroup_enabled`` is 1): the simulator (the lab daemon, ibsim) and
OpenSM each in a session of its own, osmtest in the bench's.

osmtest prints how long its queries took (it sends 100,000; ``--queries N`` stops it once
it has reported at least N, which it does about every 5,000); the bench prints each run's
time per query, the medians and their ratios (lab / ibsim), and the best runs and theirs.
Process start-up is not in the figures: they are osmtest's own, from its first query.

Run: ``.venv/bin/python bench/osmtest_queries.py [--hcas 16] [--runs 3] [--queries 100000]``.
Nothing is asserted; the numbers are for docs/fabric.md §8.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opensm_sweep import client_env, ibsim, last_host, sm_host, stop, write_net

from hcasim.lab.home import UMAD2SIM, umad_preload
from hcasim.testing import HCASIM, LabHandle

SUBNET_UP = b"SUBNET UP"
#: osmtest's progress and final lines: "-I- Querying N port_info queries (single mad) took
#: SSSS:UUUUUU [sec:usec]" (docs/sources.md §2.11).
QUERYING = re.compile(rb"-I- Querying (\d+) port_info queries \(single mad\) took (\d+):(\d+)")
PASS = b'OSMTEST: TEST "Stress SA" PASS'
#: osmtest's reports as it prints them (into a pipe its stdout is otherwise block-buffered,
#: and a run stopped early would print nothing).
LINE_BUFFERED = ("stdbuf", "-oL")


def sbin(program: str) -> str:
    """The path of an OpenSM package program (they live in /usr/sbin)."""
    found = shutil.which(program, path="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))
    if found is None:
        raise SystemExit(f"{program} is not installed (Debian package opensm)")
    return found


def osmtest_seconds(argv: list[str], env: dict[str, str], work: Path,
                    queries: int) -> tuple[int, float]:
    """Run ``osmtest -f f`` by ``argv`` (which ends in the osmtest arguments) and return
    (queries, seconds) from the first of its reports that counts at least ``queries`` (or
    its last, when it ends); the process is stopped there."""
    work.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(argv, env=env, cwd=work, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    report: tuple[int, float] | None = None
    passed = False
    try:
        for line in proc.stdout:
            match = QUERYING.search(line)
            if match:
                report = (int(match[1]), int(match[2]) + int(match[3]) / 1e6)
                if report[0] >= queries and queries < 100_000:
                    break
            passed = passed or PASS in line
    finally:
        stop(proc)
    if report is None or (report[0] < queries and not passed):
        raise RuntimeError(f"osmtest ended after {report} (status {proc.returncode}): {argv}")
    return report


@contextmanager
def opensm_on_ibsim(env: dict[str, str], work: Path, timeout: float = 120) -> Iterator[None]:
    """The real OpenSM with ``env`` (libumad2sim on an ibsim) until SUBNET UP, kept running
    for the body, then stopped."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "cache").mkdir(parents=True)
    log = work / "opensm.log"
    env = dict(env, OSM_CACHE_DIR=str(work / "cache"), OSM_TMP_DIR=str(work))
    with open(work / "opensm.out", "wb") as out:
        # its own session, as ``hcasim sm start`` gives it (a scheduling group of its own
        # where the kernel groups tasks by session, autogroup)
        proc = subprocess.Popen([sbin("opensm"), "-f", str(log), "-d2"], env=env, cwd=work,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not (log.exists() and SUBNET_UP in log.read_bytes()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"OpenSM did not reach SUBNET UP; see {log}")
            time.sleep(0.01)
        yield
    finally:
        stop(proc)


def preloaded(env: dict[str, str], library: str) -> dict[str, str]:
    """``env`` (a libumad2sim client's, :func:`client_env`) with ``library`` preloaded in
    libumad2sim's place."""
    return dict(env, LD_PRELOAD=" ".join(library if p == UMAD2SIM else p
                                         for p in env["LD_PRELOAD"].split()))


def ibsim_run(net: Path, hcas: int, queries: int, work: Path,
              library: str = UMAD2SIM) -> tuple[int, float]:
    """One ``osmtest -f f`` against OpenSM on a fresh real ibsim, both under ``library``
    (the umad shim that speaks the ibsim protocol)."""
    with ibsim(net, work / "ibsim") as base:
        with opensm_on_ibsim(preloaded(client_env(base, sm_host(hcas)), library),
                             work / "osm-ibsim"):
            return osmtest_seconds([*LINE_BUFFERED, sbin("osmtest"), "-f", "f"],
                                   preloaded(client_env(base, last_host(hcas)), library),
                                   work / "osmtest-ibsim", queries)


def lab_run(lab: LabHandle, hcas: int, queries: int, work: Path) -> tuple[int, float]:
    """One ``osmtest -f f`` against OpenSM on a freshly started lab (``hcasim sm start``,
    ``hcasim exec``)."""
    lab.up()
    try:
        started = lab.hcasim("sm", "start", "--host", sm_host(hcas))
        if started.returncode != 0:
            raise RuntimeError(f"hcasim sm start: {started.stderr}")
        argv = [*HCASIM, "--home", str(lab.home), "exec", "--host", last_host(hcas), "--",
                *LINE_BUFFERED, "osmtest", "-f", "f"]
        return osmtest_seconds(argv, lab.env(), work / "osmtest-lab", queries)
    finally:
        lab.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hcas", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100_000,
                        help="stop osmtest once it reports at least this many (at most "
                             "100,000, all it sends)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hcasim-osmtest-") as tmp:
        work = Path(tmp)
        net = write_net(args.hcas, work / f"ft{args.hcas}.net", two_level=True)
        lab = LabHandle(work / "lab")
        lab.up("--topology", str(net))
        lab.down()
        print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
        # ibsim with libumad2sim, as ibsim is used; and with the lab's own umad preload,
        # when there is one, so that both servers have the same clients
        libraries = {"libumad2sim": UMAD2SIM}
        if umad_preload() != UMAD2SIM:
            libraries["the lab's umad preload"] = umad_preload()
        ours: list[float] = []
        theirs: dict[str, list[float]] = {name: [] for name in libraries}
        for run in range(args.runs):
            line = f"  run {run + 1}:"
            for name, library in libraries.items():
                count, seconds = ibsim_run(net, args.hcas, args.queries, work, library)
                theirs[name].append(seconds / count)
                line += f" ibsim ({name}) {count} in {seconds:.2f} s " \
                        f"({theirs[name][-1] * 1e3:.3f} ms each);"
            count, seconds = lab_run(lab, args.hcas, args.queries, work)
            ours.append(seconds / count)
            print(f"{line} lab {count} in {seconds:.2f} s ({ours[-1] * 1e3:.3f} ms each)",
                  file=sys.stderr)
        lab_q = statistics.median(ours)
        print(f"{args.hcas} HCAs: osmtest -f f, ms per SA query, median of {args.runs} "
              f"(best): lab {lab_q * 1e3:.3f} ({min(ours) * 1e3:.3f})")
        for name, times in theirs.items():
            ibsim_q = statistics.median(times)
            print(f"  ibsim under {name}: {ibsim_q * 1e3:.3f} ({min(times) * 1e3:.3f}); "
                  f"ratio lab / ibsim {lab_q / ibsim_q:.2f} ({min(ours) / min(times):.2f})")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
