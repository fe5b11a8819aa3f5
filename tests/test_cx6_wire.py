"""The ConnectX-6 Dx on the wire, in process: identification reads (ConfigSpaceAccess) and
the AccessRegister SMP 0xFF52 (hcasim.hosts.cx6_wire), every refusal and malformed TLV.

The subnet is the default lab's, routed by quicksm; MADs go through the MAD engine as the
daemon hands them over. The SMPs are built by ``sim_client.access_register`` from
docs/sources.md §7.1's table, not by the device's own decoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from hcasim.api.officer import CryptoOfficer, commissioning_payload
from hcasim.devices.mlx5.firmware import Mlx5CryptoFirmware
from hcasim.devices.mlx5.register_access import RegStatus
from hcasim.fabric import quicksm
from hcasim.fabric.engine import DeliveryKind, MadEngine
from hcasim.fabric.netfile import parse_netfile_text
from hcasim.fabric.subnet import Subnet
from hcasim.fabric.topology import PortRef
from hcasim.hosts import cx6_wire
from hcasim.ib import access_register as ar
from hcasim.ib import build, mad, vendor
from hcasim.lab.lab import Device, Host
from hcasim.lab.spec import default_lab
from tests.support.sim_client import (
    CREDENTIAL_HANDLE,
    CRYPTO_OPERATIONAL,
    IMPORT_KEK_HANDLE,
    MFPA,
    MLOCK,
    REG_GET,
    REG_SET,
    RegisterReply,
    access_register,
    register_reply,
)

#: node2 -> sw1 -> crypto1 (sw1 port 5 in the default lab's net file)
DR_PATH = [1, 5]


@dataclass
class FakeLab:
    """The part of hcasim.lab.lab.Lab that install uses."""

    hosts: dict[str, Host] = field(default_factory=dict)


class Wire:
    """The default lab's fabric with the ConnectX-6 Dx firmware on crypto1."""

    def __init__(self) -> None:
        self.subnet = Subnet(parse_netfile_text(default_lab()["netfile"]))
        self.engine = MadEngine(self.subnet)
        self.nv: list[Any] = []
        self.firmware = Mlx5CryptoFirmware("crypto1/mt4125", lambda name, snap: self.nv.append(
            snap), {})
        self.firmware.bind(os.urandom(32))
        lab = FakeLab({"crypto1": Host("crypto1", [Device("crypto1/mt4125", "crypto1",
                                                          self.firmware)])})
        assert cx6_wire.install(lab.hosts.values(), self.subnet) == ["crypto1"]
        self.lids = {p.node.id: lid for lid, p in quicksm.configure(
            self.subnet, PortRef("sm", 1)).items()}

    def send(self, raw: bytes, dlid: int | None, source: str = "node2") -> list:  # type: ignore[type-arg]
        return self.engine.process(PortRef(source, 1), build.sim_request(raw, dlid), 0.0)

    def reply(self, raw: bytes, *, dr: bool = False, source: str = "node2") -> bytes:
        out = self.send(raw, None if dr else self.lids["crypto1"], source)
        assert [d.kind for d in out] == [DeliveryKind.REPLY], out
        reply: bytes = out[0].request.mad
        assert reply[12:16] == raw[12:16] and reply[3] == mad.response_method(raw[3])
        return reply

    def reg(self, register_id: int, method: int, register: bytes = b"", **kw: Any
            ) -> RegisterReply:
        dr = kw.pop("dr", False)
        raw = access_register(register_id, method, register, path=DR_PATH if dr else None,
                              **kw)
        return register_reply(self.reply(raw, dr=dr))

    def cr(self, address: int, count: int = 1, *, values: list[int] | None = None,
           mgmt_class: int = vendor.CLASS_MLNX_VENDOR_A) -> tuple[int, list[int]]:
        """A ConfigSpaceAccess Get (or Set of ``values``): (MAD status, dwords)."""
        request = vendor.ConfigSpaceAccessMad(
            base_version=1, mgmt_class=mgmt_class, class_version=1,
            method=mad.METHOD_GET if values is None else mad.METHOD_SET, tid=0x5F978201,
            attr_id=vendor.ATTR_CONFIG_SPACE_ACCESS,
            attr_mod=vendor.pack_cr_modifier(address, len(values) if values else count),
            data=vendor.ConfigSpaceAccessMad.pack_dwords(values or [])).encode()
        raw = self.reply(request)
        answer = vendor.ConfigSpaceAccessMad.decode(raw)
        return int.from_bytes(raw[4:6], "big"), list(answer.dwords(count))

    def officer(self) -> CryptoOfficer:
        registers = self.firmware.registers
        assert registers is not None
        return CryptoOfficer(registers.access)


