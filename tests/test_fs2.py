"""FS2 image codec and flint's FS2 output, checked against the real mstflint 4.21 binary."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcasim.cli.flint_format import (
    format_fw_version,
    format_query,
    format_query_error,
    format_verify,
    format_verify_error,
)
from hcasim.devices import fs2
from hcasim.ib.layout import FieldSpec

MSTFLINT = "/usr/bin/mstflint"
GUID_BASE = 0xF45214030001B8A0  # the ConnectX-3 of NVIDIA's "Setting GUIDs and MACs" page


def build(device_id: int = fs2.CONNECTX3, cr: bool = True, **kw: object) -> bytes:
    args: dict[str, object] = dict(
        device_id=device_id, fw_version=(2, 42, 5000), psid="MT_1090120019",
        release_date=(5, 9, 2017), guid_base=GUID_BASE, cr_protection_en=cr)
    args.update(kw)
    return fs2.build_image(**args)  # type: ignore[arg-type]


def with_key(image: bytes, key: int) -> bytes:
    return fs2.with_image_info_tag(image, fs2.TAG_HW_ACCESS_KEY, key.to_bytes(8, "big"))


def flip(image: bytes, offset: int, mask: int = 0x10) -> bytes:
    out = bytearray(image)
    out[offset] ^= mask
    return bytes(out)


class Mstflint:
    """Runs the real mstflint on image files, as a user would."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "image.bin"

    def __call__(self, image: bytes, *args: str) -> tuple[int, str]:
        self.path.write_bytes(image)
        done = subprocess.run([MSTFLINT, "-i", str(self.path), *args],
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.stderr == ""
        return done.returncode, done.stdout


@pytest.fixture
def mstflint(tmp_path: Path) -> Mstflint:
    return Mstflint(tmp_path)


@pytest.fixture(scope="module")
def shared_mstflint(tmp_path_factory: pytest.TempPathFactory) -> Mstflint:
    return Mstflint(tmp_path_factory.mktemp("mstflint"))


def ours_verify(image: bytes, source: str) -> tuple[int, str]:
    try:
        return 0, format_verify(fs2.verify_image(image))
    except fs2.ImageError as err:
        return 1, format_verify_error(err, source=source)


def ours_query(image: bytes, source: str, *, skip_rom: bool) -> tuple[int, str]:
    try:
        return 0, format_query(fs2.parse_image(image), skip_rom=skip_rom)
    except fs2.ImageError as err:
        return 1, format_query_error(err, source=source)


def assert_same_as_mstflint(run: Mstflint, image: bytes) -> None:
    """v, q and -qq q print the same bytes and exit with the same status as mstflint."""
    source = str(run.path)
    assert ours_verify(image, source) == run(image, "v")
    assert ours_query(image, source, skip_rom=False) == run(image, "q")
    assert ours_query(image, source, skip_rom=True) == run(image, "-qq", "q")


# --------------------------------------------------------------------------- CRC16
def crc16_bitwise(data: bytes) -> int:
    """mstflint's Crc16 written out bit by bit (flint_base.cpp:249-287)."""
    crc = 0xFFFF
    for i in range(0, len(data), 4):
        word = int.from_bytes(data[i : i + 4], "big")
        for _ in range(32):
            feedback = crc & 0x8000
            crc = ((crc << 1) | (word >> 31)) & 0xFFFF
            if feedback:
                crc ^= 0x100B
            word = (word << 1) & 0xFFFFFFFF
    for _ in range(16):
        crc = ((crc << 1) ^ 0x100B) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc ^ 0xFFFF


@given(st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4]))
def test_crc16_matches_the_bitwise_definition(data: bytes) -> None:
    assert fs2.crc16(data) == crc16_bitwise(data)


def test_crc16_needs_whole_dwords() -> None:
    with pytest.raises(ValueError, match="whole dwords"):
        fs2.crc16(b"abc")


def test_a_section_crc_is_what_mstflint_accepts(mstflint: Mstflint) -> None:
    # Any image mstflint verifies proves the CRC; this also pins one value.
    image = build()
    assert mstflint(image, "v")[0] == 0
    assert fs2.crc16(b"\0" * 8) == crc16_bitwise(b"\0" * 8)


