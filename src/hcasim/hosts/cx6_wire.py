"""The ConnectX-6 Dx (mt4125) on the wire: identification reads and the AccessRegister SMP.

One :class:`Cx6Wire` (a :class:`~hcasim.fabric.subnet.NodeFirmware`) is installed on the
fabric node of every lab host whose HCA is a ConnectX-6 Dx, when the daemon starts its
fabric (:mod:`hcasim.lab.daemon`). It is backed by the same
:class:`~hcasim.devices.mlx5.firmware.Mlx5CryptoFirmware` the control socket serves, so
``hcasim crypto ...`` and in-band register accesses see one device.
Facts and choices are in docs/fabric.md §6 and docs/crypto.md §10; in short:

- **ConfigSpaceAccess** (vendor class 0x0A or 0x09, attribute 0x0050; docs/sources.md
  §4, decoded by :mod:`hcasim.hosts.config_space` as for the ConnectX-3): the words mstflint
  reads when it opens a ``lid-N`` ConnectX-6 Dx (docs/sources.md §7.3): 0xf0014 = 0x00000212
  (HW id 0x212 in bits 15:0, revision 0 in bits 23:16; ``dev_mgt/tools_dev_types.c``), never
  0xbad0cafe (5th-generation devices report their lock through MLOCK), and the
  cache-replacement words 0xf0408 / 0xf040c = 0 (the firmware does not own the flash,
  ``mflash/mflash.c:1585-1654``). Every other CR address, and every write, is refused with
  status 0x001C: the 5th-generation flash gateway at 0xf0400 / 0xf0420 is not modelled, and
  a quick error is better than mstflint polling it 5000 times.
- **AccessRegister SMP** (class 0x01 / 0x81, attribute 0xFF52, method Set; docs/sources.md §7.1,
  :mod:`hcasim.ib.access_register`): MLOCK 0x402d (GET: operation 0, unlocked) and the
  crypto-officer registers CRYPTO_OPERATIONAL 0xC002, IMPORT_KEK_HANDLE 0xC004 and
  CREDENTIAL_HANDLE 0xC005 through the device's
  :class:`~hcasim.devices.mlx5.register_access.CryptoRegisters`. One SMP carries 44
  register bytes; an access that needs more gets register status LEN_TOO_SMALL (0x24).
  A GET may ask for the first bytes of a register that takes no input (CRYPTO_OPERATIONAL,
  MLOCK) and gets them. Unknown registers: REG_NOT_SUPP (4). The MAD status stays 0.
- The other Mellanox SMP attributes (0xFF50 SMP CR access, 0xFF51, 0xFF53 semaphore-lock
  query) get status 0x000C at once, which is all mstflint's 0xFF53 probe needs (docs/sources.md
  §5.1). Nothing of this is ever forwarded to a client (an SM or a tool on the host).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from hcasim.devices.cx3 import FirmwareError
from hcasim.devices.mlx5.firmware import Mlx5CryptoFirmware
from hcasim.devices.mlx5.register_access import RegisterMethod, RegStatus
from hcasim.devices.mlx5.registers import (
    CREDENTIAL_HANDLE,
    CRYPTO_OPERATIONAL,
    IMPORT_KEK_HANDLE,
    RegisterId,
)
from hcasim.fabric.subnet import Action, Answer, MadContext, NodeFirmware, Subnet
from hcasim.hosts import config_space
from hcasim.hosts.inventory import LabHost
from hcasim.ib import access_register as ar
from hcasim.ib import mad, vendor

__all__ = [
    "CR_WORDS",
    "HW_DEV_ID",
    "MLOCK_SIZE",
    "REG_ID_MLOCK",
    "REGISTERS",
    "Cx6Wire",
    "RegisterSpec",
    "install",
]

log = logging.getLogger("hcasim.cx6wire")

#: HW_DEV_ID at CR 0xf0014: revision 0 in bits 23:16, HW id 0x212 (ConnectX-6 Dx) in bits
#: 15:0 (docs/sources.md §5.1 and §7.3; mstflint ``dev_mgt/tools_dev_types.c``).
HW_DEV_ID: Final = 0x00000212
#: The CR words the model answers (docs/sources.md §7.3): HW id, then the two cache-replacement
#: words, 0 = the flash is not owned by the firmware (``mflash/mflash.c:1585-1654``).
CR_WORDS: Final[dict[int, int]] = {0xF0014: HW_DEV_ID, 0xF0408: 0, 0xF040C: 0}
#: MLOCK, the 5th-generation secure-host lock register: 16 bytes, ``operation`` at 0x0.0
#: (8 bits: 0 unlocked, 1 locked), ``key`` at 0x8 (64 bits) (mstflint v4.21.0-1
#: ``reg_access/reg_access.c:63`` REG_ID_MLCOK, ``tools_layouts/tools_open_layouts.h:1129``,
#: ``tools_layouts/tools_open_layouts.c:2378-2386``).
REG_ID_MLOCK: Final = 0x402D
MLOCK_SIZE: Final = 0x10
#: SMP attributes answered with a quick 0x000C (docs/sources.md §4.4, §5.1).
_QUICK_ERROR_ATTRS: Final = frozenset({vendor.ATTR_SMP_CONFIG_SPACE_ACCESS, 0xFF51,
                                       vendor.ATTR_SMP_SEMAPHORE_LOCK})


@dataclass(frozen=True)
class RegisterSpec:
    """A register the ConnectX-6 Dx answers in-band: its name, size, and how many of its
    first bytes a GET reads as input (0: none, so a GET may ask for fewer bytes)."""

    name: str
    size: int
    query_input: int = 0


#: Register id -> what the model knows of it. The handle registers read the officer's login
#: object (0x0-0xff) and the id (0x200) on a GET (docs/sources.md §18).
REGISTERS: Final[dict[int, RegisterSpec]] = {
    REG_ID_MLOCK: RegisterSpec("MLOCK", MLOCK_SIZE),
    RegisterId.CRYPTO_OPERATIONAL: RegisterSpec("CRYPTO_OPERATIONAL", CRYPTO_OPERATIONAL.size),
    RegisterId.IMPORT_KEK_HANDLE: RegisterSpec("IMPORT_KEK_HANDLE", IMPORT_KEK_HANDLE.size,
                                               0x204),
    RegisterId.CREDENTIAL_HANDLE: RegisterSpec("CREDENTIAL_HANDLE", CREDENTIAL_HANDLE.size,
                                               0x204),
}


class Cx6Wire(NodeFirmware):
    """The fabric-facing half of one ConnectX-6 Dx's firmware (module docstring)."""

    def __init__(self, firmware: Mlx5CryptoFirmware) -> None:
        """Answer for ``firmware`` (its registers are looked up at each access: a device
        that failed, or that the daemon binds later, is seen as it is now)."""
        self.firmware = firmware

    # -- QP1: vendor ConfigSpaceAccess ----------------------------------------------------

    def mad_received(self, ctx: MadContext) -> bytes | None:
        """Answer Mellanox vendor classes 0x0A/0x09 (every attribute: nothing is forwarded)."""
        if ctx.raw[1] not in config_space.VENDOR_CLASSES:
            return None
        return config_space.answer(ctx.raw, self.cr_read, self.cr_write, ctx.node.id)

    @staticmethod
    def cr_read(address: int, count: int) -> list[int]:
        """Read CR dwords: the identification words of :data:`CR_WORDS`, nothing else."""
        values = []
        for i in range(count):
            word = CR_WORDS.get(address + 4 * i)
            if word is None:
                raise FirmwareError(errno.EINVAL, f"CR address {address + 4 * i:#x} is not "
                                    "modelled on the ConnectX-6 Dx")
            values.append(word)
        return values

    @staticmethod
    def cr_write(address: int, values: list[int]) -> None:
        """CR writes are refused: the identification words are read-only."""
        raise FirmwareError(errno.EINVAL, f"CR address {address:#x} is read-only on the "
                            "ConnectX-6 Dx model")

    # -- QP0: the AccessRegister SMP ------------------------------------------------------

    def smp_received(self, ctx: MadContext) -> Action | Answer:
        """Answer AccessRegister (0xFF52) Sets; a quick 0x000C for 0xFF50/0xFF51/0xFF53."""
        attr_id = ctx.attr_id
        if attr_id == ar.ATTR_ACCESS_REGISTER:
            return self._access_register(ctx)
        if attr_id in _QUICK_ERROR_ATTRS:
            return Answer(mad.STATUS_METHOD_ATTR_UNSUPPORTED, ctx.raw[64:128])
        return Action.PASS

    def _access_register(self, ctx: MadContext) -> Action | Answer:
        raw = ctx.raw
        if raw[3] != mad.METHOD_SET:
            # mstflint always sends Set (docs/sources.md §7.1). A Get or another method meets the
            # standard SMA: M_Key check, then 0x000C (Get) or 0x0008 (other methods).
            return Action.PASS
        port = ctx.port
        if port.m_key and int.from_bytes(raw[24:32], "big") != port.m_key:
            return Action.PASS  # the SMA's M_Key check drops the Set and raises trap 256
        data = bytearray(raw[64:128])
        status = self.access(data)
        ar.set_reply_status(data, status)
        return Answer(mad.STATUS_OK, bytes(data))

    def access(self, data: bytearray) -> RegStatus:
        """Run the register access held in ``data`` (the 64-byte SMP data, edited in place
        into the reply's register bytes) and return the register status."""
        op = ar.parse(data)
        status, name = self._check(op)
        if status is not RegStatus.OK:
            data[ar.REG_DATA:] = bytes(len(data) - ar.REG_DATA)  # a refusal returns no bytes
            log.debug("AccessRegister %#06x method %d refused: %s", op.register_id,
                      op.method, status.name)
            return status
        spec = REGISTERS[op.register_id]
        carried = min(op.register_bytes, spec.size)
        request = bytes(data[ar.REG_DATA:ar.REG_DATA + carried]).ljust(spec.size, b"\0")
        status, reply = self._run(op.register_id, op.method, request)
        data[ar.REG_DATA:ar.REG_DATA + carried] = reply[:carried]
        log.debug("AccessRegister %s method %d: %s", name, op.method, status.name)
        return status

    @staticmethod
    def _check(op: ar.Operation) -> tuple[RegStatus, str]:
        """The register status of a malformed or unservable access (OK if none)."""
        if op.tlv_type != ar.TLV_OPERATION or op.reg_type != ar.TLV_REG:
            return RegStatus.UNKNOWN_TLV, ""
        if op.tlv_len != ar.OP_TLV_DWORDS or op.reg_len == 0:
            return RegStatus.BAD_PARAM, ""
        if op.reg_class != ar.CLASS_REG_ACCESS:
            return RegStatus.CLASS_NOT_SUPP, ""
        spec = REGISTERS.get(op.register_id)
        if spec is None:
            return RegStatus.REG_NOT_SUPP, ""
        if op.method not in (RegisterMethod.QUERY, RegisterMethod.WRITE):
            return RegStatus.METHOD_NOT_SUPP, spec.name
        wanted = op.register_bytes
        if wanted > ar.MAX_REGISTER_BYTES:
            return RegStatus.LEN_TOO_SMALL, spec.name  # the SMP cannot carry it
        if wanted < spec.size and (op.method == RegisterMethod.WRITE
                                   or wanted < spec.query_input):
            return RegStatus.LEN_TOO_SMALL, spec.name
        return RegStatus.OK, spec.name

    def _run(self, register_id: int, method: int, request: bytes) -> tuple[RegStatus, bytes]:
        if register_id == REG_ID_MLOCK:
            if method == RegisterMethod.QUERY:
                return RegStatus.OK, bytes(MLOCK_SIZE)  # operation 0: never locked; no key
            return RegStatus.METHOD_NOT_SUPP, bytes(MLOCK_SIZE)  # no 5th-gen secure host
        registers = self.firmware.registers
        if registers is None:  # the device failed (crypto_service): nothing to answer
            return RegStatus.INTERNAL_ERROR, bytes(len(request))
        reply = registers.access(register_id, method, request)
        return reply.status, reply.data


def install(hosts: Iterable[LabHost], subnet: Subnet) -> list[str]:
    """Put a :class:`Cx6Wire` on the fabric node of every host whose HCA is a ConnectX-6 Dx;
    returns those hosts' names."""
    installed = []
    for host in hosts:
        try:
            node = subnet.node(host.name)
        except KeyError:
            continue  # a host without a fabric node has no wire
        if node.is_switch:
            continue
        for device in host.devices:
            if isinstance(device.firmware, Mlx5CryptoFirmware):
                subnet.set_firmware(node.id, Cx6Wire(device.firmware))
                installed.append(host.name)
                break  # one HCA per fabric node
    return installed