@pytest.fixture
def wire() -> Wire:
    return Wire()


def test_only_the_connectx6dx_gets_the_wire_firmware(wire: Wire) -> None:
    assert isinstance(wire.subnet.node("crypto1").firmware, cx6_wire.Cx6Wire)
    assert not isinstance(wire.subnet.node("node1").firmware, cx6_wire.Cx6Wire)


# -- ConfigSpaceAccess: the identification words (docs/sources.md §7.3) ----------------------------


def test_identification_reads(wire: Wire) -> None:
    assert wire.cr(0xF0014) == (0, [0x00000212])
    assert wire.cr(0xF0014, mgmt_class=vendor.CLASS_MLNX_VENDOR_9) == (0, [0x00000212])
    assert wire.cr(0xF0408, 2) == (0, [0, 0])  # cache-replacement words: 0xf0408, 0xf040c


def test_other_cr_addresses_and_writes_are_refused(wire: Wire) -> None:
    for address, count in ((0xF0400, 1), (0x1000, 1), (0xF0010, 2), (0xF0014, 2)):
        assert wire.cr(address, count)[0] == mad.STATUS_INVALID_FIELD, hex(address)
    assert wire.cr(0xF0014, values=[0])[0] == mad.STATUS_INVALID_FIELD
    assert wire.cr(0xF0014) == (0, [0x00000212])  # unchanged
    # another vendor attribute (the GMP register access 0x51 is compiled out of mstflint)
    raw = bytearray(access_register(MLOCK, REG_GET, bytes(16)))
    raw[1], raw[16:18] = vendor.CLASS_MLNX_VENDOR_A, b"\x00\x51"
    assert int.from_bytes(wire.reply(bytes(raw))[4:6], "big") == mad.STATUS_METHOD_ATTR_UNSUPPORTED


def test_other_mellanox_smp_attributes_get_a_quick_error(wire: Wire) -> None:
    for attr in (0xFF50, 0xFF51, 0xFF53):
        raw = wire.reply(build.smp(attr, method=mad.METHOD_SET))
        assert int.from_bytes(raw[4:6], "big") == mad.STATUS_METHOD_ATTR_UNSUPPORTED


# -- AccessRegister --------------------------------------------------------------------------


def test_mlock_get_as_mstflint_sends_it(wire: Wire) -> None:
    # the request captured from mstflint q (docs/sources.md §7.1): 08 04 00 00 40 2d 01 01 .. 18 05
    raw = bytearray(build.smp(0xFF52, method=mad.METHOD_SET))
    raw[64:84] = bytes.fromhex("0804000040 2d0101 0000000000000000 18050000".replace(" ", ""))
    reply = wire.reply(bytes(raw))
    assert reply[4:6] == b"\0\0"
    assert reply[64:84] == bytes.fromhex("08040000402d8101000000000000000018050000")
    assert reply[84:128] == bytes(44)  # operation 0 (unlocked), no key


@pytest.mark.parametrize("dr", [False, True])
def test_mlock(wire: Wire, dr: bool) -> None:
    r = wire.reg(MLOCK, REG_GET, bytes(16), dr=dr, op_tid=0x1122334455667788)
    assert (r.mad_status, r.status, r.r, r.register_id, r.method, r.reg_class) == (
        0, RegStatus.OK, 1, MLOCK, REG_GET, 1)
    assert r.op_tid == 0x1122334455667788 and r.reg_len == 5 and r.data[:16] == bytes(16)
    # SET: the lab's ConnectX-6 Dx has no 5th-generation secure-host lock
    r = wire.reg(MLOCK, REG_SET, b"\0\0\0\1" + bytes(4) + bytes.fromhex("1a1a1a1a2b2b2b2b"),
                 dr=dr)
    assert (r.status, r.data[:16]) == (RegStatus.METHOD_NOT_SUPP, bytes(16))


