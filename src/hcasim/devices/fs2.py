"""The FS2 firmware image format of ConnectX-3 (PCI device 4099) and ConnectX-3 Pro (4103).

This module is a codec: it builds, reads, checks and patches image bytes and decides
nothing about devices. Every layout fact is declared once below as a table of fields and
cites where mstflint reads it; ``mstflint`` means repository Mellanox/mstflint at tag
``v4.21.0-1``, the source of the Debian ``mstflint 4.21.0+1-1`` whose output hcasim
reproduces. docs/fs2-image.md explains the format and the choices made here.

An image is, from offset 0 (``fw_ops.cpp:402-409``, ``fs2_ops.cpp:512-861``)::

    0x00  magic pattern, 16 bytes
    0x20  header dwords: fw_id (device revision, full-image CRC), format, fs_info,
          info_ptr, fw_size, guid_ptr
    0x38  BOOT2: {dword0, size, size code dwords, one dword, CRC dword}
    then  a chain of sections: GPH {type, size, param, next}, data, CRC dword

The sections hcasim writes are the GUID section (type 6) and the Image Info section
(type 10), a list of tags ``id << 24 | payload bytes`` ending with tag 0xff.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from hcasim.ib.layout import FieldSpec, Layout, dword, raw

TYPE_CHECKING = False  # mypy reads it as typing.TYPE_CHECKING; typing is not loaded
if TYPE_CHECKING:
    from typing import ClassVar, NamedTuple
else:
    from hcasim.records import NamedTuple

__all__ = [
    "CONNECTX3",
    "CONNECTX3_PRO",
    "DEVICE_NAMES",
    "TAG_DEVICE_TYPE",
    "TAG_END",
    "TAG_FW_BUILD_TIME",
    "TAG_FW_VERSION",
    "TAG_HW_ACCESS_KEY",
    "TAG_KEY_DIGEST_SEAL",
    "TAG_PRODUCT_VER",
    "TAG_PSID",
    "TAG_VSD",
    "TAG_VSD_VENDOR_ID",
    "Boot2Header",
    "Fs2Info",
    "ImageError",
    "ImageHeader",
    "PartitionHeader",
    "SectionType",
    "TagHeader",
    "TagSpec",
    "UnsupportedImageError",
    "assemble_image",
    "build_image",
    "crc16",
    "derive_mac",
    "image_info_tag",
    "parse_image",
    "verify_image",
    "guid_patcher",
    "with_guids",
    "with_image_info_tag",
]

#: PCI device ids of the FS2 devices hcasim models (rdma-core v44.0 providers/mlx4/mlx4.c:68,72).
CONNECTX3 = 4099
CONNECTX3_PRO = 4103
DEVICE_NAMES = {CONNECTX3: "ConnectX-3", CONNECTX3_PRO: "ConnectX-3 Pro"}

_DWORD = struct.Struct(">I")  # a CRC dword
_U32 = 0xFFFFFFFF  # mstflint's u_int32_t arithmetic on section sizes


# --------------------------------------------------------------------------- errors
class ImageError(Exception):
    """An image is not a valid FS2 image; the message says what is wrong.

    The attributes let a CLI print what mstflint 4.21 prints for the same image:

    - ``reason``: mstflint's error text for the failure, where hcasim knows it (else the
      message). ``q`` prints ``-E- Failed to query image: <file>. <reason>``.
    - ``verify_lines``: the lines ``v`` prints before its ``-E-`` line.
    - ``stage``: ``"verify"`` when ``v`` then prints ``-E- FW image verification failed:
      <reason>. AN HCA DEVICE CAN NOT BOOT FROM THIS IMAGE.`` (err_msgs.h:87), ``"query"``
      when it prints ``-E- Failed to get Guids status. <reason>`` (subcommands.cpp:4691),
      ``"open"`` when mstflint refuses the file before reading it (size not whole dwords).
    """

    def __init__(
        self,
        message: str,
        verify_lines: Sequence[str] = (),
        *,
        reason: str | None = None,
        stage: str = "verify",
    ) -> None:
        super().__init__(message)
        self.verify_lines = tuple(verify_lines)
        self.reason = message if reason is None else reason
        self.stage = stage


class UnsupportedImageError(ImageError):
    """A well-formed image that uses a feature hcasim does not model (e.g. an expansion ROM)."""


# --------------------------------------------------------------------------- CRC16
_CRC_POLY = 0x100B  # flint_base.cpp:249-287


def _crc_table() -> tuple[int, ...]:
    # Byte-at-a-time form of Crc16::add: the feedback of 8 shifts depends only on the top
    # byte of the register, since message bits enter at bit 0 and cannot reach bit 15.
    table = []
    for top in range(256):
        reg = top << 8
        for _ in range(8):
            reg = ((reg << 1) ^ _CRC_POLY) & 0xFFFF if reg & 0x8000 else (reg << 1) & 0xFFFF
        table.append(reg)
    return tuple(table)


_CRC_TABLE = _crc_table()


def _crc_update(crc: int, data: bytes | bytearray | memoryview) -> int:
    table = _CRC_TABLE
    for byte in data:
        crc = (((crc << 8) | byte) & 0xFFFF) ^ table[crc >> 8]
    return crc


def crc16(data: bytes | bytearray | memoryview) -> int:
    """Return the FS2 CRC16 of ``data``, a whole number of big-endian dwords.

    This is mstflint's ``Crc16`` (``flint_base.cpp:249-287``): register 0xffff, each dword
    shifted in MSB first with polynomial 0x100b, then 16 zero bits, then XOR 0xffff. It
    protects BOOT2, every section (GPH plus data) and the whole image.
    """
    if len(data) % 4:
        raise ValueError(f"FS2 CRC16 runs over whole dwords, got {len(data)} bytes")
    crc = _crc_update(0xFFFF, data)
    return _crc_update(crc, b"\0\0") ^ 0xFFFF


# --------------------------------------------------------------------------- field tables
#: The magic pattern that marks an image start (fw_ops.cpp:402-404) and where it is
#: looked for (fw_ops.cpp:408-409, FindAllImageStart :438-474).
MAGIC = struct.pack(">4I", 0x4D544657, 0x8CDFD000, 0xDEAD9270, 0x4154BEEF)
MAGIC_POSITIONS = (0, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000,
                   0x800000, 0x1000000)


class ImageHeader(Layout):
    """The image header, offsets from the image start; BOOT2 follows it
    (FS2_BOOT_START, flint_base.h:272)."""

    SIZE: ClassVar[int] = 0x38
    magic: bytes = raw(0, len(MAGIC))
    #: fw_id: bits 31:24 device revision (fs2_ops.cpp:755), bits 15:0 full-image CRC
    #: (IMG_CRC_OFF, flint_base.h:294; fs2_ops.cpp:563-566, 1032-1054).
    dev_rev: int = dword(0x20, 31, 24)
    image_crc: int = dword(0x20, 15, 0)
    #: Bits 31:24 == 3 mark an FS3 image file (FS3_IND_ADDR, fw_ops.cpp:655-674).
    format: int = dword(0x24, 31, 24)
    #: fs_info: bytes sum to 0; bit 3 failsafe; bits 2:0 + 16 = log2 chunk size
    #: (FS_DATA_OFF, flint_base.h:273; CntxGetFsData, fs2_ops.cpp:58-82).
    fs_info: int = dword(0x28)
    #: info_ptr: bits 23:0 address of the Image Info data, bits 31:24 make the dword's
    #: bytes sum to 0 (fs2_ops.cpp:804-826).
    info_ptr_checksum: int = dword(0x2C, 31, 24)
    info_ptr: int = dword(0x2C, 23, 0)
    #: Image size in bytes (fs2_ops.cpp:751-753).
    fw_size: int = dword(0x30)
    #: Address of the GUID section data (fs2_ops.cpp:757-775).
    guid_ptr: int = dword(0x34)


class Header:
    """Image header fields (of :class:`ImageHeader`), to read or patch in an image."""

    DEV_REV = ImageHeader.spec("dev_rev")
    IMAGE_CRC = ImageHeader.spec("image_crc")
    FORMAT = ImageHeader.spec("format")
    FS_INFO = ImageHeader.spec("fs_info")
    INFO_PTR = ImageHeader.spec("info_ptr")
    INFO_PTR_CHECKSUM = ImageHeader.spec("info_ptr_checksum")
    FW_SIZE = ImageHeader.spec("fw_size")
    GUID_PTR = ImageHeader.spec("guid_ptr")
    SIZE = ImageHeader.SIZE


class Boot2Header(Layout):
    """The first two dwords of BOOT2 (``checkBoot2``, fw_ops.cpp:284-365)."""

    SIZE: ClassVar[int] = 8
    dword0: int = dword(0)
    size: int = dword(4)  # code dwords


class Boot2:
    """BOOT2: dword0, ``SIZE`` code dwords, one more dword, CRC of all before it.

    ``checkBoot2``, fw_ops.cpp:284-365: 4 <= SIZE <= 0x100000 dwords, (SIZE + 4) dwords in all.
    """

    SIZE = Boot2Header.spec("size")
    MIN_SIZE = 4
    MAX_SIZE = 0x100000


class PartitionHeader(Layout):
    """General Partition Header of a section (struct GPH, flint_base.h:450-456)."""

    SIZE: ClassVar[int] = 16
    type: int = dword(0x0)
    size: int = dword(0x4)  # data dwords (bytes for EMT, fs2_ops.cpp:386-393)
    param: int = dword(0x8)
    next: int = dword(0xC)  # absolute offset of the next GPH; 0 or 0xff000000 ends


class Gph:
    """The fields of :class:`PartitionHeader`, to read or patch in an image, and limits."""

    TYPE = PartitionHeader.spec("type")
    SIZE = PartitionHeader.spec("size")
    PARAM = PartitionHeader.spec("param")
    NEXT = PartitionHeader.spec("next")
    BYTES = PartitionHeader.SIZE
    CHAIN_END = (0, 0xFF000000)  # checkList, fs2_ops.cpp:504
    MAX_DATA = 0x400000  # MAX_SECTION_SIZE, flint_base.h:458


class SectionType:
    """Section types and the names ``v`` prints (flint_base.h:304-320, flint_base.cpp:73-85)."""

    DDR = 1
    CNF = 2
    JMP = 3
    EMT = 4
    ROM = 5
    GUID = 6
    BOARD_ID = 7
    USER_DATA = 8
    FW_CONF = 9
    IMG_INFO = 10
    DDRZ = 11
    HASH_FILE = 12
    NAMES = {1: "DDR", 2: "Configuration", 3: "Jump addresses", 4: "EMT Service", 5: "ROM",
             6: "GUID", 7: "BOARD ID", 8: "User Data", 9: "FW Configuration", 10: "Image Info",
             11: "DDRZ", 12: "Hash File"}

    @classmethod
    def name(cls, kind: int) -> str:
        """The section name mstflint prints for ``kind`` (``UNKNOWN (n)`` when unknown)."""
        return cls.NAMES.get(kind, f"UNKNOWN ({kind})")


#: GUID section entries: node, port1, port2, system image, MAC1, MAC2 (fs2_ops.cpp:766-795;
#: GUIDS = 4 GUIDs then MACS, mlxfwops_com.h; flint/subcommands.cpp:3786-3867).
GUID_ENTRIES = 6
MAX_GUIDS = 32  # mlxfwops_com.h:231; more is "Illegal Number of GUIDs" (fs2_ops.cpp:769-772)

# Image Info tags (enum Fs2ImageInfoTags, fs2_ops.h:97-122; parsed by ParseInfoSect,
# fs2_ops.cpp:84-312). Payload offsets below are from the first byte after the tag header.
TAG_FW_VERSION = 1
TAG_FW_BUILD_TIME = 2
TAG_DEVICE_TYPE = 3
TAG_PSID = 4
TAG_VSD = 5
TAG_PRODUCT_VER = 7
TAG_VSD_VENDOR_ID = 8
TAG_MIC_VERSION = 11
TAG_HW_ACCESS_KEY = 13
#: hcasim's own tag "KeyDigestSeal" (8 bytes). mstflint 4.21 records tag offsets only for
#: ids below II_Last = 21 and ignores other ids except 0xff (fs2_ops.cpp:280-287), so a
#: real mstflint queries, verifies and burns an image carrying it; 0xe0 stays clear of
#: ids NVIDIA allocates upwards from 21. See docs/fs2-image.md.
TAG_KEY_DIGEST_SEAL = 0xE0
TAG_END = 0xFF


class TagHeader(Layout):
    """The dword before each Image Info tag's payload: id and payload bytes (ParseInfoSect,
    fs2_ops.cpp:84-312)."""

    SIZE: ClassVar[int] = 4
    tag_id: int = dword(0, 31, 24)
    size: int = dword(0, 23, 0)  # payload bytes


class VersionTag(Layout):
    """FwVersion and MicVersion payloads: major = word0[31:16]; minor, subminor =
    word1[31:16], [15:0] (fs2_ops.cpp:110-115, 133-140)."""

    SIZE: ClassVar[int] = 8
    major: int = dword(0, 31, 16)
    minor: int = dword(4, 31, 16)
    subminor: int = dword(4, 15, 0)


class BuildTimeTag(Layout):
    """FwBuildTime payload (fs2_ops.cpp:117-122): word1 = year[31:16] month[15:8] day[7:0],
    printed with %x, so the numbers are BCD. word0 is not read by mstflint; hcasim writes 0."""

    SIZE: ClassVar[int] = 8
    year: int = dword(4, 31, 16)
    month: int = dword(4, 15, 8)
    day: int = dword(4, 7, 0)


class DeviceTypeTag(Layout):
    """DeviceType payload: the PCI device id in bits 15:0 (fs2_ops.cpp:142-146)."""

    SIZE: ClassVar[int] = 4
    device_id: int = dword(0, 15, 0)


class VsdVendorIdTag(Layout):
    """VsdVendorId payload: the VSD vendor in bits 15:0, 0x15b3 for Mellanox
    (fs2_ops.cpp:148-151, flint_base.h:301)."""

    SIZE: ClassVar[int] = 4
    vendor_id: int = dword(0, 15, 0)


class HwAccessKeyTag(Layout):
    """HwAccessKey payload: key[63:32] in word0, key[31:0] in word1 (fs2_ops.cpp:215-223)."""

    SIZE: ClassVar[int] = 8
    key_hi: int = dword(0)
    key_lo: int = dword(4)


class TagSpec(NamedTuple):
    """One Image Info tag: id, name, payload size, and its numeric fields (a layout) or
    text form."""

    tag_id: int
    name: str
    size: int
    layout: type[Layout] | None = None
    text: bool = False

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """The numeric fields of the payload (none for text and opaque tags)."""
        return () if self.layout is None else self.layout.field_specs()

    def decode(self, payload: bytes) -> dict[str, int]:
        """Read the numeric fields of this tag from its payload."""
        if self.layout is None:
            return {}
        return dict(zip((f.name for f in self.fields), self.layout.decode(payload).values(),
                        strict=True))

    def encode(self, **values: int) -> bytes:
        """Build a payload from numeric field values (missing fields are 0)."""
        names = {f.name for f in self.fields}
        if set(values) - names:
            raise TypeError(f"{self.name} has no field(s) "
                            f"{', '.join(sorted(set(values) - names))}")
        if self.layout is None:
            return bytes(self.size)
        return self.layout(**values).encode()


TAGS: dict[int, TagSpec] = {
    spec.tag_id: spec
    for spec in (
        TagSpec(TAG_FW_VERSION, "FwVersion", 8, VersionTag),
        TagSpec(TAG_FW_BUILD_TIME, "FwBuildTime", 8, BuildTimeTag),
        TagSpec(TAG_DEVICE_TYPE, "DeviceType", 4, DeviceTypeTag),
        # PSID_LEN 16, VSD_LEN 208, PRODUCT_VER_LEN 16 (mlxfwops_com.h:122-124), read up to NUL.
        TagSpec(TAG_PSID, "PSID", 16, text=True),
        TagSpec(TAG_VSD, "VSD", 208, text=True),
        TagSpec(TAG_PRODUCT_VER, "ProductVer", 16, text=True),
        TagSpec(TAG_VSD_VENDOR_ID, "VsdVendorId", 4, VsdVendorIdTag),
        # its presence makes `v` check the full-image CRC (fs2_ops.cpp:655-665).
        TagSpec(TAG_MIC_VERSION, "MicVersion", 8, VersionTag),
        TagSpec(TAG_HW_ACCESS_KEY, "HwAccessKey", 8, HwAccessKeyTag),
        TagSpec(TAG_KEY_DIGEST_SEAL, "KeyDigestSeal", 8),
        TagSpec(TAG_END, "End", 0),
    )
}

MELLANOX_VSD_VENDOR_ID = 0x15B3  # MELLANOX_VENDOR_ID, flint_base.h:301
#: Device revision written in fw_id. mstflint 4.21 only stores it for FS2 images
#: (fs2_ops.cpp:755); hcasim writes 0 and claims nothing.
DEFAULT_DEV_REV = 0


# --------------------------------------------------------------------------- public info
class Fs2Info(NamedTuple):
    """What an FS2 image says about itself: the facts ``flint q`` shows, decoded.

    ``guids`` are node, port1, port2, system image; ``macs`` are port1, port2. Text
    fields are decoded byte for byte (Latin-1) up to the first NUL, as mstflint prints
    them. ``hw_access_key`` is None when the image has no HwAccessKey tag (firmware built
    without ``cr_protection_en``); ``product_version`` is None when the tag is absent or
    empty. ``image_length`` is where the last section ends (mstflint's lastImageAddr).
    """

    fw_version: tuple[int, int, int]
    release_date: tuple[int, int, int]
    device_id: int
    psid: str
    vsd: str
    guids: tuple[int, int, int, int]
    macs: tuple[int, int]
    hw_access_key: int | None
    product_version: str | None
    image_length: int
    blank_guids: bool = False
    failsafe: bool = False
    vsd_vendor_id: int = 0

    def __repr__(self) -> str:  # the key tag may hold a raw key: never show it
        shown = ", ".join(
            f"{name}={'<set>' if name == 'hw_access_key' and value else value!r}"
            for name, value in zip(self._fields, self, strict=True)
        )
        return f"Fs2Info({shown})"


# --------------------------------------------------------------------------- helpers
def derive_mac(guid: int) -> int:
    """Return the MAC a ConnectX card derives from a port GUID: the GUID minus its middle 16 bits.

    mstflint's rule (fs2_ops.cpp:1264-1281, "48 bit MAC == 64 bit GUID without the middle
    16 bits"); real ConnectX-3 cards show it, e.g. GUID f45214030001b8a1 with MAC
    f4521401b8a1 (NVIDIA MFT docs, "Setting GUIDs and MACs").
    """
    if not 0 <= guid <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"GUID {guid:#x} is not 64 bits")
    return (guid >> 40) << 24 | (guid & 0xFFFFFF)


def _tag_bytes(tag_id: int, payload: bytes) -> bytes:
    if len(payload) % 4:
        raise ValueError(f"tag {tag_id} payload must be whole dwords, got {len(payload)} bytes")
    return TagHeader(tag_id, len(payload)).encode() + payload


def _text_payload(spec: TagSpec, text: str) -> bytes:
    if len(text) > spec.size or not text.isascii() or not text.isprintable():
        raise ValueError(f"{spec.name} must be at most {spec.size} printable ASCII "
                         f"characters, got {text!r}")
    return text.encode("ascii").ljust(spec.size, b"\0")


def _bcd(value: int, digits: int) -> int:
    if not 0 <= value < 10**digits:
        raise ValueError(f"{value} does not fit in {digits} BCD digits")
    return int(str(value), 16)


def _from_bcd(raw: int) -> int | None:
    text = f"{raw:x}"
    return int(text) if text.isdigit() else None


def _section_bytes(kind: int, data: bytes, next_ptr: int) -> bytes:
    body = PartitionHeader(type=kind, size=len(data) // 4, next=next_ptr).encode() + data
    return body + _DWORD.pack(crc16(body))


def _byte_sum_complement(value: int) -> int:
    return -sum(value.to_bytes(4, "big")) & 0xFF


# --------------------------------------------------------------------------- build
#: BOOT2 code of hcasim images: a readable marker, not executable code.
_BOOT2_CODE = b"hcasim simulated ConnectX-3 boot2".ljust(36, b"\0")


def build_image(
    *,
    device_id: int,
    fw_version: tuple[int, int, int],
    psid: str,
    release_date: tuple[int, int, int],
    guid_base: int,
    cr_protection_en: bool,
    vsd: str = "hcasim simulated HCA",
) -> bytes:
    """Build a non-failsafe FS2 image for a simulated ConnectX-3 or ConnectX-3 Pro.

    GUIDs follow real ConnectX-3 cards: node = ``guid_base``, port1 = +1, port2 = +2,
    system image = +3; each port MAC is derived from its port GUID (:func:`derive_mac`).
    ``release_date`` is (day, month, year). With ``cr_protection_en`` (the mlxburn ini
    switch for Secure Host) the Image Info section carries the HwAccessKey tag 13 with key
    0 and hcasim's KeyDigestSeal tag, zeroed. The result passes ``mstflint -i IMG v`` and
    queries with ``mstflint -i IMG q``.
    """
    if device_id not in DEVICE_NAMES:
        raise ValueError(f"device id {device_id} is not an FS2 device hcasim models "
                         f"({', '.join(map(str, DEVICE_NAMES))})")
    if not 0 <= guid_base <= 0xFFFFFFFFFFFFFFFF - 3:
        raise ValueError(f"GUID base {guid_base:#x} leaves no room for 4 GUIDs in 64 bits")
    day, month, year = release_date
    if not (1 <= day <= 31 and 1 <= month <= 12):
        raise ValueError(f"release date {release_date} is not a (day, month, year)")
    guids = (guid_base, guid_base + 1, guid_base + 2, guid_base + 3)
    macs = (derive_mac(guids[1]), derive_mac(guids[2]))

    tags = [
        (TAG_FW_VERSION, TAGS[TAG_FW_VERSION].encode(
            major=fw_version[0], minor=fw_version[1], subminor=fw_version[2])),
        (TAG_FW_BUILD_TIME, TAGS[TAG_FW_BUILD_TIME].encode(
            year=_bcd(year, 4), month=_bcd(month, 2), day=_bcd(day, 2))),
        (TAG_DEVICE_TYPE, TAGS[TAG_DEVICE_TYPE].encode(device_id=device_id)),
        (TAG_PSID, _text_payload(TAGS[TAG_PSID], psid)),
        (TAG_VSD, _text_payload(TAGS[TAG_VSD], vsd)),
        (TAG_VSD_VENDOR_ID, TAGS[TAG_VSD_VENDOR_ID].encode(vendor_id=MELLANOX_VSD_VENDOR_ID)),
    ]
    if cr_protection_en:
        tags.append((TAG_HW_ACCESS_KEY, TAGS[TAG_HW_ACCESS_KEY].encode()))
        tags.append((TAG_KEY_DIGEST_SEAL, bytes(TAGS[TAG_KEY_DIGEST_SEAL].size)))
    return assemble_image(tags, (*guids, *macs))


def assemble_image(
    tags: Sequence[tuple[int, bytes]],
    guid_entries: Sequence[int],
    *,
    dev_rev: int = DEFAULT_DEV_REV,
) -> bytes:
    """Lay out a non-failsafe FS2 image from Image Info tags and GUID section entries.

    The low-level half of :func:`build_image`: ``tags`` are (id, payload) pairs written in
    order (the End tag is appended), ``guid_entries`` the 64-bit GUID section entries
    (node, port1, port2, system image, MAC1, MAC2). Headers, pointers, BOOT2, every
    CRC and the full-image CRC are filled in.
    """
    if len(guid_entries) != GUID_ENTRIES:
        raise ValueError(f"the GUID section holds {GUID_ENTRIES} entries, "
                         f"got {len(guid_entries)}")
    info_data = b"".join(_tag_bytes(tag_id, payload) for tag_id, payload in tags)
    info_data += _tag_bytes(TAG_END, b"")
    guid_data = b"".join(g.to_bytes(8, "big") for g in guid_entries)

    boot2 = Boot2Header(size=len(_BOOT2_CODE) // 4).encode() + _BOOT2_CODE + bytes(4)
    boot2 += _DWORD.pack(crc16(boot2))

    guid_start = Header.SIZE + len(boot2)
    info_start = guid_start + Gph.BYTES + len(guid_data) + 4
    end = info_start + Gph.BYTES + len(info_data) + 4
    info_ptr = info_start + Gph.BYTES
    image = bytearray(ImageHeader(
        magic=MAGIC, dev_rev=dev_rev, info_ptr_checksum=_byte_sum_complement(info_ptr),
        info_ptr=info_ptr, fw_size=end, guid_ptr=guid_start + Gph.BYTES).encode())
    image += boot2
    image += _section_bytes(SectionType.GUID, guid_data, info_start)
    image += _section_bytes(SectionType.IMG_INFO, info_data, Gph.CHAIN_END[1])
    _store_image_crc(image, end, blank=False)
    return bytes(image)


def _image_crc(image: bytes | bytearray, end: int) -> int:
    # UpdateFullImageCRC / CalcImageCRC (fs2_ops.cpp:1032-1054, fw_ops.cpp:1118-1127): the
    # CRC16 of the image with the CRC field itself set to 0xffff.
    head = bytearray(image[: Header.SIZE])
    Header.IMAGE_CRC.put(head, 0xFFFF)
    return crc16(bytes(head) + bytes(image[Header.SIZE : end]))


def _store_image_crc(image: bytearray, end: int, *, blank: bool) -> None:
    # With blank GUIDs mstflint leaves 0xffff in the field (fs2_ops.cpp:1040-1043).
    Header.IMAGE_CRC.put(image, 0xFFFF if blank else _image_crc(image, end))


# --------------------------------------------------------------------------- walk
class _Section(NamedTuple):
    kind: int
    start: int  # offset of the GPH
    data_size: int  # bytes
    stored_crc: int
    computed_crc: int

    @property
    def data_start(self) -> int:
        return self.start + Gph.BYTES

    @property
    def end(self) -> int:
        return self.data_start + self.data_size + 4


class _Tag(NamedTuple):
    tag_id: int
    offset: int  # absolute offset of the payload
    size: int


class _Walk(NamedTuple):
    """Where everything is in a checked image, and the lines ``v`` prints for it."""

    failsafe: bool
    sections: tuple[_Section, ...]
    guid: _Section
    info: _Section
    tags: tuple[_Tag, ...]
    end: int
    blank_guids: bool
    lines: tuple[str, ...]

    def last_tag(self, tag_id: int) -> _Tag | None:
        # When a tag repeats, mstflint keeps the last one (fs2_ops.cpp:284-287).
        found = [t for t in self.tags if t.tag_id == tag_id]
        return found[-1] if found else None


class _Walker:
    """Reads an image the way Fs2Verify and Fs2Query do, noting the lines ``v`` prints.

    ``flash``: the image is a device's flash, queried (``q``, and burn's look at the
    device): Fs2IntQuery reads no section body there, so no CRC is checked and the Image
    Info tags are parsed only by Fs2Query (fs2_ops.cpp:394-403, 414-416, 862-876;
    checkBoot2 without fullRead, fw_ops.cpp:319-356).
    """

    def __init__(self, data: bytes | bytearray, *, flash: bool = False) -> None:
        self.data = data
        self.flash = flash
        #: How far reads may go: a device's whole flash, whose cells past the programmed
        #: part read erased (0xFF), or the image file's end.
        self.size = max(len(data), getattr(data, "flash_size", 0))
        self.lines: list[str] = []

    def _bytes(self, start: int, end: int) -> bytes:
        # the data, erased flash cells past its end (up to self.size)
        got = bytes(self.data[start:end])
        return got + b"\xff" * max(0, min(end, self.size) - max(start, len(self.data)))

    def fail(self, message: str, *, reason: str | None = None, stage: str = "verify",
             unsupported: bool = False) -> ImageError:
        lines = [*self.lines, "", ""] if stage == "query" else self.lines
        cls = UnsupportedImageError if unsupported else ImageError
        return cls(message, lines, reason=reason, stage=stage)

    def read(self, offset: int, size: int, what: str, *, stage: str = "verify") -> bytes:
        if offset + size > self.size:
            # FImage::read's wording, double space included (flint_io.cpp:195).
            detail = (f"Reading 0x{size:x} bytes from  address 0x{offset:x} is out of image "
                      f"limits (0x{self.size:x} bytes)")
            raise self.fail(f"{what.strip()} - read error ({detail}); image truncated?",
                            reason=f"{what} - read error ({detail})\n", stage=stage)
        return self._bytes(offset, offset + size)

    def walk(self) -> _Walk:
        data = self.data
        if len(data) % 4 and self.size == len(data):  # FImage::open refuses such files
            # (flint_io.cpp:98); a flash is read whole dwords at a time
            raise ImageError(f"Image size 0x{len(data):x} should be 4-bytes aligned",
                             reason="Image size should be 4-bytes aligned.", stage="open")
        starts = [pos for pos in MAGIC_POSITIONS
                  if pos + len(MAGIC) <= len(data) and data[pos : pos + len(MAGIC)] == MAGIC]
        if not starts:
            raise self.fail("No valid image found")  # fs2_ops.cpp:529-531
        if len(starts) > 2:  # fs2_ops.cpp:533-540
            raise self.fail(f"More than 2 image start locations found at addresses "
                            f"0x{starts[0]:x}, 0x{starts[1]:x} and 0x{starts[2]:x}. "
                            "Image may be corrupted.")
        start = starts[0]
        head = self.read(start, Header.SIZE, "Image header")
        fs_info = Header.FS_INFO.get(head)
        if sum(fs_info.to_bytes(4, "big")) & 0xFF:  # fs2_ops.cpp:58-69, 570-574
            self.lines += ["", "    Can not read failsafe info word: Corrupted chunk size checksum"]
            raise self.fail("Can not read failsafe info word: Corrupted chunk size checksum",
                            reason="Corrupted chunk size checksum")
        failsafe = bool(fs_info & 0x8)
        if not failsafe and start != 0:  # fs2_ops.cpp:576-581
            raise self.fail("FS2 Non Failsafe image must start at address 0. "
                            f"Found non-fs image at address 0x{start:x}")
        if start != 0:
            raise self.fail("hcasim reads failsafe FS2 images only in their contiguous form "
                            "at address 0", unsupported=True)
        if Header.FORMAT.get(head) == 3:  # an FS3 file (fw_ops.cpp:655-674)
            raise self.fail("The image is an FS3 image, not FS2 (format byte at 0x24 is 3)",
                            unsupported=True)
        if failsafe:  # fs2_ops.cpp:583-594
            chunk = 1 << ((fs_info & 0x7) + 16)
            self.lines += [
                "", f"     FS2 failsafe image. Start address: 0x{start:x}. Chunk size 0x{chunk:x}:",
                "",
                "     NOTE: The addresses below are contiguous logical addresses. Physical "
                "addresses on",
                "           flash may be different, based on the image start address and "
                "chunk size",
                ""]
        else:
            self.lines += ["", "     FS2 non failsafe image:", ""]
        boot2_end = self._boot2(Header.SIZE)
        sections, blank_crc, chain_tags = self._chain(boot2_end)
        end = sections[-1].end if sections else boot2_end
        if any(t.tag_id == TAG_MIC_VERSION for t in chain_tags):
            # The full-image CRC is checked only for images with a MicVersion tag, and a
            # mismatch is printed but does not fail verification (fs2_ops.cpp:651-669).
            stored, computed = Header.IMAGE_CRC.get(head), _image_crc(data, end)
            text = f"     /0x{0:08x}-0x{end - 1:08x} (0x{end:06x})/ (Full Image)"
            if blank_crc:
                self.lines.append(f"{text} - BLANK CRC (0xffff)")
            elif computed == stored:
                self.lines.append(f"{text} - OK")
            else:
                self.lines.append(f"{text} /0x{0:08x}/ - wrong CRC "
                                  f"(exp:0x{computed:x}, act:0x{stored:x})")
        guid = self._guids(head, sections)
        info = self._info(head, sections)
        guid_data = bytes(data[guid.data_start : guid.data_start + 8 * GUID_ENTRIES])
        blank_guids = guid.stored_crc == 0xFFFF and guid_data == b"\xff" * len(guid_data)
        return _Walk(failsafe, tuple(sections), guid, info, self._info_tags(info), end,
                     blank_guids, tuple(self.lines))

    def _boot2(self, at: int) -> int:
        # checkBoot2, fw_ops.cpp:284-365. Returns where the next section starts. A failure
        # without an error text makes mstflint print "(null)" for the reason.
        where = f"     /0x{at:08x}/ (BOOT2)"
        size = Boot2.SIZE.get(self.read(at, 8, where))
        if not Boot2.MIN_SIZE <= size <= Boot2.MAX_SIZE:
            self.lines.append(f"{where} /0x{at + 4:08x}/ - unexpected size (0x{size:x})")
            raise self.fail(f"BOOT2 size 0x{size:x} dwords is out of range "
                            f"(0x{Boot2.MIN_SIZE:x}..0x{Boot2.MAX_SIZE:x})", reason="(null)")
        length = (size + 4) * 4
        if self.flash:
            return at + length
        text = f"     /0x{at:08x}-0x{at + length - 1:08x} (0x{length:06x})/ (BOOT2)"
        boot2 = self.read(at, length, text)
        computed = crc16(boot2[:-4])
        (stored,) = _DWORD.unpack_from(boot2, length - 4)
        if computed != stored:
            self.lines.append(f"{text} /0x{at:08x}/ - wrong CRC "
                              f"(exp:0x{computed:x}, act:0x{stored:x})")
            raise self.fail(f"Bad CRC in BOOT2 at 0x{at:08x} (exp:0x{computed:x}, "
                            f"act:0x{stored:x})", reason=_BAD_CRC)
        self.lines.append(f"{text} - OK")
        return at + length

    def _chain(self, first: int) -> tuple[list[_Section], bool, tuple[_Tag, ...]]:
        # checkList / checkGen, fs2_ops.cpp:339-510.
        sections: list[_Section] = []
        tags: tuple[_Tag, ...] = ()
        seen: set[int] = set()
        blank_crc = False
        next_ptr = first
        parts = 1  # part_cnt: BOOT2 is part 1 (fs2_ops.cpp:359-369, 503)
        while next_ptr not in Gph.CHAIN_END:
            parts += 1
            if next_ptr in seen:
                raise self.fail(f"Section chain loops back to 0x{next_ptr:08x}")
            seen.add(next_ptr)
            # checkGen ignores a failed header or data read and goes on with zeros; the
            # CRC read that follows then fails (fs2_ops.cpp:355, 422, 433).
            gph = self._bytes(next_ptr, next_ptr + Gph.BYTES)
            if len(gph) < Gph.BYTES:
                gph = bytes(Gph.BYTES)
            header = PartitionHeader.decode(gph)
            kind, size = header.type, header.size
            if kind not in SectionType.NAMES and parts <= 2:
                # An unknown second part is taken for another boot record (:361-369).
                next_ptr = self._boot2(next_ptr)
                continue
            # mstflint computes sizes and ends in u_int32_t and prints the type with %d:
            # a huge size wraps around and a type from 0x80000000 on is negative
            # (fs2_ops.cpp:375-395).
            data_size = ((size + 3) // 4 * 4 if kind == SectionType.EMT else size * 4) & _U32
            end = (next_ptr + Gph.BYTES + data_size + 4) & _U32
            signed_kind = kind - (1 << 32) if kind >> 31 else kind
            text = (f"     /0x{next_ptr:08x}-0x{(end - 1) & _U32:08x} "
                    f"(0x{(end - next_ptr) & _U32:06x})/ ({SectionType.name(signed_kind)})")
            if data_size > Gph.MAX_DATA:
                self.lines.append(f"{text} - size too big (0x{data_size:x})")
                raise self.fail(f"{SectionType.name(signed_kind)} section at "
                                f"0x{next_ptr:08x} is too big (0x{data_size:x} bytes)",
                                reason="(null)")
            if self.flash:  # the header only (is_sect_to_read is 0)
                sections.append(_Section(kind, next_ptr, data_size, 0, 0))
                next_ptr = header.next
                continue
            (stored,) = _DWORD.unpack(self.read(end - 4, 4, text))
            body = gph + self._bytes(next_ptr + Gph.BYTES, end - 4)
            section = _Section(kind, next_ptr, data_size, stored, crc16(body))
            if (kind == SectionType.GUID and stored == 0xFFFF
                    and body[Gph.BYTES : Gph.BYTES + 8] == b"\xff" * 8):  # :437-448
                blank_crc = True
                self.lines.append(f"{text} - BLANK CRC (0xffff)")
            elif section.computed_crc != stored:  # CheckAndPrintCrcRes, fw_ops.cpp:367-400
                self.lines.append(f"{text} /0x{next_ptr:08x}/ - wrong CRC "
                                  f"(exp:0x{section.computed_crc:x}, act:0x{stored:x})")
                raise self.fail(f"Bad CRC in {SectionType.name(signed_kind)} section at "
                                f"0x{next_ptr:08x} (exp:0x{section.computed_crc:x}, "
                                f"act:0x{stored:x})", reason=_BAD_CRC)
            else:
                self.lines.append(f"{text} - OK")
            sections.append(section)
            if kind == SectionType.IMG_INFO:
                tags = self._info_tags(section)  # parsed as it is read (:468-475)
            if kind == SectionType.ROM:
                raise self.fail("The image has an expansion ROM section; hcasim does not "
                                "model ROMs", unsupported=True)
            next_ptr = header.next
        return sections, blank_crc, tags

    def _guids(self, head: bytes, sections: Sequence[_Section]) -> _Section:
        # Fs2Query, fs2_ops.cpp:757-795 (errors there are printed after the verify lines).
        pointer = Header.GUID_PTR.get(head)
        if pointer >= self.size:
            raise self.fail(f"Failed to read GUIDs - Illegal GUID pointer ({pointer:08x}). "
                            "Probably image is corrupted", stage="query")
        guid = _find_section(sections, SectionType.GUID, pointer)
        if guid is None:
            raise self.fail(f"Failed to read GUIDs - the GUID pointer ({pointer:08x}) does not "
                            "point at the GUID section. Probably image is corrupted",
                            stage="query")
        count = guid.data_size // 8
        if count > MAX_GUIDS:
            raise self.fail(f"Failed to read GUIDs - Illegal Number of GUIDs ({count})",
                            stage="query")
        if count != GUID_ENTRIES:
            # mstflint prints a warning instead of MACs for such images
            # (subcommands.cpp:3860-3863); hcasim models two-port cards with 6 entries.
            raise self.fail(f"Cannot get MAC address: Expecting {GUID_ENTRIES} entries in guid "
                            f"section, got {count}", stage="query", unsupported=True)
        return guid

    def _info(self, head: bytes, sections: Sequence[_Section]) -> _Section:
        # Fs2Query, fs2_ops.cpp:803-856.
        checksum, pointer = Header.INFO_PTR_CHECKSUM.get(head), Header.INFO_PTR.get(head)
        if checksum != _byte_sum_complement(pointer):  # the dword's bytes must sum to 0
            raise self.fail("Failed to read Info Section - Bad checksum for Info section "
                            f"pointer ({checksum:02x}{pointer:06x}). Probably the image is "
                            "corrupted.", stage="query")
        if pointer >= self.size:
            raise self.fail(f"Failed to read Info Section - Info section pointer ({pointer:08x}) "
                            "too large. Probably the image is corrupted.", stage="query")
        info = _find_section(sections, SectionType.IMG_INFO, pointer)
        if info is None:
            raise self.fail(f"Failed to read Info Section - the Info section pointer "
                            f"({pointer:08x}) does not point at the Image Info section. "
                            "Probably the image is corrupted.", stage="query")
        return info

    def _info_tags(self, info: _Section) -> tuple[_Tag, ...]:
        # ParseInfoSect, fs2_ops.cpp:84-312; in the chain walk a failure reads "Failed to
        # read the info sector: <why>" (:468-475).
        tags: list[_Tag] = []
        offset, number, end_found = 0, 0, False
        why = ""
        body = self._bytes(info.data_start, info.data_start + info.data_size)
        while not end_found and offset < info.data_size:
            header = TagHeader.decode(body, offset)
            tag_id, size = header.tag_id, header.size
            spec = TAGS.get(tag_id)
            if offset + 4 + size > info.data_size:
                why = (f"Info section corrupted: Tag {number} (TagId {tag_id}, size {size}) "
                       f"exceeds Info section size ({info.data_size} bytes) ")
            elif size % 4:
                why = (f"Info section corrupted: Tag {number} (TagId {tag_id}, size {size}) "
                       "is not a whole number of dwords")
            elif spec is not None and size < spec.size:
                why = (f"Info section corrupted: Tag {number} ({spec.name}, TagId {tag_id}) "
                       f"has {size} bytes, expected {spec.size}")
            if why:
                break
            tags.append(_Tag(tag_id, info.data_start + offset + 4, size))
            end_found = tag_id == TAG_END
            offset += 4 + size
            number += 1
        if not why and offset != info.data_size:
            found = (f"but end tag found after 0x{offset:x} bytes." if end_found
                     else "but end tag not found before section end.")
            why = (f"Info section corrupted: Section data size is 0x{info.data_size:x} bytes, "
                   f"{found}")
        if why:
            # Fs2Query reports ParseInfoSect's own text (fs2_ops.cpp:850-853)
            raise self.fail(why.strip(), reason=why if self.flash else
                            f"Failed to read the info sector: {why}\n")
        return tuple(tags)


_BAD_CRC = "Bad CRC."  # BAD_CRC_MSG, fw_ops.cpp:66


def _find_section(sections: Sequence[_Section], kind: int, data_start: int) -> _Section | None:
    for section in sections:
        if section.kind == kind and section.data_start == data_start:
            return section
    return None


def _walk(data: bytes | bytearray, *, flash: bool = False) -> _Walk:
    return _Walker(data, flash=flash).walk()


# --------------------------------------------------------------------------- read
def _tag_payload(data: bytes | bytearray, walk: _Walk, tag_id: int) -> bytes | None:
    tag = walk.last_tag(tag_id)
    return None if tag is None else bytes(data[tag.offset : tag.offset + tag.size])


def _tag_text(data: bytes | bytearray, walk: _Walk, tag_id: int) -> str | None:
    payload = _tag_payload(data, walk, tag_id)
    if payload is None:
        return None
    return payload[: TAGS[tag_id].size].split(b"\0", 1)[0].decode("latin-1")


class FlashContents(bytes):
    """The programmed part of a device's flash, read as mstflint reads the flash: past it,
    up to ``flash_size``, the erased cells read 0xFF."""

    flash_size: int

    def __new__(cls, data: bytes, flash_size: int) -> FlashContents:
        """The bytes ``data`` of a flash of ``flash_size`` bytes."""
        made = super().__new__(cls, data)
        made.flash_size = flash_size
        return made


def parse_image(data: bytes | bytearray, *, flash: bool = False) -> Fs2Info:
    """Check an FS2 image as ``mstflint -i IMG q`` does and return what it describes;
    with ``flash``, a device's flash as ``mstflint -d DEV q`` does (no CRC checked).

    ``data`` may be longer than the image (a whole flash, say). Raises :class:`ImageError`
    for a missing magic pattern, a bad checksum or CRC, a truncated image or a broken
    section or tag chain, and :class:`UnsupportedImageError` for valid images that use a
    feature hcasim does not model.

    The last few results for immutable ``bytes`` are remembered (:class:`Fs2Info` is
    immutable too): a device reads its flash's facts several times at each reset.
    """
    if type(data) is bytes and len(data) <= _PARSE_MEMO_MAX_BYTES:
        return _parse_bytes(data, flash)
    return _describe(data, _walk(data, flash=flash))


_PARSE_MEMO_MAX_BYTES = 1 << 20


#: The last results of :func:`_parse_bytes`, least recently used first (what
#: ``functools.lru_cache(maxsize=8)`` keeps; functools is not loaded for flint's start-up).
_PARSED: dict[tuple[bytes, bool], Fs2Info] = {}
_PARSED_MAX = 8


def _parse_bytes(data: bytes, flash: bool) -> Fs2Info:
    key = (data, flash)
    info = _PARSED.pop(key, None)
    if info is None:
        info = _describe(data, _walk(data, flash=flash))
        if len(_PARSED) >= _PARSED_MAX:
            del _PARSED[next(iter(_PARSED))]
    _PARSED[key] = info
    return info


def _describe(data: bytes | bytearray, walk: _Walk) -> Fs2Info:
    def fields(tag_id: int) -> dict[str, int]:
        payload = _tag_payload(data, walk, tag_id)
        if payload is None:
            return {f.name: 0 for f in TAGS[tag_id].fields}
        return TAGS[tag_id].decode(payload)

    version = fields(TAG_FW_VERSION)
    built = fields(TAG_FW_BUILD_TIME)
    date_parts = tuple(_from_bcd(built[k]) for k in ("day", "month", "year"))
    if any(part is None for part in date_parts):
        raise UnsupportedImageError(
            f"FW release date {built['day']:x}.{built['month']:x}.{built['year']:x} is not "
            "BCD; hcasim keeps dates as numbers")
    day, month, year = (part or 0 for part in date_parts)
    key_tag = _tag_payload(data, walk, TAG_HW_ACCESS_KEY)
    key = None
    if key_tag is not None:
        key_fields = TAGS[TAG_HW_ACCESS_KEY].decode(key_tag)
        key = key_fields["key_hi"] << 32 | key_fields["key_lo"]
    start = walk.guid.data_start
    entries = [int.from_bytes(data[start + 8 * i : start + 8 * i + 8], "big")
               for i in range(GUID_ENTRIES)]
    return Fs2Info(
        fw_version=(version["major"], version["minor"], version["subminor"]),
        release_date=(day, month, year),
        device_id=fields(TAG_DEVICE_TYPE)["device_id"],
        psid=_tag_text(data, walk, TAG_PSID) or "",
        vsd=_tag_text(data, walk, TAG_VSD) or "",
        guids=(entries[0], entries[1], entries[2], entries[3]),
        macs=(entries[4], entries[5]),
        hw_access_key=key,
        product_version=_tag_text(data, walk, TAG_PRODUCT_VER) or None,
        image_length=walk.end,
        blank_guids=walk.blank_guids,
        failsafe=walk.failsafe,
        vsd_vendor_id=fields(TAG_VSD_VENDOR_ID)["vendor_id"],
    )


def verify_image(data: bytes | bytearray) -> list[str]:
    """Return the lines ``mstflint -i IMG v`` prints for a good image, without newlines.

    Joining them with ``"\\n"`` and adding a final newline gives mstflint's stdout byte for
    byte. A broken image raises :class:`ImageError` whose ``verify_lines`` are the lines
    mstflint prints before its ``-E- FW image verification failed`` line. Blank GUIDs fail
    with the message ``BLANK GUIDS``, as in mstflint (flint/subcommands.cpp:4685-4700).
    """
    walk = _walk(data)
    _describe(data, walk)  # the query mstflint runs after the verify (subcommands.cpp:4685-4693)
    if walk.blank_guids:
        raise ImageError("BLANK GUIDS", [*walk.lines, "", ""], stage="verify")
    return [*walk.lines, "", "-I- FW image verification succeeded. Image is bootable.", ""]


def image_info_tag(data: bytes | bytearray, tag_id: int) -> bytes | None:
    """Return the payload of Image Info tag ``tag_id``, or None when the image lacks it.

    The image is checked first (:class:`ImageError` if broken). A repeated tag yields its
    last occurrence, the one mstflint uses.
    """
    return _tag_payload(data, _walk(data), tag_id)


# --------------------------------------------------------------------------- patch
def with_image_info_tag(data: bytes | bytearray, tag_id: int, payload: bytes) -> bytes:
    """Return a copy of the image whose existing tag ``tag_id`` carries ``payload``.

    The tag keeps its size, so ``payload`` must be as long as the current one. The Image
    Info section CRC and the full-image CRC are recomputed, as mstflint's ``set_key`` does
    (PatchKeySect, fs2_ops.cpp:1942-1955; UpdateFullImageCRC :1032-1054). An image without
    the tag raises ``ImageError("The image does not support this operation.")``
    (fs2_ops.cpp:2318-2321). Bytes after the image (rest of a flash) are kept.
    """
    walk = _walk(data)
    tag = walk.last_tag(tag_id)
    if tag is None or tag_id == TAG_END:
        raise ImageError("The image does not support this operation.")
    if len(payload) != tag.size:
        raise ImageError(f"Tag {tag_id} holds {tag.size} bytes; got a {len(payload)}-byte payload")
    image = bytearray(data)
    image[tag.offset : tag.offset + tag.size] = payload
    _reseal(image, walk, walk.info, blank=walk.blank_guids)
    return bytes(image)


def with_guids(data: bytes | bytearray, guids: Sequence[int], macs: Sequence[int]) -> bytes:
    """Return a copy of the image with the given 4 GUIDs and 2 MACs in its GUID section.

    This is what a burn does to keep the device's GUIDs and MACs (patchGUIDsSection,
    fs2_ops.cpp:1307-1335): the section CRC and the full-image CRC are recomputed.
    """
    return guid_patcher(data)(guids, macs)


def guid_patcher(data: bytes | bytearray) -> Callable[[Sequence[int], Sequence[int]], bytes]:
    """:func:`with_guids` for many copies of one image (a lab's factory flashes): the
    image is walked once, and each call only writes the entries and recomputes the two
    CRCs."""
    walk = _walk(data)
    template = bytes(data)

    def patch(guids: Sequence[int], macs: Sequence[int]) -> bytes:
        if len(guids) != 4 or len(macs) != 2:
            raise ValueError(f"need 4 GUIDs and 2 MACs, got {len(guids)} and {len(macs)}")
        for value in (*guids, *macs):
            if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
                raise ValueError(f"{value:#x} does not fit in 64 bits")
        image = bytearray(template)
        start = walk.guid.data_start
        entries = b"".join(v.to_bytes(8, "big") for v in (*guids, *macs))
        image[start : start + len(entries)] = entries
        _reseal(image, walk, walk.guid, blank=False)
        return bytes(image)

    return patch


def with_vsd(data: bytes | bytearray, vsd: str) -> bytes:
    """Return a copy of the image carrying ``vsd`` in its VSD tag.

    A burn writes the device's VSD into the new image unless told otherwise
    (patchImageVsd, fs2_ops.cpp:1362-1415, 1706-1712).
    """
    return with_image_info_tag(data, TAG_VSD, _text_payload(TAGS[TAG_VSD], vsd))


def _reseal(image: bytearray, walk: _Walk, section: _Section, *, blank: bool) -> None:
    body = image[section.start : section.data_start + section.data_size]
    _DWORD.pack_into(image, section.end - 4, crc16(body))
    _store_image_crc(image, walk.end, blank=blank)
