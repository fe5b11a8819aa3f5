"""A program on a lab host that speaks the ibsim protocol itself, for MADs no tool sends.

It does what libumad2sim.so does (docs/sources.md §1): binds ``<base>:in<id>``,
CONNECTs on ``<base>:ctl`` with ``SIM_HOST``, then exchanges 288-byte ``sim_request``
datagrams on ``<base>:out<index>``, and DISCONNECTs when closed. It also builds and
decodes the AccessRegister SMP (attribute 0xFF52) from docs/sources.md §7.1's table, by
hand, so that the tests do not check the device's decoder against itself.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from hcasim.ib import build, mad
from hcasim.ib.simproto import SIM_MAGIC, SimClientInfo, SimCtl, SimCtlType, SimRequest
from hcasim.lab.home import LabHome

_ids = itertools.count(os.getpid() * 100 % 0x7FFF0000 + 0x10000)


def _abstract(name: str) -> bytes:
    return b"\0" + name.encode() + b"\0"


class SimClient:
    """One attached client on ``host`` of the lab whose home is ``home``."""

    def __init__(self, home: Path, host: str) -> None:
        base = LabHome(Path(home)).ibsim_sockname
        ident = next(_ids)
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.ctl.bind(_abstract(f"{base}:ctl{ident}"))
        self.ctl.settimeout(5)
        self.ctl.connect(_abstract(f"{base}:ctl"))
        self.data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.data.bind(_abstract(f"{base}:in{ident}"))
        reply = self.call(SimCtlType.CONNECT, SimClientInfo(id=ident, nodeid=host).encode())
        if reply.type != SimCtlType.CONNECT:
            raise RuntimeError(f"the lab refused a client on {host!r}")
        self.index = SimClientInfo.decode(reply.data).id
        self.data.connect(_abstract(f"{base}:out{self.index}"))

    def call(self, kind: int, payload: bytes = b"") -> SimCtl:
        """One control message and its reply."""
        clientid = getattr(self, "index", 0)
        self.ctl.send(SimCtl(SIM_MAGIC, clientid, kind, len(payload), payload).encode())
        return SimCtl.decode(self.ctl.recv(80))

    def mad(self, raw: bytes, dlid: int | None = None,
            timeout: float = 1.0) -> SimRequest | None:
        """Send a MAD (``dlid=None``: directed route); the reply datagram, or None."""
        self.data.settimeout(timeout)
        self.data.send(build.sim_request(raw, dlid).encode())
        try:
            while True:
                reply = SimRequest.decode(self.data.recv(512))
                if reply.mad[12:16] == raw[12:16] and (
                        reply.status or mad.is_response(reply.mad[3])):
                    return reply
        except TimeoutError:
            return None

    def close(self) -> None:
        """DISCONNECT, as libumad2sim does at exit (once)."""
        if self.ctl.fileno() < 0:
            return
        try:
            self.call(SimCtlType.DISCONNECT)
        finally:
            self.ctl.close()
            self.data.close()

    def __enter__(self) -> SimClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# -- the AccessRegister SMP, built from docs/sources.md §7.1's table ---------------------

#: Register ids: MLOCK (mstflint reg_access.c REG_ID_MLCOK), the crypto registers (ref
#: docs/sources.md §18), MFPA (docs/sources.md §7.3; the lab's ConnectX-6 Dx does not serve it).
MLOCK, CRYPTO_OPERATIONAL, IMPORT_KEK_HANDLE, CREDENTIAL_HANDLE, MFPA = (
    0x402D, 0xC002, 0xC004, 0xC005, 0x9010)
REG_GET, REG_SET = 1, 2


def access_register(register_id: int, method: int, register: bytes = b"", *,
                    reg_bytes: int | None = None, path: list[int] | None = None,
                    op_type: int = 1, op_len: int = 4, reg_class: int = 1, reg_type: int = 3,
                    op_tid: int = 0, tid: int = 0x52454721, m_key: int = 0,
                    mad_method: int = mad.METHOD_SET) -> bytes:
    """An AccessRegister SMP as mstflint's ``mreg_send_raw`` builds it (docs/sources.md §7.1):
    class 0x01 (``path=None``) or 0x81 along ``path``, attribute 0xFF52, method Set; SMP
    data = Operation TLV (Type 1, len 4, register id, method, class 1, TID), Reg TLV (Type 3,
    len = (reg_bytes + 4) / 4 dwords) and the register bytes. The keyword arguments make
    it malformed on purpose."""
    size = len(register) if reg_bytes is None else reg_bytes
    dw0 = op_type << 27 | op_len << 16  # dr 0, status 0
    dw1 = register_id << 16 | method << 8 | reg_class  # r 0
    reg = reg_type << 27 | ((size + 4) // 4) << 16
    data = struct.pack(">IIQI", dw0, dw1, op_tid, reg) + register
    raw = bytearray(build.smp(0xFF52, 0, method=mad_method, path=path, tid=tid, m_key=m_key,
                              data=data[:64]))
    raw[64:64 + len(data)] = data  # a longer payload runs on into MAD bytes 128..255
    return bytes(raw)


@dataclass(frozen=True)
class RegisterReply:
    """An AccessRegister reply, decoded from the table of docs/sources.md §7.1."""

    mad_status: int
    status: int  # Operation TLV bits 14:8
    r: int
    register_id: int
    method: int
    reg_class: int
    op_tid: int
    reg_len: int  # Reg TLV length in dwords
    data: bytes  # SMP data bytes 20..63: the register
    raw: bytes


def register_reply(raw: bytes) -> RegisterReply:
    """Decode the SMP data of an AccessRegister reply (MAD bytes 64..127)."""
    dw0, dw1, op_tid, reg = struct.unpack_from(">IIQI", raw, 64)
    return RegisterReply(
        mad_status=int.from_bytes(raw[4:6], "big") & 0x7FFF,
        status=(dw0 >> 8) & 0x7F, r=(dw1 >> 15) & 1, register_id=dw1 >> 16,
        method=(dw1 >> 8) & 0x7F, reg_class=dw1 & 0xFF, op_tid=op_tid,
        reg_len=(reg >> 16) & 0x7FF, data=raw[84:128], raw=raw)
