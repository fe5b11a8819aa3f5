"""A lab host's view of the machine: the lab home and other hosts' files are not in it.

``hcasim exec --host H`` runs in a bubblewrap sandbox: the home shows only the control
socket, each host keeps its own ``/etc/mft``, ``/var/cache/opensm``... across commands,
OpenSM's M_Key cache is only in the SM host's view, and every file the lab creates is
private to its owner whatever the umask.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from hcasim.lab.sandbox import unavailable_reason
from hcasim.testing import HCASIM, LabHandle, running_lab


def test_sandboxes_can_be_made_here() -> None:
    # The lab's Debian packages include bubblewrap; without namespaces the tests below
    # would check nothing, so say why instead of passing.
    assert unavailable_reason() is None


def test_the_lab_home_is_not_visible_from_a_host(lab: LabHandle) -> None:
    home = lab.home
    assert (home / "lab.db").exists() and (home / "crypto-storage.key").exists()
    listing = lab.run("node2", "ls", "-A", str(home))
    assert listing.returncode == 0, listing.stderr
    # the control socket, and the host's own fake PCI sysfs (the PCI preload's), nothing else
    assert listing.stdout.split() == ["hcasim.sock", "pci"]
    pci = lab.run("node2", "ls", "-A", str(home / "pci"))
    assert pci.stdout.split() == ["node2"], pci.stderr
    for name in ("lab.db", "crypto-storage.key", "daemon.log"):
        r = lab.run("node2", "cat", str(home / name))
        assert r.returncode != 0 and "No such file or directory" in r.stderr
    # what the host's tools need still works inside
    assert lab.run("node2", "flint", "-d", "/dev/mst/mt4099_pci_cr0", "q").returncode == 0
    assert lab.run("node2", "smpquery", "nodedesc", "-D", "0").returncode == 0
    assert lab.run("node2", "hostname").stdout.strip() == "node2"


def test_each_host_keeps_its_own_files(lab: LabHandle) -> None:
    assert lab.run("node1", "sh", "-c", "echo node1 > /etc/mft/mine").returncode == 0
    assert lab.run("node1", "cat", "/etc/mft/mine").stdout == "node1\n"  # persistent
    assert lab.run("node2", "cat", "/etc/mft/mine").returncode != 0  # node2's is its own
    assert not Path("/etc/mft/mine").exists()  # and the machine's is untouched


def test_opensm_files_exist_only_on_the_sm_host(lab: LabHandle) -> None:
    started = lab.hcasim("sm", "start")
    assert started.returncode == 0, started.stderr
    cache = lab.home / "opensm-sm" / "cache" / "guid2mkey"
    assert lab.run("sm", "test", "-e", str(cache)).returncode == 0
    assert lab.run("node1", "test", "-e", str(cache)).returncode != 0
    assert lab.run("node1", "sminfo").returncode == 0  # the SM serves node1 all the same
    assert lab.hcasim("sm", "stop").returncode == 0


def _modes(home: Path) -> dict[str, int]:
    found = {}
    for root, dirs, files in os.walk(home):
        for name in (*dirs, *files):
            path = Path(root) / name
            found[str(path.relative_to(home))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_every_file_of_the_home_is_private_whatever_the_umask(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = dict(os.environ, HCASIM_HOME=str(home))
    code = ("import os, sys; os.umask(0); from hcasim.cli.hcasim import main; "
            "sys.exit(main(sys.argv[1:]))")
    up = subprocess.run([sys.executable, "-c", code, "up"], env=env, capture_output=True,
                        text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    try:
        started = subprocess.run([sys.executable, "-c", code, "sm", "start"], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        modes = _modes(home)
        assert "daemon.log" in modes and "opensm-sm/cache/guid2mkey" in modes
        loose = {name: f"{mode:04o}" for name, mode in modes.items() if mode & 0o077}
        assert loose == {}
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
    finally:
        subprocess.run([*HCASIM, "--home", str(home), "down"], env=env, timeout=60)


def test_an_existing_looser_home_is_tightened_and_said_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    (home / "notes").write_text("x")
    (home / "notes").chmod(0o644)
    with running_lab(home) as lab:
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert stat.S_IMODE((home / "notes").stat().st_mode) == 0o600
        assert lab.hcasim("status").returncode == 0
    again = subprocess.run([*HCASIM, "--home", str(home), "up"], capture_output=True,
                           text=True, timeout=120)
    try:
        assert "tightened" not in again.stderr  # nothing left to tighten
    finally:
        subprocess.run([*HCASIM, "--home", str(home), "down"], timeout=60)


def test_tightening_is_reported_on_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    up = subprocess.run([*HCASIM, "--home", str(home), "up"], capture_output=True, text=True,
                        timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        assert f"hcasim: {home} was mode 0755: tightened to 0700\n" in up.stderr
    finally:
        subprocess.run([*HCASIM, "--home", str(home), "down"], timeout=60)
