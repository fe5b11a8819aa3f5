"""flint ``burn`` and ``verify`` for FS2 (ConnectX-3) images, as mstflint 4.21 runs them.

Burn follows ``BurnSubCommand::burnFs2`` (mstflint v4.21.0-1 flint/subcommands.cpp:2802-2932):
the device's GUIDs are kept, the versions are compared (same or older asks to continue,
exit 7 when declined), the PSID must match, a non-failsafe image asks once more, then the
whole image is written and the progress lines of ``burnCbFs2Func`` are printed (:508-518).
"""

from __future__ import annotations

import sys

from hcasim.cli.flint_common import (
    FLINT_BURN_ABORTED,
    FLINT_FAILED,
    FLINT_SUCCESS,
    Options,
    err,
    load_image,
    open_for_fw_ops,
    out,
    raw_text,
    read_image_file,
)

BURN_PREFIX = "Burning FS2 FW image without signatures - "
RESTORE_LINE = "Restoring signature                     - OK"


def ask_user(opts: Options) -> bool:
    """Ask to continue as ``SubCommand::askUser`` does (subcommands.cpp:1021-1060)."""
    out("\n Do you want to continue ? (y/n) [n] : ")
    if opts.yes:
        out("y\n")
        return True
    if opts.no:
        out("n\n")
        return False
    # Bytes, not text: an answer that is not UTF-8 is just not "y" (no decoding error).
    stdin = sys.stdin.buffer if sys.stdin is not None else None
    answer = stdin.readline().rstrip(b"\n") if stdin is not None else b""
    return answer.lower() in (b"y", b"yes")


def version_text(version: tuple[int, int, int]) -> str:
    """FW version as burn prints it: %d.%d.%04d, or %d.%04d.%04d from minor 100 on, and
    "N/A" for 0.0.0, a version that is not set (FwVersion::get_fw_version,
    mlxfwops/lib/fw_version.cpp; VERSION_FORMAT, flint/subcommands.cpp:2598)."""
    major, minor, sub = version
    if not any(version):
        return "N/A"
    return f"{major}.{minor}.{sub:04d}" if minor < 100 else f"{major}.{minor:04d}.{sub:04d}"


def _master_format(version: tuple[int, int, int]) -> int:
    # FwVersion::get_master_format: minor 100 on is format 1; the oldest switch versions
    # (major 10 up to minor 10, major 11 up to minor 1) format 0; the rest format 2.
    major, minor, _sub = version
    if minor >= 100:
        return 1
    if (major == 10 and minor <= 10) or (major == 11 and minor <= 1):
        return 0
    return 2


def compare_versions(a: tuple[int, int, int], b: tuple[int, int, int]) -> int:
    """FwVersion::compare for two FS2 versions (always the master branch: FS2 images carry
    no branch tag): the format first, then major, minor and subminor; negative, 0 or
    positive as ``a`` is older, the same or newer."""
    fa, fb = _master_format(a), _master_format(b)
    if fa != fb:
        return fa - fb
    for x, y in zip(a, b, strict=True):
        if x != y:
            return x - y
    return 0


