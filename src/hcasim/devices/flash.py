"""The SPI flash behind a device: its programmed contents and geometry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: N25Q 128 Mbit (16 MiB) JEDEC id, the part the ConnectX-3 model reports
#: (manufacturer 0x20, type 0xBA, density 0x18; mstflint v4.21.0-1 mflash/mflash.c:417-441).
JEDEC_ID = (0x20, 0xBA, 0x18)
FLASH_SIZE = 1 << JEDEC_ID[2]
ERASED = 0xFF


@dataclass
class Flash:
    """A flash chip: bytes past the programmed extent read as erased (0xFF).

    ``persist`` is called with the new contents on every write and must make them durable
    before returning; the lab daemon passes a function that commits one SQLite transaction.
    """

    contents: bytes = b""
    size: int = FLASH_SIZE
    persist: Callable[[bytes], None] | None = field(default=None, repr=False)

    def read(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset``; erased cells read 0xFF."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"flash read {offset:#x}+{length:#x} outside {self.size:#x} bytes")
        chunk = self.contents[offset : offset + length]
        return chunk + bytes([ERASED]) * (length - len(chunk))

    def replace(self, image: bytes) -> None:
        """Program a whole new image at offset 0, erasing the rest, as one durable write."""
        if len(image) > self.size:
            raise ValueError(f"image of {len(image)} bytes does not fit a {self.size}-byte flash")
        if self.persist is not None:
            self.persist(image)
        self.contents = bytes(image)
