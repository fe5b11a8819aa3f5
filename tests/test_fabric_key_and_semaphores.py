"""The key under attack, end to end (issue 9 items 2 and 3): the real mstmcra and mstflint
in-band and hcasim's flint against the lab daemon.

One lab for the module, its tests in order: OpenSM manages the subnet; node1 gets a key
and its driver restarts (locked, firewall on). Then the tools HCR holds no key after any
hw_access, a locked host reads nothing of the key anywhere, and a tools semaphore kept
by another party, in-band or through a control session, does not keep the administrator's
in-band hw_access out (docs/secure-host.md, choices 6 and 9).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from hcasim.api.client import ControlClient
from hcasim.ib import vendor
from hcasim.testing import LabHandle, running_lab
from tests.support.fabric import ok
from tests.support.sim_client import SimClient

KEY = "1a1a1a1a2b2b2b2b"
TYPO = "1a1a1a1a2b2b2b2c"
CX3 = "/dev/mst/mt4099_pci_cr0"
ENABLED = "-I- The Secure Host was disabled successfully on the device.\n"
WRONG = ("-E- Failed to execute command hw_access. Enable HW access failed: The given key is "
         "incorrect\n")
#: What a key could show as: its dwords, as mstmcra prints them and as text.
KEY_FORMS = ("1a1a1a1a", "2b2b2b2b", "2b2b2b2c", KEY, TYPO)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("key-attack") / "home") as handle:
        assert handle.hcasim("sm", "start").returncode == 0
        assert handle.flint("node1", "-d", CX3, "set_key", KEY).returncode == 0
        assert handle.hcasim("driver", "restart", "node1").returncode == 0
        yield handle


def lid(lab: LabHandle, host: str) -> int:
    shown = json.loads(ok(lab.hcasim("driver", "show", host, "--json")).stdout)
    return int(shown["devices"][0]["port"]["lid"])


def mcra(lab: LabHandle, host: str, addr: int) -> str:
    """``mstmcra lid-N ADDR`` of node1, run on ``host``: the dword it prints."""
    return str(ok(lab.run(host, "mstmcra", f"lid-{lid(lab, 'node1')}", f"{addr:#x}")).stdout)


def no_key_in(text: str) -> None:
    assert not any(form in text.lower() for form in KEY_FORMS), text


def test_a_wrong_key_in_band_leaves_nothing_in_the_hcr(lab: LabHandle) -> None:
    dev = f"lid-{lid(lab, 'node1')}"
    r = lab.run("node2", "mstflint", "-d", dev, "hw_access", "enable", TYPO)
    assert (r.returncode, r.stdout) == (1, WRONG)
    # the locked host, in-band to its own port and through its own CR-space
    for addr in (0x80780, 0x80784):
        assert mcra(lab, "node1", addr) == "0xbad0cafe\n"
    # even as the tools semaphore's holder (what mstflint would be), only zeros are left
    get = bytes.fromhex("010a010100000000000000035f978201005000000f0103bc") + bytes(232)
    with SimClient(lab.home, "node1") as own:
        reply = own.mad(get, lid(lab, "node1"))
        assert reply is not None and reply.mad[32:36] == bytes(4)  # taken
        hcr = get[:20] + vendor.pack_cr_modifier(0x80780, 7).to_bytes(4, "big") + get[24:]
        reply = own.mad(hcr, lid(lab, "node1"))
        assert reply is not None
        words = [reply.mad[32 + 4 * i: 36 + 4 * i].hex() for i in range(7)]
        assert words == ["00000000"] * 6 + ["03000060"]  # status 3, HW_ACCESS


def test_enable_in_band_then_the_hcr_reads_zero(lab: LabHandle) -> None:
    dev = f"lid-{lid(lab, 'node1')}"
    assert ok(lab.run("node2", "mstflint", "-d", dev, "hw_access", "enable", KEY)).stdout \
        == ENABLED
    # unlocked: anyone reads CR-space, and the key is gone from the HCR
    for host in ("node1", "node2"):
        assert mcra(lab, host, 0x80780) == "0x00000000\n"
        assert mcra(lab, host, 0x80784) == "0x00000000\n"
    assert mcra(lab, "node2", 0x80798) == "0x00000060\n"
    assert ok(lab.run("node2", "mstflint", "-d", dev, "hw_access", "disable")).stdout == ""


def test_enable_locally_with_flint_then_the_hcr_reads_zero(lab: LabHandle) -> None:
    r = lab.flint("node1", "-d", CX3, "hw_access", "enable", TYPO)
    assert (r.returncode, r.stdout) == (1, WRONG)
    assert ok(lab.flint("node1", "-d", CX3, "hw_access", "enable", KEY)).stdout == ENABLED
    assert mcra(lab, "node2", 0x80780) == "0x00000000\n"
    assert mcra(lab, "node2", 0x80784) == "0x00000000\n"
    ok(lab.flint("node1", "-d", CX3, "hw_access", "disable"))
    assert lab.device_state("node1")["cr_space_locked"] is True


def test_a_locked_host_reads_no_flash(lab: LabHandle) -> None:
    # the gateway while locked: writes dropped, data reads 0xbad0cafe
    for addr in (0xF0400, 0xF0410, 0xF041C):
        assert mcra(lab, "node1", addr) == "0xbad0cafe\n"
    r = lab.flint("node1", "-d", CX3, "q")
    assert r.returncode == 1 and "HW access is disabled on the device" in r.stdout


def test_nothing_the_lab_shows_has_the_key(lab: LabHandle) -> None:
    no_key_in(ok(lab.hcasim("status")).stdout)
    no_key_in(ok(lab.hcasim("status", "--json")).stdout)
    no_key_in(ok(lab.hcasim("driver", "show", "node1")).stdout)
    no_key_in(ok(lab.hcasim("driver", "show", "node1", "--json")).stdout)
    no_key_in((lab.home / "daemon.log").read_text())


# -- item 3: a semaphore kept by someone else -----------------------------------------------------

#: ConfigSpaceAccess Get of the tools semaphore 0xf03bc, as mstmcra sends it.
SEM_GET = bytes.fromhex("010a010100000000000000035f978201005000000f0103bc") + bytes(232)


def test_an_in_band_holder_does_not_keep_the_administrator_out(lab: LabHandle) -> None:
    node1 = lid(lab, "node1")
    assert lab.device_state("node1")["cr_space_locked"] is True
    # node1's own software takes the tools semaphore in-band and never lets go (a killed
    # tool whose client never detached looks the same)
    with SimClient(lab.home, "node1") as hog:
        reply = hog.mad(SEM_GET, node1)
        assert reply is not None and reply.mad[32:36] == bytes(4)
        start = time.monotonic()
        r = ok(lab.run("node2", "mstflint", "-d", f"lid-{node1}", "hw_access", "enable", KEY))
        assert r.stdout == ENABLED
        assert time.monotonic() - start < 10
        reply = hog.mad(SEM_GET, node1)  # the lease ended: the hog lost it
        assert reply is not None and reply.mad[32:36] == bytes(4)
    log = (lab.home / "daemon.log").read_text()
    assert "node1/mt4099: semaphore 0xf03bc released: held past its 0.5 s lease" in log
    ok(lab.run("node2", "mstflint", "-d", f"lid-{node1}", "hw_access", "disable"))


def test_a_control_session_holder_does_not_keep_the_administrator_out(lab: LabHandle) -> None:
    node1 = lid(lab, "node1")
    assert lab.device_state("node1")["cr_space_locked"] is True
    session = ControlClient(str(lab.home / "hcasim.sock"), host="node1")
    try:
        handle = session.call("open", path=CX3)["handle"]
        assert session.call("cr_read", handle=handle, addr=0xF03BC, count=1)["values"] == [0]
        r = ok(lab.run("node2", "mstflint", "-d", f"lid-{node1}", "hw_access", "enable", KEY))
        assert r.stdout == ENABLED
        # and hcasim's flint, locally on the same host
        ok(lab.flint("node1", "-d", CX3, "hw_access", "disable"))
        assert session.call("cr_read", handle=handle, addr=0xF03BC, count=1)["values"] == [0]
        r = ok(lab.flint("node1", "-d", CX3, "hw_access", "enable", KEY))
        assert r.stdout == ENABLED
    finally:
        session.close()
    ok(lab.flint("node1", "-d", CX3, "hw_access", "disable"))


def test_a_host_that_clears_and_retakes_does_not_keep_the_administrator_out(
        lab: LabHandle) -> None:
    # node1's software keeps writing 0 to the tools semaphore and taking it again, as fast
    # as it can: it can neither free the administrator's hold nor jump the queue
    node1 = lid(lab, "node1")
    assert lab.device_state("node1")["cr_space_locked"] is True
    release = SEM_GET[:3] + b"\x02" + SEM_GET[4:]  # Set 0xf03bc = 0
    stop = threading.Event()
    taken = []

    def hog() -> None:
        with SimClient(lab.home, "node1") as client:
            while not stop.is_set():
                client.mad(release, node1)
                reply = client.mad(SEM_GET, node1)
                taken.append(reply is not None and reply.mad[32:36] == bytes(4))

    thread = threading.Thread(target=hog)
    thread.start()
    try:
        time.sleep(0.2)
        r = ok(lab.run("node2", "mstflint", "-d", f"lid-{node1}", "hw_access", "enable", KEY))
        assert r.stdout == ENABLED
    finally:
        stop.set()
        thread.join()
    assert any(taken)  # the hog did hold it
    ok(lab.run("node2", "mstflint", "-d", f"lid-{node1}", "hw_access", "disable"))