def cmd_burn(opts: Options) -> int:
    """``-d DEV -i IMG b``: program a new image, keeping the device's GUIDs."""
    from hcasim.devices import fs2
    from hcasim.devices.cx3_registers import SEM_FLASH_PROGRAMMING

    path = opts.image or ""
    data = read_image_file(path)
    if isinstance(data, int):
        return data
    # preFwOps opens the image (its file and format: errors of the "open" stage), then
    # the device (openOps, subcommands.cpp:586-640), and only then is the image queried
    # (BurnSubCommand::executeCommand, :3311-3315).
    query_error: fs2.ImageError | None = None
    try:
        new = fs2.parse_image(data)
    except fs2.ImageError as exc:
        if exc.stage == "open":
            return _image_query_failed(exc, path)
        query_error = exc
    device = open_for_fw_ops(opts.device or "", silent=opts.silent, with_image=True)
    if isinstance(device, int):
        return device
    if query_error is not None:
        device.close()
        return _image_query_failed(query_error, path)
    try:
        with device.semaphore(SEM_FLASH_PROGRAMMING):
            current_image = device.read_flash_image()
            try:
                # the device queried as FwQuery does it: no CRC (subcommands.cpp:3310)
                current: fs2.Fs2Info | None = fs2.parse_image(current_image, flash=True)
            except fs2.ImageError as exc:
                current = None
                status = _unreadable_flash(opts, exc)
                if status is not None:
                    return status
            status = _confirm(opts, current, new)
            if status is not None:
                return status
            mismatch = _device_mismatch(device.device_id, new.device_id)
            if mismatch:
                return err(f"Burning FS2 image failed: {mismatch}")
            if current is not None and not opts.allow_psid_change \
                    and current.psid[:16] != new.psid[:16]:
                # CheckPSID (fw_ops.cpp:1676-1688) after the device check (fs2_ops.cpp:1662):
                # catches what checkPSID let through, an image or flash without a PSID.
                return err(
                    f"Burning FS2 image failed: Image PSID is {raw_text(new.psid)}, it cannot "
                    f"be burnt into current device (PSID: {raw_text(current.psid)})"
                )
            if current is not None:
                # The device keeps its GUIDs, MACs and VSD (fs2_ops.cpp:1685-1712).
                # The VSD as the bytes it is, up to its first NUL: any byte value, printable
                # or not (PatchInfoSect, fs2_ops.cpp:1362-1384).
                size = fs2.TAGS[fs2.TAG_VSD].size
                vsd = current.vsd.encode("latin-1")[:size].ljust(size, b"\0")
                data = fs2.with_image_info_tag(
                    fs2.with_guids(data, current.guids, current.macs), fs2.TAG_VSD, vsd)
            # Neither our images nor the flash carry an expansion ROM (fs2_ops.cpp:1612-1615).
            out("-W- Skipping ROM section handling (ROM section is empty)\n")
            # No percentage before OK, as mstflint prints it for images this size
            # (compared in-band: docs/flint.md).
            device.write_flash_image(data)
            if not opts.silent:  # -s burns without progress (updateBurnParams, :2540-2546)
                out(f"\r{BURN_PREFIX}OK  \n")
                out(f"\r{RESTORE_LINE}\n")
        return FLINT_SUCCESS
    finally:
        device.close()


def _image_query_failed(error: object, path: str) -> int:
    # Reported as ``q`` reports it (FLINT_FAILED_QUERY_ERROR, err_msgs.h:90).
    from hcasim.cli.flint_format import format_query_error
    from hcasim.devices.fs2 import ImageError

    assert isinstance(error, ImageError)
    out(format_query_error(error, source=path))
    return FLINT_FAILED


def _unreadable_flash(opts: Options, error: Exception) -> int | None:
    """dealWithGuids (subcommands.cpp:2962-2996): a flash that cannot be queried has no
    GUIDs or MACs to keep; unless the burn is told which to use, it stops there."""
    given = opts.other
    if any(flag in given for flag in ("use_image_guids", "blank_guids", "guid", "guids",
                                      "mac", "macs")):
        return None
    reason = getattr(error, "reason", str(error))
    if not opts.nofs:
        out(f"-E- Can not extract GUIDs/MACs info from flash, {reason}\n"
            "    Can not burn in a failsafe mode.\n"
            '    If you want to burn in non failsafe mode, use the "-nofs" switch.\n')
    else:
        # reportErr without a newline, then printMissingGuidErr for a ConnectX-3, an IB
        # and Ethernet device (subcommands.cpp:1428-1451)
        out(f"-E- Can not extract GUIDs/MACs info from flash, {reason}"
            "Please specify GUIDs / MACs (using command line flags -guid(s) / -mac(s) ).\n")
    return FLINT_FAILED


def _confirm(opts: Options, current: object, new: object) -> int | None:
    """Version, PSID and failsafe questions; a status ends the burn, None goes on."""
    from hcasim.devices.fs2 import Fs2Info

    assert isinstance(new, Fs2Info)
    cur = current if isinstance(current, Fs2Info) else None
    if cur is not None and not cur.psid and "vsd" not in opts.other \
            and "use_image_ps" not in opts.other:
        # dealWithVSD, before the versions (subcommands.cpp:2864-2871, 2934-2958): a flash
        # without a PSID; an FS2 burn is not failsafe, so it asks.
        out("\n-W- Can not extract VSD/PSID info from flash.\n\n"
            "    To use a specific VSD, abort and re-burn specifying the\n"
            "    needed info (using command line flags -vsd / -use_image_ps).\n"
            "    You can also continue burn using blank VSD.\n")
        if not ask_user(opts):
            if not opts.no:
                err("Aborted by user")
            return FLINT_FAILED
    cur_version = cur.fw_version if cur else (0, 0, 0)
    out(f"\n    Current FW version on flash:  {version_text(cur_version)}\n")
    out(f"    New FW version:               {version_text(new.fw_version)}\n")
    # checkFwVersion (subcommands.cpp:2599-2643): FS2 versions are all on the master
    # branch, so the "different branch" note never shows; same or older asks, and a
    # refusal ends the burn with FLINT_BURN_ABORTED.
    if any(cur_version) and any(new.fw_version) \
            and compare_versions(cur_version, new.fw_version) >= 0:
        same = "the same as" if cur_version == new.fw_version else "older than"
        out(f"\n    Note: The new FW version is {same} the current FW version on flash.\n")
        if not ask_user(opts):
            if not opts.no:
                err("Aborted by user")
            return FLINT_BURN_ABORTED
    out("\n")
    if cur is not None and cur.psid and new.psid and cur.psid != new.psid:
        if not opts.allow_psid_change:
            out("\n")
            return err(
                f"PSID mismatch. The PSID on flash ({raw_text(cur.psid)}) differs from the "
                f"PSID in the given image ({raw_text(new.psid)})."
            )
        out(
            f'\n    You are about to replace current PSID on flash - "{raw_text(cur.psid)}" '
            f'with a different PSID - "{raw_text(new.psid)}".\n'
            "    Note: It is highly recommended not to change the PSID.\n"
        )
        if not ask_user(opts):
            if not opts.no:
                err("Aborted by user")
            return FLINT_FAILED
    out(
        "Burn process will not be failsafe. No checks will be performed.\n"
        "ALL flash, including the Invariant Sector will be overwritten.\n"
        "If this process fails, computer may remain in an inoperable state.\n"
    )
    if not ask_user(opts):
        if not opts.no:
            err("Aborted by user")
        return FLINT_FAILED
    return None