def test_crypto_operational_first_bytes_follow_the_officer(wire: Wire) -> None:
    for dr in (False, True):
        r = wire.reg(CRYPTO_OPERATIONAL, REG_GET, bytes(44), dr=dr)
        assert (r.status, r.reg_len, r.data) == (RegStatus.OK, 12, bytes(44))  # commissioning
    credential, kek = os.urandom(40), os.urandom(32)
    wire.officer().commission(credential, kek)
    for dr in (False, True):
        r = wire.reg(CRYPTO_OPERATIONAL, REG_GET, bytes(44), dr=dr)
        # wrapped_crypto_operational (0x0.31) = 1; kek_size and the credential are WO: 0
        assert (r.status, r.data) == (RegStatus.OK, b"\x80\0\0\0" + bytes(40))
    # a GET of the first dword only: the rest of the SMP data is echoed
    r = wire.reg(CRYPTO_OPERATIONAL, REG_GET, bytes(4) + b"\xee" * 40, reg_bytes=4)
    assert (r.status, r.reg_len, r.data) == (RegStatus.OK, 2, b"\x80\0\0\0" + b"\xee" * 40)
    # going-to-commissioning set by the control path shows in-band
    wire.officer().set_going_to_commissioning()
    assert wire.reg(CRYPTO_OPERATIONAL, REG_GET, bytes(44)).data[:4] == b"\xc0\0\0\0"
    assert credential not in repr(wire.nv).encode() and kek.hex() not in repr(wire.nv)


def test_crypto_operational_set_does_not_fit_an_smp(wire: Wire) -> None:
    payload = commissioning_payload(os.urandom(40), os.urandom(16))  # 0x80 bytes
    attempts = [
        wire.reg(CRYPTO_OPERATIONAL, REG_SET, payload[:44], reg_bytes=0x80),  # claims 0x80
        wire.reg(CRYPTO_OPERATIONAL, REG_SET, payload[:44]),  # the first 44 bytes only
        wire.reg(CRYPTO_OPERATIONAL, REG_GET, bytes(44), reg_bytes=0x80),
        # the rest of the register in MAD bytes 128..255 (reserved in a LID-routed SMP)
        wire.reg(CRYPTO_OPERATIONAL, REG_SET, payload),
    ]
    for r in attempts:
        # LEN_TOO_SMALL, and nothing of the request (credential, KEK) comes back
        assert (r.mad_status, r.status, r.r, r.data) == (0, RegStatus.LEN_TOO_SMALL, 1, bytes(44))
    assert attempts[-1].raw[128:256] == payload[44:128] + bytes(128 - 84)  # untouched echo
    assert wire.officer().query_operational() == (False, False)
    assert wire.nv == []  # nothing was written


@pytest.mark.parametrize("register_id", [IMPORT_KEK_HANDLE, CREDENTIAL_HANDLE])
@pytest.mark.parametrize("method", [REG_GET, REG_SET])
def test_handle_registers_do_not_fit_an_smp(wire: Wire, register_id: int, method: int) -> None:
    # 0x300 bytes; a GET needs the officer's login object (0x0-0xff) and the id (0x200)
    for reg_bytes in (0x300, 44, 4):
        r = wire.reg(register_id, method, bytes(44), reg_bytes=reg_bytes)
        assert (r.status, r.register_id, r.data) == (RegStatus.LEN_TOO_SMALL, register_id,
                                                     bytes(44))


@pytest.mark.parametrize("register_id", [MFPA, 0x9001, 0x1234, 0xC003, 0xFFFF])
def test_unknown_registers(wire: Wire, register_id: int) -> None:
    r = wire.reg(register_id, REG_GET, b"\x55" * 32)
    assert (r.mad_status, r.status, r.r, r.register_id) == (0, RegStatus.REG_NOT_SUPP, 1,
                                                            register_id)
    assert r.data == bytes(44)


@pytest.mark.parametrize(("kw", "status"), [
    ({"op_type": 2}, RegStatus.UNKNOWN_TLV),  # a DR TLV where the Operation TLV belongs
    ({"op_type": 0}, RegStatus.UNKNOWN_TLV),
    ({"reg_type": 4}, RegStatus.UNKNOWN_TLV),  # a user-data TLV instead of the Reg TLV
    ({"reg_type": 0}, RegStatus.UNKNOWN_TLV),
    ({"op_len": 3}, RegStatus.BAD_PARAM),
    ({"op_len": 0x7FF}, RegStatus.BAD_PARAM),
    ({"reg_bytes": -4}, RegStatus.BAD_PARAM),  # Reg TLV length 0
    ({"reg_class": 2}, RegStatus.CLASS_NOT_SUPP),
    ({"reg_class": 0}, RegStatus.CLASS_NOT_SUPP),
    ({"reg_bytes": 0x1FF8}, RegStatus.LEN_TOO_SMALL),  # the largest length the field holds
])
def test_malformed_tlvs(wire: Wire, kw: dict[str, int], status: RegStatus) -> None:
    r = wire.reg(MLOCK, REG_GET, bytes(16), **kw)
    assert (r.mad_status, r.status, r.r) == (0, status, 1)
    # a malformed access changes nothing and the device keeps answering
    assert wire.reg(MLOCK, REG_GET, bytes(16)).status == RegStatus.OK


