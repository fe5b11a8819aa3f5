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

from hcasim.lab.sandbox import HOST_DIRS, NEVER_REBUILT, unavailable_reason
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


def test_each_host_has_its_own_home_directory(lab: LabHandle, tmp_path: Path) -> None:
    # $HOME is the host's own persistent directory, /home/H; the working directory (here
    # the test's, as under the operator's own home) stays where it is and usable
    existed = Path("/home/node1").exists()
    script = 'echo "$HOME"; pwd; echo mine > "$HOME/notes"; echo here > ./from-node1'
    r = subprocess.run([*HCASIM, "--home", str(lab.home), "exec", "--host", "node1", "--",
                        "sh", "-c", script], env=lab.env(), cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == f"/home/node1\n{tmp_path}\n"
    assert (tmp_path / "from-node1").read_text() == "here\n"
    again = lab.run("node1", "sh", "-c", 'cat "$HOME/notes"')  # persistent
    assert (again.returncode, again.stdout) == (0, "mine\n")
    assert (lab.home / "hosts" / "node1" / "home" / "notes").read_text() == "mine\n"
    other = lab.run("node2", "sh", "-c", 'echo "$HOME"; cat /home/node1/notes')
    assert other.stdout == "/home/node2\n" and other.returncode != 0
    assert "No such file or directory" in other.stderr
    # the machine's /home shows through, and gets no directory of the host's
    listing = lab.run("node1", "ls", "-A", "/home")
    assert sorted(listing.stdout.split()) == sorted({*os.listdir("/home"), "node1"})
    assert Path("/home/node1").exists() == existed


def test_missing_mount_points_are_made_inside_the_sandbox_only(lab: LabHandle) -> None:
    # As root, bubblewrap would create a missing mount point (/etc/mft on a machine
    # without mstflint's) on the machine itself; the lab rebuilds its parent on a tmpfs.
    targets = [*HOST_DIRS, "/home/node2"]
    before = {t: os.path.isdir(t) for t in targets}
    # what the sandbox has: every one, but a missing one in shared scratch space (/tmp)
    inside = [t for t in targets if before[t] or os.path.dirname(t) not in NEVER_REBUILT]
    r = lab.run("node2", "sh", "-c", " && ".join(f"test -d {t} -a -w {t}" for t in inside))
    assert (r.returncode, r.stderr) == (0, "")
    assert {t: os.path.isdir(t) for t in targets} == before
    # a rebuilt directory still holds what the machine has in it
    assert lab.run("node2", "cat", "/etc/hostname").stdout == Path("/etc/hostname").read_text()


def _fallback_env(lab: LabHandle, path: str) -> dict[str, str]:
    env = lab.env()
    env["PATH"] = path
    return env


def test_without_namespaces_exec_says_so_and_runs_unconfined(lab: LabHandle,
                                                             tmp_path: Path) -> None:
    # a bwrap that cannot create namespaces (a container without user namespaces)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because "
        "the kernel does not allow non-privileged user namespaces.' >&2\n"
        "echo 'a second line' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    env = _fallback_env(lab, f"{fake}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run([*HCASIM, "--home", str(lab.home), "exec", "--host", "node2", "--",
                        "ls", "-A", str(lab.home)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.stderr == (
        "hcasim: bwrap cannot create namespaces here: bwrap: No permissions to creating new "
        "namespace, likely because the kernel does not allow non-privileged user namespaces.: "
        "running unconfined on host node2\n")
    assert r.returncode == 0
    assert "lab.db" in r.stdout.split()  # unconfined: the home is the machine's
    # still host node2 for the lab: its identity is its process tree, not the sandbox
    refused = subprocess.run([*HCASIM, "--home", str(lab.home), "exec", "--host", "node2", "--",
                              *HCASIM, "status"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        "hcasim: status is the lab operator's: refused from host node2")


def test_without_bubblewrap_exec_says_so_and_runs_unconfined(lab: LabHandle,
                                                             tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([*HCASIM, "--home", str(lab.home), "exec", "--host", "node2", "--",
                        "/bin/hostname"], env=_fallback_env(lab, str(empty)),
                       capture_output=True, text=True, timeout=120)
    assert r.stderr == ("hcasim: bubblewrap (bwrap) is not installed (Debian package "
                        "bubblewrap): running unconfined on host node2\n")
    assert (r.returncode, r.stdout) == (0, f"{os.uname().nodename}\n")  # the machine's