#: mstflint's HW device table: each device's name, its HW id where hcasim has it (the
#: mst device id of a ConnectX-3 or Pro), and the image device ids it takes (hwDevData,
#: mlxfwops/lib/fw_ops.cpp:1358-1404; searched in this order, the first match wins).
_HW_DEVICES: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("ConnectX-3", 4099, (4099, 4100, 4101, 4102, 4104, 4105, 4106, 4107, 4108, 4109, 4110,
                          4111, 4112)),
    ("ConnectX-3Pro", 4103, (4103,)),
    ("Connect_IB", 0, (4113, 4114, 4115, 4116, 4117, 4118, 4119, 4120, 4121, 4122, 4123,
                       4124)),
    ("Switch_IB", 0, (52000,)), ("ConnectX-4", 0, (4115,)), ("ConnectX-4LX", 0, (4117,)),
    ("ConnectX-5", 0, (4119, 4121)), ("ConnectX-6", 0, (4123,)), ("ConnectX-6DX", 0, (4125,)),
    ("ConnectX-6LX", 0, (4127,)), ("ConnectX-7", 0, (4129,)), ("ConnectX-8", 0, (4131,)),
    ("BlueField", 0, (41680, 41681, 41682)), ("BlueField2", 0, (41684, 41685, 41686)),
    ("BlueField3", 0, (41690, 41691, 41692)), ("BlueField4", 0, (41694,)),
    ("Spectrum", 0, (52100,)), ("Switch_IB2", 0, (53000,)), ("Quantum", 0, (54000,)),
    ("Spectrum2", 0, (53100,)), ("Spectrum3", 0, (53104,)), ("Quantum2", 0, (54002,)),
    ("Quantum3", 0, (54004,)), ("Spectrum4", 0, (53120,)),
)


def _device_mismatch(device_id: int, image_device_id: int) -> str | None:
    """What ``CheckMatchingDevId`` (fw_ops.cpp:1586-1623) says of an image's device type,
    checked as the burn starts (Fs2Burn, fs2_ops.cpp:1642-1660): a mismatch text, or None to
    go on. An id it does not know is burnt after a warning, which is printed here."""
    device_name = next((name for name, hw, _ids in _HW_DEVICES if hw == device_id), None)
    image = next(((name, hw) for name, hw, ids in _HW_DEVICES if image_device_id in ids), None)
    if image is None:
        out(f"\n-W- Unknown device id ({image_device_id}) in the given FW image. "
            "Skipping HW match check.\n \n")
        return None
    if image[1] != device_id:
        return (f'Device/Image mismatch: Trying to burn a "{image[0]}" image on a '
                f'"{device_name}" device.\n')
    return None


def cmd_verify(opts: Options) -> int:
    """``v``: check every section of an image or of a device's flash."""
    if opts.params and opts.params != ["showitoc"]:
        return err(
            f'Unknown option "{opts.params[0]}" for the "verify" command. you can use showitoc.'
        )
    loaded = load_image(opts)
    if isinstance(loaded, int):
        return loaded
    data = loaded[0]
    from hcasim.cli.flint_format import format_verify, format_verify_error
    from hcasim.devices import fs2

    try:
        lines = fs2.verify_image(data)
    except fs2.ImageError as exc:
        out(format_verify_error(exc, source=opts.image or opts.device or ""))
        opts.failure_reported = True
        return FLINT_FAILED
    out(format_verify(lines))
    return FLINT_SUCCESS
