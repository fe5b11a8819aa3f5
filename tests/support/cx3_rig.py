"""The default lab's fabric in process, with ConnectX-3 firmware on sm, node1 and node2: the
MAD engine, the wire firmware and the mlx4 drivers, as the daemon composes them, without
sockets (MADs go through the engine as the daemon hands them over: the TID carries the
sending client's index in bits 63-48).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from hcasim.devices import fs2
from hcasim.devices.cx3 import CONNECTX3, Cx3Firmware
from hcasim.devices.cx3_registers import (
    HW_ACCESS_OPCODE,
    SEM_TOOLS_HCR,
    TOOLS_HCR_ADDR,
    TOOLS_HCR_DWORDS,
    HcrCommandWord,
    ToolsHcr,
    decode_dword,
    dword_value,
)
from hcasim.devices.flash import Flash
from hcasim.devices.hw_key import image_with_key
from hcasim.fabric import quicksm
from hcasim.fabric.engine import DeliveryKind, MadEngine
from hcasim.fabric.netfile import parse_netfile_text
from hcasim.fabric.subnet import Subnet
from hcasim.fabric.topology import PortRef
from hcasim.hosts.cx3_wire import Cx3Fabric
from hcasim.ib import build, mad, vendor
from hcasim.lab.lab import Device, Host
from hcasim.lab.spec import default_lab

KEY = 0x1A1A1A1A2B2B2B2B
CLIENT = 7  # the index the daemon would tag the sender's TIDs with


@dataclass
class FakeLab:
    """The part of hcasim.lab.lab.Lab the wire model uses: hosts and their devices."""

    hosts: dict[str, Host] = field(default_factory=dict)

    def host(self, name: str) -> Host:
        return self.hosts[name]


class Wire:
    """The default lab's fabric with ConnectX-3 firmware on sm, node1 and node2."""

    def __init__(self) -> None:
        definition = default_lab()
        self.subnet = Subnet(parse_netfile_text(definition["netfile"]))
        self.engine = MadEngine(self.subnet)
        self.lab = FakeLab()
        self.firmware: dict[str, Cx3Firmware] = {}
        for raw in definition["hosts"]:
            if raw["name"] not in ("sm", "node1", "node2"):
                continue
            image = fs2.build_image(device_id=4099, fw_version=(2, 42, 5000),
                                    psid="MT_1090120019", release_date=(5, 9, 2017),
                                    guid_base=raw["guid"], cr_protection_en=True)
            fw = Cx3Firmware(CONNECTX3, Flash(image))
            fw.cold_boot()
            self.firmware[raw["name"]] = fw
            self.lab.hosts[raw["name"]] = Host(raw["name"],
                                               [Device(f"{raw['name']}/mt4099", raw["name"], fw)])
        self.owners: dict[int, object] = {CLIENT: object(), CLIENT + 1: object()}
        self.fabric = Cx3Fabric(self.lab.hosts.values(), self.subnet, self.owners)
        self.fabric.start_drivers()
        self.lids = {p.node.id: lid for lid, p in quicksm.configure(
            self.subnet, PortRef("sm", 1)).items()}

    def lock(self, host: str) -> None:
        """set_key KEY (as hcasim's flint stores it) and a driver restart."""
        fw = self.firmware[host]
        fw.flash.replace(image_with_key(fw.flash.contents, KEY))
        fw.driver_restart()
        self.fabric.host_event(host, "driver_restart")

    def send(self, source: str, raw: bytes, dlid: int | None = None,
             client: int = CLIENT) -> list:  # type: ignore[type-arg]
        tagged = bytearray(raw)
        if not mad.is_response(tagged[3]):
            tagged[8:10] = client.to_bytes(2, "big")
        request = build.sim_request(bytes(tagged), dlid)
        return self.engine.process(PortRef(source, 1), request, 0.0)

    def reply(self, source: str, raw: bytes, dlid: int | None = None,
              client: int = CLIENT) -> bytes | None:
        out = self.send(source, raw, dlid, client)
        replies = [d for d in out if d.kind is DeliveryKind.REPLY]
        return replies[0].request.mad if replies else None

    def cr(self, source: str, target: str, address: int, count: int = 1, *,
           values: list[int] | None = None, mgmt_class: int = vendor.CLASS_MLNX_VENDOR_A,
           client: int = CLIENT, modifier: int | None = None) -> tuple[int, list[int]]:
        """A ConfigSpaceAccess Get (or Set of ``values``): (MAD status, dwords)."""
        if values is not None:
            count = len(values)
        attr_mod = vendor.pack_cr_modifier(address, count) if modifier is None else modifier
        request = vendor.ConfigSpaceAccessMad(
            base_version=1, mgmt_class=mgmt_class, class_version=1,
            method=mad.METHOD_GET if values is None else mad.METHOD_SET, tid=0x5F978201,
            attr_id=vendor.ATTR_CONFIG_SPACE_ACCESS, attr_mod=attr_mod,
            data=vendor.ConfigSpaceAccessMad.pack_dwords(values or [])).encode()
        raw = self.reply(source, request, self.lids[target], client)
        assert raw is not None
        assert raw[1] == mgmt_class and raw[3] == mad.METHOD_GET_RESP
        assert raw[8:16] == client.to_bytes(2, "big") + request[10:16]  # the TID, as tagged
        status = int.from_bytes(raw[4:6], "big")
        answer = vendor.ConfigSpaceAccessMad.decode(raw)
        return status, list(answer.dwords(min(count, vendor.MAX_CR_DWORDS)))


