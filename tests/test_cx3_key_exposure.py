"""No key material readable by a locked host (issue 9 item 2; docs/secure-host.md, choice 9).

In process, against the firmware model, its wire half and ConfigSpaceAccess (the same code
the daemon runs, without sockets): a Hypothesis state machine drives an administrator
(set_key as hcasim's flint stores it or raw as mstflint in-band does, hw_access with the
right key, the other key or a mistyped one, locally or in-band from node2, reboots,
driver restarts) and node1's own untrusted software (reads and writes of any CR-space
address, the tools semaphore taken and kept, flash reads through the gateway and as
blocks, locally and in-band to its own LID). Whatever the untrusted side reads while
node1 is locked, and whatever it reads of the tools HCR at any time, holds no key dword,
no key and no digest; nor do `hcasim status`, `hcasim driver show` and the logs.
"""

from __future__ import annotations

import hashlib
import logging

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from hcasim.devices import fs2
from hcasim.devices.cx3 import FirmwareError, HcrStatus
from hcasim.devices.cx3_registers import (
    CR_SPACE_SIZE,
    FLASH_GW_ADDR,
    FLASH_GW_CMD,
    FLASH_GW_DATA,
    HW_DEV_ID_ADDR,
    RUNNING_FW_ADDR,
    SEM_FLASH_PROGRAMMING,
    SEM_GPIO,
    SEM_TOOLS_HCR,
    TOOLS_HCR_ADDR,
    TOOLS_HCR_DWORDS,
)
from hcasim.devices.hw_key import image_with_key
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

HOST = "node1"
#: Key dwords are at least this, so no innocent value (0, 1, ids, versions, small
#: numbers the untrusted side writes) can be taken for one.
DWORD_FLOOR = 0x01000000
#: The observed command word of a 16-byte SPI read through the gateway (docs/sources.md §6.1).
GW_READ_16 = 0x4003241D
HCR_END = TOOLS_HCR_ADDR + 4 * TOOLS_HCR_DWORDS



def _key(seed: int) -> int:
    # keys look like keys (no runs of zeros a shrunk example would have, which the lab's
    # own numbers, a GID prefix say, could contain), so any match is a leak
    return int.from_bytes(hashlib.sha256(seed.to_bytes(8, "big")).digest()[:8], "big")


def _distinct(key: int) -> bool:
    return all(d >= DWORD_FLOOR and d != 0xBAD0CAFE for d in (key >> 32, key & 0xFFFFFFFF))


keys = st.integers(0, 2**32).map(_key).filter(_distinct)
#: Where the untrusted side reads: the HCR, the semaphores, the gateway, identification
#: registers, or anywhere.
interesting = st.sampled_from([
    *range(TOOLS_HCR_ADDR, HCR_END, 4), SEM_TOOLS_HCR, SEM_FLASH_PROGRAMMING, SEM_GPIO,
    *range(FLASH_GW_CMD, FLASH_GW_DATA + 16, 4), HW_DEV_ID_ADDR, RUNNING_FW_ADDR])
