"""Who frees a ConnectX-3 semaphore whose holder is gone or misbehaves (issue 9 item 3;
docs/secure-host.md, choice 6), in process with a fake clock: leases, the longest waiter
first, release at session end and when CR-space locks; local (control session) and
in-band (ibsim client) holders alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hcasim.devices.cx3 import SEM_LEASE, SEM_WAIT_WINDOW, HcrStatus
from hcasim.devices.cx3_registers import (
    CR_LOCKED_VALUE,
    SEM_FLASH_PROGRAMMING,
    SEM_GPIO,
    SEM_TOOLS_HCR,
)
from tests.support.cx3_rig import (
    CLIENT,
    KEY,
    CrAccess,
    FakeClock,
    InbandAccess,
    LocalAccess,
    Wire,
    hcr_command,
)


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def clock(wire: Wire) -> FakeClock:
    clock = FakeClock()
    wire.firmware["node1"].clock = clock
    return clock


def parties(wire: Wire) -> dict[str, CrAccess]:
    """Who may hold node1's semaphores: two sessions on node1 itself, ibsim clients on
    node2 (the administrator's in-band tool) and on node1 (its own host, in-band)."""
    fw = wire.firmware["node1"]
    return {
        "local": LocalAccess(fw),
        "local2": LocalAccess(fw),
        "inband": InbandAccess(wire, "node2", "node1", CLIENT),
        "own-inband": InbandAccess(wire, "node1", "node1", CLIENT + 1),
    }


@pytest.mark.parametrize("semaphore", [SEM_TOOLS_HCR, SEM_GPIO])
@pytest.mark.parametrize(("holder", "other"), [
    ("local", "inband"), ("own-inband", "inband"), ("inband", "local"), ("own-inband", "local"),
])
def test_a_command_semaphore_is_freed_after_its_lease(
        wire: Wire, clock: FakeClock, semaphore: int, holder: str, other: str) -> None:
    who = parties(wire)
    assert who[holder].read(semaphore) == [0]
    # the holder keeps busy (reads the HCR): a command semaphore's lease runs from taking it
    for _ in range(4):
        clock.advance(SEM_LEASE[semaphore] / 5)
        who[holder].read(0x80780)
        assert who[other].read(semaphore) == [1]
    clock.advance(SEM_LEASE[semaphore] / 5 + 0.01)
    assert who[other].read(semaphore) == [0]  # the lease ran out: the other takes it
    assert who[holder].read(semaphore) == [1]  # and the old holder waits its turn
    assert wire.firmware["node1"].holds(owner(wire, who[other]), semaphore)


def owner(wire: Wire, access: CrAccess) -> object:
    """The semaphore owner the firmware sees for ``access``."""
    if isinstance(access, LocalAccess):
        return access.owner
    assert isinstance(access, InbandAccess)
    return wire.owners[access.client]


def test_without_anyone_waiting_a_hold_lasts(wire: Wire, clock: FakeClock) -> None:
    who = parties(wire)
    assert who["local"].read(SEM_TOOLS_HCR) == [0]
    clock.advance(3600)
    assert wire.firmware["node1"].holds(owner(wire, who["local"]), SEM_TOOLS_HCR)
    assert who["local"].read(SEM_TOOLS_HCR) == [1]  # its own read: taken, as on hardware


def test_the_flash_semaphore_lease_runs_from_the_last_access(wire: Wire,
                                                             clock: FakeClock) -> None:
    who = parties(wire)
    lease = SEM_LEASE[SEM_FLASH_PROGRAMMING]
    assert who["inband"].read(SEM_FLASH_PROGRAMMING) == [0]
    for _ in range(10):  # a long in-band burn: the gateway is busy all the time
        clock.advance(lease * 0.9)
        who["inband"].read(0xF0400)
        assert who["local"].read(SEM_FLASH_PROGRAMMING) == [1]
    clock.advance(lease * 0.9)
    assert who["local"].read(SEM_FLASH_PROGRAMMING) == [1]
    clock.advance(lease * 0.2)  # the holder went silent for more than the lease
    assert who["local"].read(SEM_FLASH_PROGRAMMING) == [0]


def test_a_free_semaphore_goes_to_the_longest_waiter(wire: Wire, clock: FakeClock) -> None:
    who = parties(wire)
    attacker, admin, third = who["own-inband"], who["inband"], who["local2"]
    assert attacker.read(SEM_TOOLS_HCR) == [0]
    clock.advance(0.01)
    assert admin.read(SEM_TOOLS_HCR) == [1]  # the administrator starts waiting
    clock.advance(0.01)
    assert third.read(SEM_TOOLS_HCR) == [1]  # then a third party
    # the holder lets go and grabs it again at once: the administrator waited first
    attacker.write(SEM_TOOLS_HCR, [0])
    assert attacker.read(SEM_TOOLS_HCR) == [1]
    assert third.read(SEM_TOOLS_HCR) == [1]
    assert admin.read(SEM_TOOLS_HCR) == [0]
    admin.write(SEM_TOOLS_HCR, [0])
    assert attacker.read(SEM_TOOLS_HCR) == [1]  # the third party waited before it
    assert third.read(SEM_TOOLS_HCR) == [0]


def test_a_waiter_that_gave_up_holds_nothing_back(wire: Wire, clock: FakeClock) -> None:
    who = parties(wire)
    assert who["local"].read(SEM_TOOLS_HCR) == [0]
    assert who["inband"].read(SEM_TOOLS_HCR) == [1]  # one try, then the tool gave up
    who["local"].write(SEM_TOOLS_HCR, [0])
    assert who["local"].read(SEM_TOOLS_HCR) == [1]  # still within its waiting window
    clock.advance(SEM_WAIT_WINDOW + 0.01)
    assert who["local"].read(SEM_TOOLS_HCR) == [0]


def test_holders_that_go_away_release_at_once(wire: Wire, clock: FakeClock) -> None:
    fw = wire.firmware["node1"]
    who = parties(wire)
    assert who["local"].read(SEM_FLASH_PROGRAMMING) == [0]
    assert who["inband"].read(SEM_TOOLS_HCR) == [0]
    assert who["local2"].read(SEM_TOOLS_HCR) == [1]  # waits
    fw.release(owner(wire, who["local"]))  # the session closed
    wire.fabric.client_detached(wire.owners[CLIENT])  # the ibsim client detached
    assert who["local2"].read(SEM_FLASH_PROGRAMMING) == [0]
    assert who["local2"].read(SEM_TOOLS_HCR) == [0]


@dataclass
class Hogged(InbandAccess):
    """The administrator's in-band tool, with a hog that polls the tools semaphore
    between each of its MADs (and so would take it whenever it is free)."""

    hog: CrAccess | None = None

    def read(self, addr: int, count: int = 1) -> list[int]:
        assert self.hog is not None
        self.hog.read(SEM_TOOLS_HCR)
        return super().read(addr, count)


@pytest.mark.parametrize("hog", ["local", "own-inband"])
def test_the_administrator_gets_in_past_a_hogging_host(wire: Wire, clock: FakeClock,
                                                       hog: str) -> None:
    # node1's own software takes the tools semaphore and re-takes it whenever it can; the
    # administrator's in-band hw_access enable still runs, within one lease
    wire.lock("node1")
    fw = wire.firmware["node1"]
    holder = parties(wire)[hog]
    assert holder.read(SEM_TOOLS_HCR) == [0]
    start = clock.now
    admin = Hogged(wire, "node2", "node1", CLIENT, hog=holder)
    assert hcr_command(admin, clock, 0, KEY) == HcrStatus.OK
    assert clock.now - start <= SEM_LEASE[SEM_TOOLS_HCR] + 0.1
    assert not fw.secure.cr_locked


def test_locking_frees_the_flash_semaphores(wire: Wire, clock: FakeClock) -> None:
    wire.lock("node1")
    fw = wire.firmware["node1"]
    who = parties(wire)
    assert hcr_command(who["inband"], clock, 0, KEY) == HcrStatus.OK
    assert who["own-inband"].read(SEM_FLASH_PROGRAMMING) == [0]
    assert who["own-inband"].read(SEM_GPIO) == [0]
    assert hcr_command(who["inband"], clock, 1, 0) == HcrStatus.OK
    assert not fw.holds(wire.owners[CLIENT + 1], SEM_FLASH_PROGRAMMING)
    assert not fw.holds(wire.owners[CLIENT + 1], SEM_GPIO)
    # locked: nobody reaches them; unlocked again, they are free
    assert who["own-inband"].read(SEM_FLASH_PROGRAMMING) == [CR_LOCKED_VALUE]
    assert hcr_command(who["local"], clock, 0, KEY) == HcrStatus.OK
    assert who["local"].read(SEM_FLASH_PROGRAMMING) == [0]


def test_a_reboot_frees_everything(wire: Wire, clock: FakeClock) -> None:
    fw = wire.firmware["node1"]
    who = parties(wire)
    assert who["local"].read(SEM_TOOLS_HCR) == [0]
    assert who["inband"].read(SEM_TOOLS_HCR) == [1]
    fw.cold_boot()
    assert who["local2"].read(SEM_TOOLS_HCR) == [0]


def test_only_the_holder_frees_a_semaphore(wire: Wire, clock: FakeClock) -> None:
    # on a locked device anyone can write the tools semaphore; clearing the
    # administrator's hold mid-command would make its tool time out
    wire.lock("node1")
    fw = wire.firmware["node1"]
    who = parties(wire)
    admin, untrusted = who["inband"], who["own-inband"]
    assert admin.read(SEM_TOOLS_HCR) == [0]
    for hog in (untrusted, who["local"]):
        hog.write(SEM_TOOLS_HCR, [0])
        assert hog.read(SEM_TOOLS_HCR) == [1]
    assert fw.holds(owner(wire, admin), SEM_TOOLS_HCR)
    admin.write(SEM_TOOLS_HCR, [0])
    assert not fw.holds(owner(wire, admin), SEM_TOOLS_HCR)
