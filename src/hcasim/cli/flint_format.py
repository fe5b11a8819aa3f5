"""Text that hcasim's ``flint`` prints for FS2 images, byte for byte as mstflint 4.21.

Only formatting lives here; the facts come from :mod:`hcasim.devices.fs2`. Citations are
to Mellanox/mstflint at tag ``v4.21.0-1``: ``QuerySubCommand::printInfo``
(flint/subcommands.cpp:4087-4399), ``displayFs2Uids`` (:3786-3867), ``VerifySubCommand``
(:4659-4703) and the message formats in flint/err_msgs.h.
"""

from __future__ import annotations

from collections.abc import Sequence

from hcasim.cli.flint_common import raw_text

TYPE_CHECKING = False  # mypy reads it as typing.TYPE_CHECKING; typing is not loaded

if TYPE_CHECKING:  # keep flint's start-up free of imports it does not need yet
    from hcasim.devices.fs2 import Fs2Info, ImageError

__all__ = [
    "format_fw_version",
    "format_query",
    "format_query_error",
    "format_verify",
    "format_verify_error",
]

#: Every query label is left-justified in 23 columns ("Label:" then spaces).
_LABEL_WIDTH = 23
#: MELLANOX_VENDOR_ID (mlxfwops/lib/flint_base.h:301): VSD and PSID are shown for it or 0.
_MELLANOX_VSD_VENDOR = 0x15B3


def _line(label: str, value: str) -> str:
    return f"{label + ':':<{_LABEL_WIDTH}}{value}\n"


def format_fw_version(version: tuple[int, int, int]) -> str:
    """Format a firmware version as mstflint does: ``%d.%d.%04d``, or ``%d.%04d.%04d``
    when the minor number is 100 or more (VERSION_FORMAT, flint/subcommands.cpp:2598)."""
    major, minor, subminor = version
    if minor < 100:
        return f"{major}.{minor}.{subminor:04d}"
    return f"{major}.{minor:04d}.{subminor:04d}"


def _mac_warning(mac: int) -> str | None:
    # QuerySubCommand::checkMac (flint/subcommands.cpp:3769-3784), err_msgs.h:194-195.
    if (mac >> 40) & 1:
        return "Multicast bit (bit 40) is set."
    if mac >> 48:
        return "More than 48 bits are used."
    return None


def _hex_pair(value: int, high_digits: int) -> str:
    # mstflint prints 64-bit ids as two dwords: "%8.8x%8.8x" (GUID) or "%4.4x%8.8x" (MAC).
    return f"{value >> 32:0{high_digits}x}{value & 0xFFFFFFFF:08x}"


def _uids(info: Fs2Info) -> str:
    # displayFs2Uids for a two-port FS2 device: FS2 images always show GUIDs and MACs
    # (FwOperations::SetDevFlags, mlxfwops/lib/fw_ops.cpp:2126-2153).
    out = "Description:           Node             Port1            Port2            Sys image\n"
    out += "GUIDs:                 " + "".join(_hex_pair(g, 8) + " " for g in info.guids)
    out += "\n"
    out += "MACs:          " + " " * 17 + " " * 7
    out += "".join("     " + _hex_pair(m, 4) for m in info.macs)
    for index, mac in enumerate(info.macs):
        reason = None if info.blank_guids else _mac_warning(mac)
        if reason is not None:
            if index == 0:
                out += "\n\n"
            out += f"\n-W- Bad mac address ( {_hex_pair(mac, 4)} ): {reason}\n"
    return out + "\n"