addresses = st.one_of(interesting, st.integers(0, CR_SPACE_SIZE // 4 - 8).map(lambda i: 4 * i))
#: What the untrusted side writes: nothing a key dword could be.
junk = st.one_of(st.integers(0, DWORD_FLOOR - 1), st.sampled_from([0xFFFFFFFF, 0x00800060,
                                                                    0x00801060, GW_READ_16]))


class Secrets:
    """Every key the administrator typed and every digest that was on flash, in the forms
    they could leak in: dwords, 8-byte strings, and text."""

    def __init__(self) -> None:
        self.values: set[int] = set()

    def add(self, value: int) -> None:
        if value:
            self.values.add(value)

    @property
    def dwords(self) -> set[int]:
        return {d for v in self.values for d in (v >> 32, v & 0xFFFFFFFF) if d >= DWORD_FLOOR}

    def check_dwords(self, what: str, dwords: list[int]) -> None:
        leaked = set(dwords) & self.dwords
        assert not leaked, f"{what}: key material {[hex(d) for d in leaked]}"
        self.check_bytes(what, b"".join(d.to_bytes(4, "big") for d in dwords))

    def check_bytes(self, what: str, data: bytes) -> None:
        for value in self.values:
            assert value.to_bytes(8, "big") not in data, f"{what}: a key or digest"

    def check_text(self, what: str, text: str) -> None:
        text = text.lower()
        for value in self.values:
            forms = {f"{value:x}", f"{value:016x}", str(value),
                     f"{value >> 32:08x}", f"{value & 0xFFFFFFFF:08x}"}
            assert not any(form in text for form in forms), f"{what}: key material"


class Capture(logging.Handler):
    """Every log line the lab's modules write."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class KeyExposure(RuleBasedStateMachine):
    """The administrator and node1's untrusted software, interleaved."""

    def __init__(self) -> None:
        super().__init__()
        self.wire = Wire()
        self.clock = FakeClock()
        self.fw = self.wire.firmware[HOST]
        self.fw.clock = self.clock
        self.secrets = Secrets()
        self.admin: dict[str, CrAccess] = {
            "local": LocalAccess(self.fw),
            "inband": InbandAccess(self.wire, "node2", HOST, CLIENT),
        }
        self.untrusted: dict[str, CrAccess] = {
            "local": LocalAccess(self.fw),
            "inband": InbandAccess(self.wire, HOST, HOST, CLIENT + 1),
        }
        self.logs = Capture()
        logging.getLogger("hcasim").addHandler(self.logs)
        logging.getLogger("hcasim").setLevel(logging.DEBUG)

    def teardown(self) -> None:
        logging.getLogger("hcasim").removeHandler(self.logs)

    @initialize(first=keys, second=keys, typo=keys)
    def keys(self, first: int, second: int, typo: int) -> None:
        self.typed = {"first": first, "second": second, "typo": typo}

    # -- the administrator -------------------------------------------------------------------

    @rule(which=st.sampled_from(["first", "second"]), raw=st.booleans())
    def set_key(self, which: str, raw: bool) -> None:
        key = self.typed[which]
        self.secrets.add(key)
        admin = self.admin["local"]
        assert isinstance(admin, LocalAccess)
        if admin.read(SEM_FLASH_PROGRAMMING) != [0]:
            return  # locked (0xbad0cafe) or busy: flint would stop here
        try:
            image = self.fw.flash_read(0, len(self.fw.flash.contents), admin.owner)
            if raw:  # mstflint in-band keeps the key as it is (docs/secure-host.md)
                new = fs2.with_image_info_tag(image, fs2.TAG_HW_ACCESS_KEY, key.to_bytes(8, "big"))
            else:
                new = image_with_key(image, key)
            self.fw.flash_write_image(new, admin.owner)
        finally:
            admin.write(SEM_FLASH_PROGRAMMING, [0])
        stored = fs2.parse_image(self.fw.flash.contents).hw_access_key
        self.secrets.add(stored or 0)  # the digest, or the raw key

    @rule(which=st.sampled_from(["first", "second", "typo"]),
          via=st.sampled_from(["local", "inband"]))
    def hw_access_enable(self, which: str, via: str) -> None:
        key = self.typed[which]
        self.secrets.add(key)  # a mistyped key is close to the real one: secret too
        status = hcr_command(self.admin[via], self.clock, 0, key)
        assert status is not None, "the administrator was kept out of the tools HCR"
        if status == HcrStatus.OK:
            assert not self.fw.secure.cr_locked

    @rule(via=st.sampled_from(["local", "inband"]))
    def hw_access_disable(self, via: str) -> None:
        assert hcr_command(self.admin[via], self.clock, 1, 0) is not None

    @rule()
    def reboot(self) -> None:
        self.fw.cold_boot()
        self.wire.fabric.host_event(HOST, "reboot")

    @rule()
    def driver_restart(self) -> None:
        self.fw.driver_restart()
        self.wire.fabric.host_event(HOST, "driver_restart")

    @rule(seconds=st.sampled_from([0.01, 0.3, 1.0, 20.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # -- node1's untrusted software -----------------------------------------------------------

    def _seen(self, what: str, addr: int, values: list[int], locked: bool) -> None:
        hcr = any(TOOLS_HCR_ADDR <= addr + 4 * i < HCR_END for i in range(len(values)))
        if locked or hcr:
            self.secrets.check_dwords(f"{what} {addr:#x} (locked={locked})", values)

    @rule(addr=addresses, count=st.integers(1, 8), via=st.sampled_from(["local", "inband"]))
    def read(self, addr: int, count: int, via: str) -> None:
        locked = self.fw.secure.cr_locked
        self._seen(f"{via} read", addr, self.untrusted[via].read(addr, count), locked)

    @rule(addr=interesting, value=junk, via=st.sampled_from(["local", "inband"]))
    def write(self, addr: int, value: int, via: str) -> None:
        self.untrusted[via].write(addr, [value])  # a go bit, a semaphore release, anything

    @rule(offset=st.integers(0, 0x3FFF).map(lambda i: 16 * i),
          via=st.sampled_from(["local", "inband"]))
    def gateway_read(self, offset: int, via: str) -> None:
        locked = self.fw.secure.cr_locked
        access = self.untrusted[via]
        access.write(FLASH_GW_ADDR, [offset])
        access.write(FLASH_GW_CMD, [GW_READ_16])
        self._seen(f"{via} gateway", FLASH_GW_DATA, access.read(FLASH_GW_DATA, 4), locked)

    @precondition(lambda self: self.fw.secure.cr_locked)
    @rule(offset=st.integers(0, 0xFFFF), length=st.integers(1, 0x1000))
    def flash_block_read(self, offset: int, length: int) -> None:
        access = self.untrusted["local"]
        assert isinstance(access, LocalAccess)
        access.read(SEM_FLASH_PROGRAMMING)
        with pytest.raises(FirmwareError):
            data = self.fw.flash_read(offset, length, access.owner)
            self.secrets.check_bytes("block flash read while locked", data)

    # -- what the lab shows -------------------------------------------------------------------

    @invariant()
    def nothing_shown(self) -> None:
        if not hasattr(self, "typed"):
            return
        self.secrets.check_text("hcasim status", repr(self.fw.status()))
        self.secrets.check_text("hcasim driver show", repr(self.wire.fabric.show_drivers(HOST)))
        self.secrets.check_text("the logs", "\n".join(self.logs.lines))
        self.secrets.check_text("the firmware's repr", repr(self.fw))


def run_machine(examples: int) -> None:
    """Run the state machine for ``examples`` random sequences."""
    KeyExposure.TestCase.settings = settings(
        max_examples=examples, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    KeyExposure.TestCase().runTest()


def test_no_key_material_reaches_a_locked_host() -> None:
    run_machine(60)


def test_the_hcr_forgets_the_key_at_completion() -> None:
    # issue 9 item 2 as reported: after hw_access enable KEY, and after a mistyped key,
    # the key's dwords stayed at 0x80780/0x80784
    wire = Wire()
    clock = FakeClock()
    fw = wire.firmware[HOST]
    fw.clock = clock
    wire.lock(HOST)
    admin = InbandAccess(wire, "node2", HOST, CLIENT)
    untrusted = LocalAccess(fw)
    typo = 0x1A1A1A1A2B2B2B2C
    assert hcr_command(admin, clock, 0, typo) == HcrStatus.BAD_PARAM
    # a locked host that takes the semaphore reads the HCR: no input parameters left
    assert untrusted.read(SEM_TOOLS_HCR) == [0]
    words = untrusted.read(TOOLS_HCR_ADDR, TOOLS_HCR_DWORDS)
    assert words[:3] == [0, 0, 0] and words[6] == 0x03000060  # status 3, HW_ACCESS
    untrusted.write(SEM_TOOLS_HCR, [0])
    # setting go again re-runs the command with what is left: no key, so it fails
    assert untrusted.read(SEM_TOOLS_HCR) == [0]
    untrusted.write(TOOLS_HCR_ADDR + 24, [0x00800060])
    assert fw.secure.cr_locked
    untrusted.write(SEM_TOOLS_HCR, [0])
    assert hcr_command(admin, clock, 0, KEY) == HcrStatus.OK
    assert admin.read(TOOLS_HCR_ADDR, 3) == [0, 0, 0]  # unlocked: anyone may read it


def test_a_locked_hcr_is_only_the_semaphore_holders() -> None:
    # while the administrator's command is being written (key in in_param, go not yet
    # set), another party reads 0xbad0cafe there
    wire = Wire()
    fw = wire.firmware[HOST]
    wire.lock(HOST)
    admin, untrusted = LocalAccess(fw), InbandAccess(wire, HOST, HOST, CLIENT + 1)
    assert admin.read(SEM_TOOLS_HCR) == [0]
    admin.write(TOOLS_HCR_ADDR, [0x1A1A1A1A, 0x2B2B2B2B])
    assert untrusted.read(TOOLS_HCR_ADDR, 2) == [0xBAD0CAFE, 0xBAD0CAFE]
    untrusted.write(TOOLS_HCR_ADDR + 24, [0x00800060])  # nor may it set go
    assert admin.read(TOOLS_HCR_ADDR, TOOLS_HCR_DWORDS) == [0x1A1A1A1A, 0x2B2B2B2B, 0, 0, 0, 0, 0]
    assert untrusted.read(SEM_TOOLS_HCR) == [1]
