"""Real OpenSM and infiniband-diags against the lab's fabric (through libumad2sim.so)."""

from __future__ import annotations

import os
import re
import signal

import pytest

from hcasim.lab.home import LabHome
from hcasim.testing import running_lab
from tests.support.fabric import gone


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):  # type: ignore[no-untyped-def]
    with running_lab(tmp_path_factory.mktemp("fabric") / "home") as lab:
        r = lab.hcasim("sm", "start")
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(
            r"hcasim: opensm on sm \(pid \d+\): SUBNET UP after \d+\.\d\d s; log .*\n", r.stdout
        )
        yield lab


def test_sminfo_from_a_node(fabric):  # type: ignore[no-untyped-def]
    r = fabric.run("node2", "sminfo")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(
        r"sminfo: sm lid 1 sm guid 0x2c90300a1b211, activity count \d+ priority 0 state 3 "
        r"SMINFO_MASTER\n",
        r.stdout,
    )


def test_ibnetdiscover_sees_the_whole_lab(fabric):  # type: ignore[no-untyped-def]
    r = fabric.run("node2", "ibnetdiscover")
    assert r.returncode == 0, r.stderr
    for host in ("sm", "node1", "node2", "node3", "crypto1"):
        assert f'"{host} HCA-1"' in r.stdout
    assert 'Switch\t36 "S-0002c90200a1b000"' in r.stdout


def test_smpquery_nodeinfo_by_lid(fabric):  # type: ignore[no-untyped-def]
    r = fabric.run("node2", "smpquery", "nodeinfo", "1")
    assert r.returncode == 0, r.stderr
    assert "# Node info: Lid 1\n" in r.stdout
    assert "Guid:............................0x0002c90300a1b210\n" in r.stdout
    assert "DevId:...........................0x1003\n" in r.stdout
    assert "VendorId:........................0x0002c9\n" in r.stdout


def test_iblinkinfo_from_a_switch_guid(fabric):  # type: ignore[no-untyped-def]
    # -S / -G: libibnetdisc starts at the switch, with SMPs LID-routed to it and directed
    # from there (IBTA 14.2.2.1); the switch's block is what a full iblinkinfo prints
    full = fabric.run("node2", "iblinkinfo")
    assert full.returncode == 0, full.stderr
    block = full.stdout[full.stdout.index("Switch: 0x0002c90200a1b000"):]
    block = block[:block.index("\nCA:") + 1] if "\nCA:" in block else block
    for option in ("-S", "-G"):
        r = fabric.run("node2", "iblinkinfo", option, "0x0002c90200a1b000")
        assert (r.returncode, r.stderr) == (0, "")
        assert r.stdout == block
        assert '"node1 HCA-1"' in r.stdout and r.stdout.count("\n") == 37


def test_sm_start_twice_and_stop(fabric):  # type: ignore[no-untyped-def]
    r = fabric.hcasim("sm", "start")
    assert r.returncode == 1 and "an SM is already running on sm (pid" in r.stderr
    r = fabric.hcasim("sm", "status")
    assert r.returncode == 0 and r.stdout.startswith("opensm on sm (pid ")


def test_unknown_sim_host_is_refused(fabric):  # type: ignore[no-untyped-def]
    r = fabric.hcasim("sm", "start", "--host", "nosuch")
    assert r.returncode == 1 and "unknown host 'nosuch'" in r.stderr


def test_host_named_sm_is_not_mistaken_for_the_sm_command(fabric):  # type: ignore[no-untyped-def]
    r = fabric.run("sm", "flint", "-d", "/dev/mst/mt4099_pci_cr0", "-qq", "q")
    assert r.returncode == 0 and "Device ID:             4099\n" in r.stdout


@pytest.mark.parametrize("how", ["down", "kill -9"])
def test_opensm_never_outlives_the_daemon(tmp_path, how):  # type: ignore[no-untyped-def]
    with running_lab(tmp_path / "home") as lab:
        assert lab.hcasim("sm", "start").returncode == 0
        status = lab.hcasim("sm", "status").stdout
        match = re.match(r"opensm on sm \(pid (\d+)\)", status)
        assert match, status
        opensm = int(match.group(1))
        if how == "down":
            assert lab.hcasim("down").returncode == 0
        else:
            os.kill(int(LabHome(lab.home).lock.read_text().strip()), signal.SIGKILL)
        assert gone(opensm), f"opensm (pid {opensm}) outlived the daemon ({how})"