def format_query(
    info: Fs2Info,
    *,
    skip_rom: bool,
    running_version: tuple[int, int, int] | None = None,
) -> str:
    """Return what ``mstflint q`` prints for an FS2 image (stdout, exit status 0).

    ``skip_rom`` is flint's ``-qq``: with no ROM in the image (hcasim images have none) a
    plain ``q`` prints no ``Rom Info`` line, while ``-qq`` prints three ``skipped`` lines
    (subcommands.cpp:4197-4207). ``running_version`` is what the device runs (CR 0x1f064);
    ``FW Version(Running)`` appears only when it is non-zero and differs from the image's.
    """
    out = _line("Image type", "FS2")
    if any(info.fw_version):
        out += _line("FW Version", format_fw_version(info.fw_version))
        if running_version is not None and any(running_version) \
                and running_version != info.fw_version:
            out += _line("FW Version(Running)", format_fw_version(running_version))
    if any(info.release_date):
        # Printed with %x from BCD, i.e. the decimal digits (subcommands.cpp:4138-4142).
        day, month, year = info.release_date
        out += _line("FW Release Date", f"{day}.{month}.{year}")
    if info.product_version:
        out += _line("Product Version", info.product_version)
    if skip_rom:
        out += _line("Rom Info", "type=UEFI version=skipped cpu=skipped")
        out += " " * _LABEL_WIDTH + "type=PXE  version=skipped devid=skipped cpu=skipped\n"
        out += " " * _LABEL_WIDTH + "type=NVMe version=skipped devid=skipped cpu=skipped\n"
    out += _line("Device ID", str(info.device_id))
    if info.hw_access_key is not None:
        out += _line("HW Access Key", "Enabled" if info.hw_access_key else "Disabled")
    out += _uids(info)
    if info.vsd_vendor_id in (0, _MELLANOX_VSD_VENDOR):
        # Printed as the bytes they are (%s of a char array): raw_text keeps them so.
        out += _line("VSD", raw_text(info.vsd))
        out += _line("PSID", raw_text(info.psid))
    else:  # FLINT_NOT_MLNX_FW_WARNING, err_msgs.h:192
        out += (f"-W- Not a Mellanox FW image (vendor_id = 0x{info.vsd_vendor_id:04x}). "
                "VSD and PSID are not displayed.\n")
    if info.blank_guids:  # FLINT_BLANK_GUIDS_WARNING, err_msgs.h:193
        out += "-W- GUIDs/MACs values and their CRC are not set.\n"
    return out


def format_verify(lines: Sequence[str]) -> str:
    """Return ``v``'s stdout for a good image from :func:`hcasim.devices.fs2.verify_image`."""
    return "\n".join(lines) + "\n"


def _open_error(error: ImageError, source: str) -> str:
    # FImage::open refuses the file (flint_io.cpp:98); FLINT_OPEN_FWOPS_IMAGE_ERROR, err_msgs.h:71.
    return (f"-E- Cannot open Image: {source}. {error.reason} Make sure file {source} is in "
            "the right format (binary image)\n")


def format_verify_error(error: ImageError, *, source: str) -> str:
    """Return ``v``'s stdout for an image :func:`~hcasim.devices.fs2.verify_image` refused.

    Exit status 1. The progress lines come first, then the error in the wording of the
    stage that failed (err_msgs.h:87-89; subcommands.cpp:4661-4700). ``source`` is the
    image file name as given on the command line.
    """
    if error.stage == "open":  # verify then reports FLINT_CMD_VERIFY_ERROR_1, unterminated
        return _open_error(error, source) + (
            "-E- FW image verification failed: No valid FS4 image found.Check the flash "
            "parameters, if specified..AN HCA DEVICE CAN NOT BOOT FROM THIS IMAGE")
    out = "".join(line + "\n" for line in error.verify_lines)
    if error.stage == "query":
        return out + f"-E- Failed to get Guids status. {error.reason}\n"
    return out + (f"-E- FW image verification failed: {error.reason}. "
                  "AN HCA DEVICE CAN NOT BOOT FROM THIS IMAGE.\n")


def format_query_error(error: ImageError, *, source: str, device: bool = False) -> str:
    """Return ``q``'s stdout when the image (or the device's flash) cannot be queried.

    ``source`` is the image file name or device name as given on the command line;
    exit status 1 (FLINT_FAILED_QUERY_ERROR, err_msgs.h:90; subcommands.cpp:4543-4547).
    """
    if error.stage == "open" and not device:
        return _open_error(error, source)
    what = "Device" if device else "image"
    return f"-E- Failed to query {what}: {source}. {error.reason}\n"