class FakeClock:
    """A monotonic clock the test moves by hand (the firmware's semaphore leases read it)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds


class CrAccess(Protocol):
    """One party's way to a ConnectX-3's CR-space: its control session or in-band MADs."""

    def read(self, addr: int, count: int = 1) -> list[int]:
        """Read ``count`` dwords at ``addr``."""

    def write(self, addr: int, values: list[int]) -> None:
        """Write dwords at ``addr``."""


@dataclass
class LocalAccess:
    """A control session on the device's own host (hcasim's flint): the firmware itself,
    with ``owner`` standing for the session."""

    firmware: Cx3Firmware
    owner: object = field(default_factory=object)

    def read(self, addr: int, count: int = 1) -> list[int]:
        return self.firmware.cr_read(addr, count, self.owner)

    def write(self, addr: int, values: list[int]) -> None:
        self.firmware.cr_write(addr, values, self.owner)


@dataclass
class InbandAccess:
    """ConfigSpaceAccess MADs from ``source`` to ``target`` as ibsim client ``client``
    (mstflint -d lid-N, mstmcra)."""

    wire: Wire
    source: str
    target: str
    client: int

    def read(self, addr: int, count: int = 1) -> list[int]:
        status, values = self.wire.cr(self.source, self.target, addr, count, client=self.client)
        assert status == 0
        return values

    def write(self, addr: int, values: list[int]) -> None:
        status, _ = self.wire.cr(self.source, self.target, addr, values=values,
                                 client=self.client)
        assert status == 0


def hcr_command(access: CrAccess, clock: FakeClock, op_mod: int, in_param: int,
                opcode: int = HW_ACCESS_OPCODE) -> int | None:
    """Run one tools-HCR command as mstflint does (docs/sources.md §5.2-5.3): take 0xf03bc
    by reading it (the clock moves 50 ms per busy read, 100 tries), write the HCR with go
    clear, set go, read it back, release. The status, or None if the semaphore never came."""
    for _ in range(100):
        if access.read(SEM_TOOLS_HCR) == [0]:
            break
        clock.advance(0.05)
    else:
        return None
    command = HcrCommandWord(opcode_modifier=op_mod, opcode=opcode)
    block = ToolsHcr(in_param=in_param, command=command).encode()
    access.write(TOOLS_HCR_ADDR, [int.from_bytes(block[i:i + 4], "big")
                                  for i in range(0, ToolsHcr.SIZE, 4)])
    command.go = 1
    access.write(TOOLS_HCR_ADDR + 24, [dword_value(command)])
    words = access.read(TOOLS_HCR_ADDR, TOOLS_HCR_DWORDS)
    access.write(SEM_TOOLS_HCR, [0])
    return int(decode_dword(HcrCommandWord, words[6]).status)
