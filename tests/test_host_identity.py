"""A process of a lab host acts as that host only, on every path into the lab.

Identity comes from the kernel (the peer's pid and uid), never from the environment: each
attempt here changes a variable the tools read and must act as its own host all the same,
or be refused with one clear line. The operator's actions are refused inside any host; a
user other than the lab owner cannot attach at all.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hcasim.lab.home import LabHome
from hcasim.testing import LabHandle

KEY = "0x1122334455667788"
CX3 = "/dev/mst/mt4099_pci_cr0"


def _as_other_user(env: dict[str, str], *cmd: str) -> subprocess.CompletedProcess[str]:
    """Run a command as ``nobody`` (another local user than the lab owner)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.fail("this test runs as root with setpriv (util-linux) to be another user")
    return subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           *cmd], env=env, capture_output=True, text=True, timeout=60, cwd="/")


def test_sim_host_cannot_change_who_a_host_process_is(lab: LabHandle) -> None:
    own = lab.run("node2", "smpquery", "nodedesc", "-D", "0")
    assert own.returncode == 0, own.stderr
    assert "node2" in own.stdout
    spoofed = lab.run("node2", "env", "SIM_HOST=node1", "smpquery", "nodedesc", "-D", "0")
    assert spoofed.returncode != 0
    assert "node1" not in spoofed.stdout
    log = (lab.home / "daemon.log").read_text()
    assert "a process of host node2 cannot attach as node1" in log
    # logged once per process, not per retry
    assert log.count("cannot attach as node1") <= 2


def test_environment_cannot_name_another_hosts_device(lab: LabHandle) -> None:
    for var in ("HCASIM_HOST=node1", f"HCASIM_HOME={lab.home}", "SIM_HOST=node1"):
        r = lab.run("node2", "env", var, "HCASIM_HOST=node1", "flint", "-d", CX3, "q")
        # flint's own words: as on node2's machine, node1's device file does not exist
        assert r.returncode != 0
        assert "Cannot open Device: /dev/mst/mt4099_pci_cr0" in r.stdout, r.stdout
    assert lab.run("node2", "flint", "-d", CX3, "q").returncode == 0


