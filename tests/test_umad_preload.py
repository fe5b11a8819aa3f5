"""The umad preload (preload/hcaumad.c) against the lab daemon: what the kernel's ib_umad
and MAD layer give a program, checked through a raw /dev/infiniband/umad0 client
(tests/support/umad_probe.c) and through libibumad tools (docs/fabric.md §10)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.lab.home import UMAD2SIM, umad_preload
from hcasim.testing import HCASIM, LabHandle, running_lab
from tests.support.fabric import lab_with_sm, ok

PROBE_SOURCE = Path(__file__).parent / "support" / "umad_probe.c"
#: The default lab's end ports (5 HCAs and the switch's port 0): one PathRecord per pair.
PATH_RECORDS = 6 * 6


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "umad_probe"
    result = subprocess.run(["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                             str(PROBE_SOURCE), "-pthread"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with lab_with_sm(tmp_path_factory.mktemp("umad") / "home") as handle:
        yield handle


def base_lid(lab: LabHandle, host: str) -> int:
    match = re.search(r"Base lid: (\d+)\n", ok(lab.run(host, "ibstat")).stdout)
    assert match
    return int(match.group(1))


def test_the_lab_runs_libibumad_programs_under_the_umad_preload() -> None:
    preload = umad_preload()
    assert preload != UMAD2SIM and preload.endswith("/libhcaumad.so") and os.path.isfile(preload)


def test_saquery_lists_every_node(lab: LabHandle) -> None:
    # libumad2sim cuts the SA's RMPP answer to its first 224 bytes: one NodeRecord
    r = ok(lab.run("node1", "saquery"))
    assert r.stdout.count("NodeRecord dump:") == 6
    for host in ("sm", "node1", "node2", "node3", "crypto1"):
        assert f"NodeDescription.........{host} HCA-1\n" in r.stdout
    r = ok(lab.run("node2", "saquery", "PR"))
    assert r.stdout.count("PathRecord dump:") == PATH_RECORDS


def test_sysfs_is_live_and_private(lab: LabHandle) -> None:
    r = ok(lab.run("node3", "sh", "-c", "cat /sys/class/infiniband_mad/abi_version "
                   "/sys/class/infiniband_mad/umad0/ibdev /sys/class/infiniband_mad/umad0/port "
                   "/sys/class/infiniband/mlx4_0/node_type "
                   "/sys/class/infiniband/mlx4_0/ports/1/state "
                   "/sys/class/infiniband/mlx4_0/ports/1/link_layer"))
    assert r.stdout == "5\nmlx4_0\n1\n1: CA\n4: ACTIVE\nInfiniBand\n"
    # the files come from the daemon when opened: a link failure shows at once
    lab.fail_link("node3", 1)
    try:
        r = ok(lab.run("node3", "cat", "/sys/class/infiniband/mlx4_0/ports/1/state",
                       "/sys/class/infiniband/mlx4_0/ports/1/phys_state"))
        assert r.stdout == "1: DOWN\n2: Polling\n"
    finally:
        lab.restore_link("node3", 1)
    # and the private tree is gone once the program exits (trees of processes that died
    # without cleaning up are swept by the next one to attach)
    tmp = Path(os.environ.get("TMPDIR") or "/tmp")
    before = set(tmp.glob("hcaumad-*"))
    ok(lab.run("node3", "ibstat"))
    assert set(tmp.glob("hcaumad-*")) <= before


def test_registration_ioctls_reads_and_writes(lab: LabHandle, probe: Path) -> None:
    r = ok(lab.run("node1", str(probe), "checks"))
    assert r.stdout == (
        "enable pkey: ok\n"
        "SA v2 Get GetTable rmpp: agent 0\n"
        "SA v2 Get again: EINVAL\n"          # the method is taken for that class and version
        "SA v1 Get: agent 1\n"               # another class version: another agent
        "qpn 2: EINVAL\n"
        "SMI class on QP1: EINVAL\n"
        "SMI DR class on QP0: agent 2\n"
        "rmpp version 2: EINVAL\n"
        "rmpp on PerfMgt: EINVAL\n"          # PerfMgt is no RMPP class
        "vendor class without OUI: EINVAL\n"
        "register2 bad flags: EINVAL, flags 0x1\n"  # the flags the kernel supports, returned
        "register2 PerfMgt: agent 3\n"
        "unregister 1: ok\n"
        "unregister 1 again: EINVAL\n"
        "unregister 99: EINVAL\n"
        "unknown ioctl: ENOTTY\n"
        "read empty: EAGAIN\n"               # O_NONBLOCK and nothing queued
        "read 10 bytes: EINVAL\n"            # shorter than the header
        "poll: 1 out\n"                      # a real fd: poll works on it natively
        "write 20 bytes: EINVAL\n"
        "write unregistered agent: EINVAL\n"
        "write 300 bytes without RMPP: EINVAL\n"
        "agents: ENOMEM after 29 more\n"     # 32 agents per file
        "IsSM before issm0: 0\n"
        "IsSM with issm0 open: 1\n"          # SET_ISSM, seen in the live cap_mask
        "read issm0: EINVAL\n"               # it has no read or write
        "IsSM after close: 0\n"
    )


def test_timeouts_unmatched_requests_and_rmpp_between_two_hosts(
        tmp_path: Path, probe: Path) -> None:
    # a lab of its own: the LIDs OpenSM assigned stay when it stops, and the probe on node2
    # becomes the port's SM, so the lab hands it the SA requests sent to node2
    with running_lab(tmp_path / "home") as lab:
        ok(lab.hcasim("sm", "start"))
        peer = base_lid(lab, "node2")
        ok(lab.hcasim("sm", "stop"))
        server = subprocess.Popen([*HCASIM, "--home", str(lab.home), "exec", "--host", "node2",
                                   "--", str(probe), "serve"], env=lab.env(), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert server.stdout is not None
            assert server.stdout.readline() == "ready\n"
            r = ok(lab.run("node1", str(probe), "client", str(peer), timeout=60))
            out, err = server.communicate(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    assert r.stdout == (
        # the send itself comes back, MAD header only, status ETIMEDOUT (110)
        "timeout: read 88, status 110, length 0, agent 0, method 0x01, tid 0x1001\n"
        # class version 1: no agent on node2 takes it; its MAD layer answers 0x000C
        "unmatched: read 320, method 0x81, status 0x000c, tid 0x1002\n"
        "rmpp request: written\n"
        "rmpp first read: ENOSPC, length 3120\n"  # the whole message's length, in the header
        "rmpp response: read 3120, method 0x94, tid 0x1003, data intact\n"
    )
    assert (server.returncode, err) == (0, "")
    assert out == (
        "first read: ENOSPC, length 1120\n"
        "Get received 3 times, same TID\n"  # timeout_ms 100, retries 2: three sends
        "request: read 1120, method 0x14, data intact\n"
        "response: sent\n"
    )


def test_every_way_of_waiting_for_an_answer(lab: LabHandle, probe: Path) -> None:
    # a thread polling the file alone reads the lab's socket itself (docs/fabric.md §10.3);
    # every other wait (a second poller, a blocking read, poll() of several fds, a poller
    # cancelled) is served by the preload's receiver thread, and each answer comes once
    lid = base_lid(lab, "sm")
    r = ok(lab.run("node1", str(probe), "waits", str(lid), timeout=60))
    assert r.stdout == (
        "poll: 1, again before reading: 1\n"
        "answer 1: read 320, method 0x81, status 0x0000, tid 0x2001\n"
        "two pollers: 1 and 1, both in\n"
        "answer 2: read 320, method 0x81, status 0x0000, tid 0x2002\n"
        "answer 3: read 320, method 0x81, status 0x0000, tid 0x2003\n"
        "poll of two fds: 1, the file in\n"
        "answer 4: read 320, method 0x81, status 0x0000, tid 0x2004\n"
        "after a cancelled poller: 1\n"
        "answer 5: read 320, method 0x81, status 0x0000, tid 0x2005\n"
        "nothing sent: 0\n"
    )


def test_libumad2sim_still_works_when_preloaded_directly(lab: LabHandle) -> None:
    # (it writes its sysfs into the current directory: a temporary one)
    r = ok(lab.run("node2", "sh", "-c",
                   f'cd "${{TMPDIR:-/tmp}}" && LD_PRELOAD={UMAD2SIM} exec sminfo'))
    assert re.fullmatch(r"sminfo: sm lid 1 sm guid 0x2c90300a1b211, activity count \d+ "
                        r"priority 0 state 3 SMINFO_MASTER\n", r.stdout)