@pytest.mark.parametrize("method", [0, 3, 0x7F])
def test_register_methods(wire: Wire, method: int) -> None:
    r = wire.reg(CRYPTO_OPERATIONAL, method, bytes(44))
    assert (r.status, r.method) == (RegStatus.METHOD_NOT_SUPP, method)


def test_status_bits_of_a_request_are_replaced_and_others_echoed(wire: Wire) -> None:
    raw = bytearray(access_register(MLOCK, REG_GET, bytes(16)))
    raw[66] = 0x80 | 0x7F  # dr = 1, status = 0x7F in the request
    raw[67] = 0xA5  # reserved byte
    reply = wire.reply(bytes(raw))
    assert reply[64:68] == bytes([0x08, 0x04, 0x80, 0xA5])  # status 0, dr and reserved kept


def test_mad_methods_other_than_set_meet_the_standard_sma(wire: Wire) -> None:
    raw = access_register(MLOCK, REG_GET, bytes(16), mad_method=mad.METHOD_GET)
    assert int.from_bytes(wire.reply(raw)[4:6], "big") == mad.STATUS_METHOD_ATTR_UNSUPPORTED
    raw = access_register(MLOCK, REG_GET, bytes(16), mad_method=mad.METHOD_SEND)
    assert int.from_bytes(wire.reply(raw)[4:6], "big") == mad.STATUS_METHOD_UNSUPPORTED


def test_m_key_is_checked_like_any_set(wire: Wire) -> None:
    port = wire.subnet.node("crypto1").ports[0]
    port.m_key = 0x1122334455667788
    out = wire.send(access_register(MLOCK, REG_GET, bytes(16)), wire.lids["crypto1"])
    assert [d.kind for d in out if d.kind is DeliveryKind.REPLY] == []  # dropped by the SMA
    assert port.m_key_violations == 1
    r = wire.reg(MLOCK, REG_GET, bytes(16), m_key=port.m_key)
    assert r.status == RegStatus.OK


def test_a_failed_device_answers_internal_error(wire: Wire) -> None:
    wire.firmware.fail("test")
    r = wire.reg(CRYPTO_OPERATIONAL, REG_GET, bytes(44))
    assert (r.status, r.data) == (RegStatus.INTERNAL_ERROR, bytes(44))
    assert wire.reg(MLOCK, REG_GET, bytes(16)).status == RegStatus.OK


def test_the_host_itself_reaches_its_firmware(wire: Wire) -> None:
    # crypto1's own tools: LID-routed to its own LID, or a zero-hop directed route
    for raw, dlid in ((access_register(CRYPTO_OPERATIONAL, REG_GET, bytes(44)),
                       wire.lids["crypto1"]),
                      (access_register(CRYPTO_OPERATIONAL, REG_GET, bytes(44), path=[]), None)):
        out = wire.send(raw, dlid, source="crypto1")
        assert [d.kind for d in out] == [DeliveryKind.REPLY]  # answered, never forwarded
        assert register_reply(out[0].request.mad).status == RegStatus.OK


def test_the_public_client_side_builds_what_mstflint_sends(wire: Wire) -> None:
    # hcasim.ib.access_register.request: the bytes of docs/sources.md §7.1's capture, and of the
    # tests' hand-built client
    raw = ar.request(MLOCK, ar.GET, bytes(16))
    assert raw[64:84] == bytes.fromhex("08040000402d0101000000000000000018050000")
    assert raw == access_register(MLOCK, REG_GET, bytes(16))
    assert ar.request(CRYPTO_OPERATIONAL, ar.GET, bytes(44), path=DR_PATH) == access_register(
        CRYPTO_OPERATIONAL, REG_GET, bytes(44), path=DR_PATH)
    reply = ar.decode_reply(wire.reply(raw))
    assert (reply.mad_status, reply.status, reply.operation.r, reply.register) == (
        0, 0, 1, bytes(44))
    for bad in (bytes(45), bytes(6)):
        with pytest.raises(ValueError):
            ar.request(MLOCK, ar.GET, bad)