def test_operator_actions_are_refused_inside_a_host(lab: LabHandle) -> None:
    refused = {
        ("driver", "restart", "node1"): "driver_restart",
        ("host", "reboot", "node1"): "host_reboot",
        ("status",): "status",
        ("sm", "status"): "sm_status",
        ("fault", "link", "node3", "1", "down"): "fault_link",
        ("fault", "node", "node3", "silent"): "fault_node",
        ("fault", "show"): "fault_show",
        ("down",): None,
    }
    for args, op in refused.items():
        r = lab.run("node2", "hcasim", *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        line = r.stderr.strip()
        assert "\n" not in line
        if op is not None:
            assert line == f"hcasim: {op} is the lab operator's: refused from host node2", line
    assert lab.hcasim("status").returncode == 0  # the lab is still up, for its operator
    # a host's own device stays its root's: flint query and driver_show of its own host
    assert lab.flint("node2", "-d", CX3, "q").returncode == 0
    assert lab.run("node2", "hcasim", "driver", "show", "node2").returncode == 0
    other = lab.run("node2", "hcasim", "driver", "show", "node1")
    assert other.stderr.strip() == "hcasim: a process of host node2 cannot act as host node1"
    # a host cannot start a process tree as another host
    nested = lab.run("node2", "hcasim", "exec", "--host", "node1", "--", "true")
    assert nested.returncode == 1
    assert nested.stderr.strip() == "hcasim: a process of host node2 cannot act as host node1"


def test_crypto_officer_commands_refused_from_another_host(lab: LabHandle) -> None:
    r = lab.run("node2", "hcasim", "crypto", "going-to-commissioning", "--host", "crypto1")
    assert r.returncode == 1
    assert r.stderr.strip().endswith("a process of host node2 cannot act as host crypto1")


def test_another_user_cannot_attach(lab: LabHandle) -> None:
    env = LabHome(lab.home).fabric_environment(dict(os.environ), "node1")
    r = _as_other_user(env, "smpquery", "nodedesc", "-D", "0")
    assert r.returncode != 0
    log = (lab.home / "daemon.log").read_text()
    assert "is not the lab owner's" in log
    # the operator (the owner, outside every host) attaches anywhere
    mine = subprocess.run(["smpquery", "nodedesc", "-D", "0"], env=env, capture_output=True,
                          text=True, timeout=60, cwd="/")
    assert mine.returncode == 0, mine.stderr


def test_another_user_cannot_use_the_control_socket(lab: LabHandle) -> None:
    env = lab.env()
    code = ("from hcasim.api.client import ControlClient; import sys\n"
            f"c = ControlClient({str(LabHome(lab.home).socket)!r})\n"
            "print(c.call('status'))\n")
    r = _as_other_user(env, sys.executable, "-c", code)
    assert r.returncode != 0
    assert "status" not in r.stdout


def test_a_host_reboot_brings_back_a_port_disabled_from_the_fabric(lab: LabHandle) -> None:
    # the operator disables node3's HCA port over the switch (directed route sm -> sw1
    # port 4 -> node3); node3 stayed down after its reboot until the daemon restarted
    env = LabHome(lab.home).fabric_environment(dict(os.environ), "sm")
    off = subprocess.run(["ibportstate", "-D", "0,1,4", "1", "disable"], env=env,
                         capture_output=True, text=True, timeout=60, cwd="/")
    # ibportstate reports a failure: the port's answer cannot cross the link it disabled
    assert "PhysLinkState" in off.stdout, off.stdout + off.stderr
    switch_port = subprocess.run(["smpquery", "portinfo", "-D", "0,1", "4"], env=env,
                                 capture_output=True, text=True, timeout=60, cwd="/")
    assert "PhysLinkState:...................Polling" in switch_port.stdout, switch_port.stdout
    assert lab.run("node3", "smpquery", "portinfo", "-D", "0", "1").returncode != 0
    lab.reboot("node3")
    up = lab.run("node3", "smpquery", "portinfo", "-D", "0", "1")
    assert "Disabled" not in up.stdout, up.stdout
    assert "LinkUp" in up.stdout, up.stdout


def test_the_identity_tables_forget_sandboxes_that_ended() -> None:
    # A sandbox's mount namespace is remembered as its host's (a daemonised tool stays its
    # host); once no process holds it, the kernel may give its inode number to a new
    # namespace, so it is forgotten before the next sandbox is made.
    import time

    from hcasim.lab.identity import Identities

    ids = Identities()
    box = subprocess.Popen(["bwrap", "--bind", "/", "/", "--dev-bind", "/dev", "/dev",
                            "--unshare-ipc", "--", "sleep", "60"])
    try:
        ids.register(box.pid, "node1")
        children = Path(f"/proc/{box.pid}/task/{box.pid}/children")
        deadline = time.monotonic() + 30
        while not children.read_text().split():
            assert time.monotonic() < deadline, "bwrap started no child"
            time.sleep(0.01)
        inner = int(children.read_text().split()[0])
        assert ids.resolve(inner, os.geteuid()).host == "node1"
        namespace = os.stat(f"/proc/{inner}/ns/mnt").st_ino
        assert ids.namespaces == {namespace: "node1"}
        ids.prune()  # still running: kept
        assert ids.namespaces == {namespace: "node1"} and len(ids.roots) == 1
        os.kill(inner, signal.SIGKILL)  # the sandbox's last process: bwrap then exits
        assert box.wait(30) != 0
    finally:
        box.kill()
        box.wait()
    ids.prune()
    assert (ids.namespaces, ids.roots) == ({}, {})