# --------------------------------------------------------------------------- build and parse
def test_guids_and_macs_follow_real_connectx3_cards() -> None:
    info = fs2.parse_image(build())
    assert info.guids == (GUID_BASE, GUID_BASE + 1, GUID_BASE + 2, GUID_BASE + 3)
    # NVIDIA's page shows MACs f4521401b8a1 and f4521401b8a2 for these port GUIDs.
    assert info.macs == (0xF4521401B8A1, 0xF4521401B8A2)
    assert fs2.derive_mac(0x0002C90300ABCD01) == 0x0002C9ABCD01


def test_parse_reports_everything_build_wrote() -> None:
    image = build(fs2.CONNECTX3_PRO, cr=False, vsd="lab rack 4")
    assert fs2.parse_image(image) == fs2.Fs2Info(
        fw_version=(2, 42, 5000), release_date=(5, 9, 2017), device_id=4103,
        psid="MT_1090120019", vsd="lab rack 4",
        guids=(GUID_BASE, GUID_BASE + 1, GUID_BASE + 2, GUID_BASE + 3),
        macs=(0xF4521401B8A1, 0xF4521401B8A2), hw_access_key=None, product_version=None,
        image_length=len(image), vsd_vendor_id=0x15B3)


def test_cr_protection_adds_a_zero_key_and_a_zero_seal() -> None:
    protected = build(cr=True)
    assert fs2.parse_image(protected).hw_access_key == 0
    assert fs2.image_info_tag(protected, fs2.TAG_HW_ACCESS_KEY) == bytes(8)
    assert fs2.image_info_tag(protected, fs2.TAG_KEY_DIGEST_SEAL) == bytes(8)
    plain = build(cr=False)
    assert fs2.parse_image(plain).hw_access_key is None
    assert fs2.image_info_tag(plain, fs2.TAG_HW_ACCESS_KEY) is None
    assert fs2.image_info_tag(plain, fs2.TAG_KEY_DIGEST_SEAL) is None


_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E))


@settings(max_examples=60)
@given(
    device_id=st.sampled_from([fs2.CONNECTX3, fs2.CONNECTX3_PRO]),
    fw_version=st.tuples(*[st.integers(0, 0xFFFF)] * 3),
    psid=_text.filter(lambda s: len(s) <= 16),
    release_date=st.tuples(st.integers(1, 31), st.integers(1, 12), st.integers(0, 9999)),
    guid_base=st.integers(0, 2**64 - 4),
    cr=st.booleans(),
    vsd=_text.filter(lambda s: len(s) <= 208),
)
def test_build_parse_round_trip(device_id: int, fw_version: tuple[int, int, int], psid: str,
                                release_date: tuple[int, int, int], guid_base: int, cr: bool,
                                vsd: str) -> None:
    image = fs2.build_image(device_id=device_id, fw_version=fw_version, psid=psid,
                            release_date=release_date, guid_base=guid_base,
                            cr_protection_en=cr, vsd=vsd)
    info = fs2.parse_image(image)
    assert (info.device_id, info.fw_version, info.psid, info.release_date, info.vsd) == (
        device_id, fw_version, psid, release_date, vsd)
    assert info.guids[0] == guid_base and info.guids[3] == guid_base + 3
    assert info.macs == (fs2.derive_mac(guid_base + 1), fs2.derive_mac(guid_base + 2))
    assert info.hw_access_key == (0 if cr else None)
    assert info.image_length == len(image)


