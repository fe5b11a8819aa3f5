"""Host-side access to a simulated device through its mst device file.

This is what mstflint's mtcr/mflash layers are for real hardware: CR-space dword access,
the read-to-acquire semaphores, the tools HCR and block flash access. ``flint`` is built
on it and on nothing else, so it exercises the firmware the way the real tool does.
"""

from __future__ import annotations

import errno
import os
import time

from hcasim.api.client import (
    ControlClient,
    LabError,
    LabUnavailable,
    b64,
    socket_path_from_env,
    unb64,
)
from hcasim.devices.cx3_registers import (
    CR_LOCKED_VALUE,
    HW_DEV_ID_ADDR,
    RUNNING_FW_ADDR,
    SEM_TOOLS_HCR,
    TOOLS_HCR_ADDR,
    HcrCommandWord,
    RunningFwVersion,
    ToolsHcr,
    decode_dword,
    dword_value,
)

#: How long a tool waits for a semaphore another process holds before giving up.
SEMAPHORE_TIMEOUT = 30.0


class DeviceOpenError(Exception):
    """The device file cannot be opened; ``reason`` is the mtcr-style text, ``unparsed``
    whether mtcr could not even parse the name (it then says so on stderr)."""

    def __init__(self, reason: str, *, unparsed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unparsed = unparsed


class SemaphoreTimeout(Exception):
    """A device semaphore stayed taken by another process."""


class HeldSemaphore:
    """A read-to-acquire semaphore held for a ``with`` block (:meth:`MstDevice.semaphore`):
    taken on entry, released however the block ends.  A class rather than a
    ``contextlib.contextmanager``: contextlib costs flint's start-up a millisecond."""

    def __init__(self, device: MstDevice, addr: int) -> None:
        self.device = device
        self.addr = addr

    def __enter__(self) -> None:
        deadline = time.monotonic() + SEMAPHORE_TIMEOUT
        delay = 0.001
        while self.device.read1(self.addr) != 0:
            if time.monotonic() > deadline:
                raise SemaphoreTimeout(f"semaphore {self.addr:#x} is held by another process")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def __exit__(self, *exc: object) -> None:
        self.device.write(self.addr, [0])


class MstDevice:
    """An opened mst device file on the host this process runs on."""

    def __init__(self, client: ControlClient, handle: str, device_id: int, path: str) -> None:
        self.client = client
        self.handle = handle
        self.device_id = device_id
        self.path = path

    @classmethod
    def open(cls, path: str) -> MstDevice:
        """Open ``path`` on the host named by the environment (set by ``hcasim exec``):
        an mst device file, or any name mstflint's mtcr takes for a device, such as the
        PCI address ``01:00.0`` (:func:`hcasim.api.device_names.device_file`)."""
        from hcasim.api.device_names import device_file

        file = device_file(path)
        if file is None:
            raise DeviceOpenError(os.strerror(errno.EINVAL), unparsed=True)
        host = os.environ.get("HCASIM_HOST")
        sock = socket_path_from_env()
        if not host or not sock:
            raise DeviceOpenError("No such file or directory")
        try:
            client = ControlClient(sock)
            client.send("hello", host=host)
            client.send("open", path=file)  # one round trip for both (flint's start-up)
            client.receive()  # hello's
        except (LabUnavailable, LabError):
            raise DeviceOpenError("No such file or directory") from None
        try:
            reply = client.receive()
        except LabError as exc:
            client.close()
            raise DeviceOpenError(os.strerror(exc.errno)) from None
        return cls(client, str(reply["handle"]), int(reply["device_id"]), path)

    def close(self) -> None:
        """Close the device file (releasing anything this process held)."""
        self.client.close()

    # ------------------------------------------------------------- CR-space
    def read(self, addr: int, count: int = 1) -> list[int]:
        """Read ``count`` dwords of CR-space."""
        return [
            int(v)
            for v in self.client.call("cr_read", handle=self.handle, addr=addr, count=count)[
                "values"
            ]
        ]

    def read1(self, addr: int) -> int:
        """Read one dword of CR-space."""
        return self.read(addr, 1)[0]

    def write(self, addr: int, values: list[int]) -> None:
        """Write dwords to CR-space."""
        self.client.call("cr_write", handle=self.handle, addr=addr, values=values)

    @property
    def locked(self) -> bool:
        """Whether CR-space is locked (HW_DEV_ID reads 0xbad0cafe)."""
        return self.read1(HW_DEV_ID_ADDR) == CR_LOCKED_VALUE

    def semaphore(self, addr: int) -> HeldSemaphore:
        """Hold a read-to-acquire semaphore for the duration of a ``with`` block."""
        return HeldSemaphore(self, addr)

    # ------------------------------------------------------------- tools HCR
    def hcr_command(
        self, opcode: int, op_mod: int, in_param: int = 0, in_mod: int = 0
    ) -> tuple[int, int]:
        """Run one tools-HCR command; return (status, out_param)."""
        with self.semaphore(SEM_TOOLS_HCR):
            self._wait_go_clear()
            command = HcrCommandWord(opcode_modifier=op_mod & 0xF, opcode=opcode & 0xFFF)
            hcr = ToolsHcr(in_param=in_param, input_modifier=in_mod, command=command).encode()
            self.write(TOOLS_HCR_ADDR, [int.from_bytes(hcr[i:i + 4], "big")
                                        for i in range(0, ToolsHcr.SIZE, 4)])
            command.go = 1
            self.write(TOOLS_HCR_ADDR + 24, [dword_value(command)])
            self._wait_go_clear()
            regs = self.read(TOOLS_HCR_ADDR, ToolsHcr.SIZE // 4)
        reply = ToolsHcr.decode(b"".join(r.to_bytes(4, "big") for r in regs))
        return reply.command.status, reply.out_param

    def _wait_go_clear(self) -> None:
        for _ in range(2000):
            if not decode_dword(HcrCommandWord, self.read1(TOOLS_HCR_ADDR + 24)).go:
                return
            time.sleep(0.001)
        raise LabError(errno.ETIMEDOUT, "tools HCR stayed busy")

    def running_version(self) -> tuple[int, int, int]:
        """The firmware version running now (may differ from the flash after a burn)."""
        w = self.read(RUNNING_FW_ADDR, RunningFwVersion.SIZE // 4)
        version = RunningFwVersion.decode(b"".join(d.to_bytes(4, "big") for d in w))
        return (version.major, version.minor, version.subminor)

    # ------------------------------------------------------------- flash
    def read_flash_image(self) -> bytes:
        """Read the programmed part of the flash (hold the flash semaphore), as a
        :class:`hcasim.devices.fs2.FlashContents` that knows the flash's size: an image
        that claims more reads erased cells there, as on the device."""
        from hcasim.devices.fs2 import FlashContents

        info = self.client.call("flash_info", handle=self.handle)
        programmed = int(info["programmed"])
        reply = self.client.call("flash_read", handle=self.handle, offset=0, length=programmed)
        return FlashContents(unb64(str(reply["data"])), int(info["size"]))

    def write_flash_image(self, image: bytes) -> None:
        """Program a whole image in one durable write (hold the flash semaphore)."""
        self.client.call("flash_write", handle=self.handle, data=b64(image))