@pytest.mark.parametrize("bad", [
    dict(device_id=4115), dict(psid="P" * 17), dict(vsd="é"), dict(vsd="a\nb"),
    dict(fw_version=(0x10000, 0, 0)), dict(release_date=(0, 1, 2020)),
    dict(release_date=(1, 13, 2020)), dict(guid_base=2**64 - 1),
])
def test_build_refuses_what_it_cannot_encode(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build(**bad)


def test_a_whole_flash_parses_like_the_image_alone() -> None:
    image = build()
    flash = image + b"\xff" * (0x100000 - len(image))
    assert fs2.parse_image(flash) == fs2.parse_image(image)
    patched = with_key(flash, 7)
    assert len(patched) == len(flash) and patched[len(image):] == flash[len(image):]
    assert fs2.parse_image(patched).hw_access_key == 7


# --------------------------------------------------------------------------- patching
def test_key_and_seal_tags_are_rewritten_with_their_crcs(mstflint: Mstflint) -> None:
    image = with_key(build(), 0x1A1A1A1A2B2B2B2B)
    image = fs2.with_image_info_tag(image, fs2.TAG_KEY_DIGEST_SEAL, b"\x5e" * 8)
    assert fs2.parse_image(image).hw_access_key == 0x1A1A1A1A2B2B2B2B
    assert fs2.image_info_tag(image, fs2.TAG_KEY_DIGEST_SEAL) == b"\x5e" * 8
    assert mstflint(image, "v")[0] == 0
    assert "HW Access Key:         Enabled\n" in mstflint(image, "q")[1]


def test_patching_an_absent_tag_is_refused_in_mstflint_words() -> None:
    with pytest.raises(fs2.ImageError, match=r"^The image does not support this operation\.$"):
        with_key(build(cr=False), 1)
    with pytest.raises(fs2.ImageError, match="does not support"):
        fs2.with_image_info_tag(build(cr=False), fs2.TAG_KEY_DIGEST_SEAL, bytes(8))


def test_a_patch_keeps_the_tag_size() -> None:
    with pytest.raises(fs2.ImageError, match="holds 8 bytes"):
        fs2.with_image_info_tag(build(), fs2.TAG_HW_ACCESS_KEY, bytes(4))


def test_text_tags_can_be_patched_like_a_burn_keeps_the_vsd(mstflint: Mstflint) -> None:
    vsd = b"kept from the device".ljust(208, b"\0")
    image = fs2.with_image_info_tag(build(), fs2.TAG_VSD, vsd)
    assert fs2.parse_image(image).vsd == "kept from the device"
    assert "VSD:                   kept from the device\n" in mstflint(image, "q")[1]


def test_with_guids_keeps_the_device_identity(mstflint: Mstflint) -> None:
    guids = (0x0002C90300ABCD00, 0x0002C90300ABCD01, 0x0002C90300ABCD02, 0x0002C90300ABCD03)
    macs = (0x0002C9ABCD01, 0x0002C9ABCD02)
    image = fs2.with_guids(build(), guids, macs)
    info = fs2.parse_image(image)
    assert (info.guids, info.macs) == (guids, macs)
    assert_same_as_mstflint(mstflint, image)
    with pytest.raises(ValueError):
        fs2.with_guids(image, guids[:3], macs)


def test_full_image_crc_is_what_mstflint_computes(mstflint: Mstflint) -> None:
    # mstflint checks the full-image CRC only when a MicVersion tag is present.
    image = assemble(extra=[(11, fs2.TAGS[11].encode(major=1, minor=2, subminor=3)),
                            (13, bytes(8))])
    rc, out = mstflint(image, "v")
    assert rc == 0 and "(Full Image) - OK" in out
    assert format_verify(fs2.verify_image(image)) == out
    patched = with_key(image, 0x1234)
    assert "(Full Image) - OK" in mstflint(patched, "v")[1]
    # A wrong full-image CRC is shown but does not fail verification (fs2_ops.cpp:664).
    broken = flip(image, 0x18)
    assert_same_as_mstflint(mstflint, broken)
    assert "wrong CRC" in mstflint(broken, "v")[1]


# --------------------------------------------------------------------------- real mstflint
# (key tag value or None for an image without cr_protection_en, seal tag set)
IMAGE_STATES = {
    "no key tag": (None, False),
    "key tag zero": (0, False),
    "key set": (0x1234DEAF5678, False),
    "key tag zero, seal set": (0, True),
    "key set, seal set": (0x1234DEAF5678, True),
}


@pytest.mark.parametrize("device_id", [fs2.CONNECTX3, fs2.CONNECTX3_PRO])
@pytest.mark.parametrize("state", list(IMAGE_STATES))
def test_v_and_q_match_mstflint(mstflint: Mstflint, device_id: int, state: str) -> None:
    key, sealed = IMAGE_STATES[state]
    image = build(device_id, cr=key is not None)
    if key:
        image = with_key(image, key)
    if sealed:
        image = fs2.with_image_info_tag(image, fs2.TAG_KEY_DIGEST_SEAL, b"\xa5" * 8)
    assert_same_as_mstflint(mstflint, image)
    rc, out = mstflint(image, "v")
    assert rc == 0 and "-I- FW image verification succeeded. Image is bootable." in out
    expected = {None: None, 0: "Disabled", 0x1234DEAF5678: "Enabled"}[key]
    query = mstflint(image, "q")[1]
    if expected is None:
        assert "HW Access Key" not in query
    else:
        assert f"HW Access Key:         {expected}\n" in query


@settings(max_examples=25, deadline=None)
@given(
    fw_version=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
    psid=_text.filter(lambda s: len(s) <= 16),
    release_date=st.tuples(st.integers(1, 31), st.integers(1, 12), st.integers(0, 9999)),
    guid_base=st.integers(0, 2**64 - 4),
    vsd=_text.filter(lambda s: len(s) <= 208),
)
def test_any_built_image_prints_like_mstflint(
        shared_mstflint: Mstflint, fw_version: tuple[int, int, int], psid: str,
        release_date: tuple[int, int, int], guid_base: int, vsd: str) -> None:
    # Covers minor >= 100 (the %04d minor format), version 0.0.0 (no FW Version line),
    # multicast or wide MACs (the Bad mac warnings) and odd PSID/VSD text.
    image = fs2.build_image(device_id=fs2.CONNECTX3, fw_version=fw_version, psid=psid,
                            release_date=release_date, guid_base=guid_base,
                            cr_protection_en=True, vsd=vsd)
    assert_same_as_mstflint(shared_mstflint, image)


def assemble(extra: list[tuple[int, bytes]] | None = None,
             entries: tuple[int, ...] | None = None) -> bytes:
    tags = [(1, fs2.TAGS[1].encode(major=2, minor=42, subminor=5000)),
            (3, fs2.TAGS[3].encode(device_id=4099)),
            (4, b"MT_1090120019".ljust(16, b"\0"))]
    if entries is None:
        entries = (GUID_BASE, GUID_BASE + 1, GUID_BASE + 2, GUID_BASE + 3,
                   fs2.derive_mac(GUID_BASE + 1), fs2.derive_mac(GUID_BASE + 2))
    return fs2.assemble_image(tags + (extra or []), entries)


@pytest.mark.parametrize("extra", [
    [(7, b"02.42.50.00".ljust(16, b"\0"))],  # Product Version line
    [(7, bytes(16))],  # empty product version: no line
    [(8, fs2.TAGS[8].encode(vendor_id=0x1234))],  # not a Mellanox VSD: warning line
    [(2, fs2.TAGS[2].encode(year=0x2024, month=0x1, day=0x15))],
    [(13, (5).to_bytes(8, "big")), (13, bytes(8))],  # a repeated tag: the last one counts
    [(0x42, b"ignored!"), (13, bytes(8))],  # unknown tags are skipped
], ids=["product-version", "empty-product-version", "foreign-vsd", "date", "repeated-tag",
        "unknown-tag"])
def test_optional_tags_match_mstflint(mstflint: Mstflint, extra: list[tuple[int, bytes]]) -> None:
    assert_same_as_mstflint(mstflint, assemble(extra))


@pytest.mark.parametrize("macs", [
    (0x010000000001, 0x0002C9000001),  # multicast bit on MAC1
    (0x0002C9000001, 0x01000000000002),  # more than 48 bits on MAC2
    (0x010000000001, 0x010000000002),
])
def test_bad_mac_warnings_match_mstflint(mstflint: Mstflint, macs: tuple[int, int]) -> None:
    image = fs2.with_guids(build(), (1, 2, 3, 4), macs)
    assert_same_as_mstflint(mstflint, image)


def test_blank_guids_match_mstflint(mstflint: Mstflint) -> None:
    # What "flint -blank_guids" burns: all-ones GUIDs and CRC 0xffff.
    image = bytearray(build())
    fs2.parse_image(image)  # valid before blanking
    guid_ptr = fs2.Header.GUID_PTR.get(image)
    image[guid_ptr : guid_ptr + 48] = b"\xff" * 48
    image[guid_ptr + 48 : guid_ptr + 52] = (0xFFFF).to_bytes(4, "big")
    blank = bytes(image)
    assert fs2.parse_image(blank).blank_guids
    assert_same_as_mstflint(mstflint, blank)
    with pytest.raises(fs2.ImageError, match="BLANK GUIDS"):
        fs2.verify_image(blank)


def test_failsafe_flag_matches_mstflint(mstflint: Mstflint) -> None:
    # An mlxburn file is failsafe (fs_info bit 3, chunk 2^(16+3)) but contiguous.
    image = bytearray(build())
    fs_info = 0x8 | 0x3
    fs2.Header.FS_INFO.put(image, (-fs_info & 0xFF) << 24 | fs_info)
    assert fs2.parse_image(image).failsafe
    assert_same_as_mstflint(mstflint, bytes(image))


def test_formatting_details() -> None:
    assert format_fw_version((2, 42, 5000)) == "2.42.5000"
    assert format_fw_version((2, 4, 7)) == "2.4.0007"
    assert format_fw_version((12, 100, 7)) == "12.0100.0007"
    info = fs2.parse_image(build())
    assert "FW Version(Running):   2.40.7000\n" in format_query(
        info, skip_rom=False, running_version=(2, 40, 7000))
    for running in [(2, 42, 5000), (0, 0, 0), None]:
        assert "Running" not in format_query(info, skip_rom=False, running_version=running)
    lines = format_query(info, skip_rom=False).splitlines()
    assert lines[lines.index(next(x for x in lines if x.startswith("GUIDs:")))].endswith(" ")
    assert all(line[22] == " " for line in lines if ":" in line[:23])


# --------------------------------------------------------------------------- broken images
def put(image: bytes, field: FieldSpec, value: int, base: int) -> bytes:
    out = bytearray(image)
    field.put(out, value, base=base)
    return bytes(out)


def corruptions() -> Iterator[tuple[str, bytes]]:
    image = build()
    guid_ptr = fs2.Header.GUID_PTR.get(image)
    info_ptr = fs2.Header.INFO_PTR.get(image)
    yield "magic", flip(image, 0x3)
    yield "fs_info checksum", flip(image, 0x2B)
    yield "info pointer checksum", flip(image, 0x2F)
    yield "info pointer past the end", flip(image, 0x2D)
    yield "guid pointer past the end", flip(image, 0x35)
    yield "boot2 size", flip(image, 0x3F)
    yield "boot2 code", flip(image, 0x48)
    yield "boot2 crc", flip(image, guid_ptr - 17)
    yield "guid section header", flip(image, guid_ptr - 16 + 7)
    yield "guid section next pointer", flip(image, guid_ptr - 16 + 14)
    yield "guid entry", flip(image, guid_ptr + 5)
    yield "guid crc", flip(image, guid_ptr + 48 + 3)
    yield "info section size", flip(image, info_ptr - 16 + 7)
    yield "info tag header", flip(image, info_ptr)
    yield "info tag payload", flip(image, info_ptr + 8)
    yield "end tag", flip(image, len(image) - 8)
    yield "info crc", flip(image, len(image) - 1)
    yield "boot2 size too small", put(image, fs2.Boot2.SIZE, 3, fs2.Header.SIZE)
    yield "boot2 size too big", put(image, fs2.Boot2.SIZE, 0x100001, fs2.Header.SIZE)
    yield "section too big", put(image, fs2.Gph.SIZE, 0x100001, guid_ptr - 16)
    yield "unknown first section type", put(image, fs2.Gph.TYPE, 22, guid_ptr - 16)
    for size in (0x30, 0x60, info_ptr - 8, len(image) - 4):
        yield f"truncated to {size:#x}", image[:size]
    yield "truncated to an odd size", image[:-1]


@pytest.mark.parametrize(("name", "image"), list(corruptions()),
                         ids=[name for name, _ in corruptions()])
def test_broken_images_are_refused_like_mstflint(mstflint: Mstflint, name: str,
                                                 image: bytes) -> None:
    with pytest.raises(fs2.ImageError):
        fs2.parse_image(image)
    with pytest.raises(fs2.ImageError):
        fs2.verify_image(image)
    assert mstflint(image, "v")[0] != 0
    assert mstflint(image, "q")[0] != 0
    assert_same_as_mstflint(mstflint, image)


def test_every_bit_after_the_header_is_protected() -> None:
    image = build()
    for offset in range(fs2.Header.SIZE, len(image)):
        for bit in range(8):
            with pytest.raises(fs2.ImageError):
                fs2.parse_image(flip(image, offset, 1 << bit))


def test_header_bits_mstflint_relies_on_are_protected(shared_mstflint: Mstflint) -> None:
    image = build()
    for offset in [*range(0, 16), *range(0x28, 0x30), *range(0x34, 0x38)]:
        for bit in range(8):
            broken = flip(image, offset, 1 << bit)
            with pytest.raises(fs2.ImageError):
                fs2.parse_image(broken)
            if offset < 0x34:
                assert shared_mstflint(broken, "q")[0] != 0, (hex(offset), bit)
    # mstflint follows any GUID pointer it can read and shows what it finds there, e.g.
    # inside the Image Info section; hcasim insists that it points at the GUID section.
    moved = flip(image, 0x36, 1)
    assert shared_mstflint(moved, "q")[0] == 0
    with pytest.raises(fs2.ImageError, match="does not point at the GUID section"):
        fs2.parse_image(moved)


def test_a_looping_section_chain_is_refused() -> None:
    # mstflint would follow such a chain forever; hcasim names the loop.
    image = bytearray(build())
    guid_gph = fs2.Header.GUID_PTR.get(image) - 16
    fs2.Gph.NEXT.put(image, guid_gph, base=guid_gph)
    body = bytes(image[guid_gph : guid_gph + 16 + 48])
    image[guid_gph + 64 : guid_gph + 68] = fs2.crc16(body).to_bytes(4, "big")
    with pytest.raises(fs2.ImageError, match="loops back"):
        fs2.parse_image(bytes(image))


def test_errors_say_what_is_wrong() -> None:
    image = build()
    with pytest.raises(fs2.ImageError, match=r"^No valid image found$"):
        fs2.parse_image(flip(image, 0))
    with pytest.raises(fs2.ImageError, match=r"Bad CRC in GUID section at 0x0000006c"):
        fs2.parse_image(flip(image, 0x80))
    with pytest.raises(fs2.ImageError, match="read error .* image truncated"):
        fs2.parse_image(image[:0x100])
    with pytest.raises(fs2.UnsupportedImageError, match="expansion ROM"):
        fs2.parse_image(rom_image())


def test_where_hcasim_is_stricter_than_mstflint(mstflint: Mstflint) -> None:
    # mstflint shows an image whose Image Info section has the wrong type (it follows
    # info_ptr blindly) and one with a ROM section; hcasim refuses both, see the docs.
    image = build()
    info_gph = fs2.Header.INFO_PTR.get(image) - 16
    retyped = bytearray(put(image, fs2.Gph.TYPE, 22, info_gph))
    retyped[-4:] = fs2.crc16(bytes(retyped[info_gph:-4])).to_bytes(4, "big")
    for odd in (bytes(retyped), rom_image()):
        assert mstflint(odd, "q")[0] == 0
        with pytest.raises(fs2.ImageError):
            fs2.parse_image(odd)


def rom_image() -> bytes:
    image = bytearray(build())
    guid_gph = fs2.Header.GUID_PTR.get(image) - 16
    fs2.Gph.TYPE.put(image, fs2.SectionType.ROM, base=guid_gph)
    body = bytes(image[guid_gph : guid_gph + 16 + 48])
    image[guid_gph + 64 : guid_gph + 68] = fs2.crc16(body).to_bytes(4, "big")
    return bytes(image)
