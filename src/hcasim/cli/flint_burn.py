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
    """FW version as flint prints it: %d.%d.%04d, or %d.%04d.%04d from minor 100 on."""
    major, minor, sub = version
    return f"{major}.{minor}.{sub:04d}" if minor < 100 else f"{major}.{minor:04d}.{sub:04d}"


def cmd_burn(opts: Options) -> int:
    """``-d DEV -i IMG b``: program a new image, keeping the device's GUIDs."""
    from hcasim.devices import fs2
    from hcasim.devices.cx3_registers import SEM_FLASH_PROGRAMMING

    path = opts.image or ""
    data = read_image_file(path)
    if isinstance(data, int):
        return data
    try:
        new = fs2.parse_image(data)
    except fs2.ImageError as exc:
        return err(f"Cannot open Image: {path}. {exc.reason}")
    device = open_for_fw_ops(opts.device or "")
    if isinstance(device, int):
        return device
    try:
        with device.semaphore(SEM_FLASH_PROGRAMMING):
            current_image = device.read_flash_image()
            try:
                current: fs2.Fs2Info | None = fs2.parse_image(current_image)
            except fs2.ImageError:
                current = None
            status = _confirm(opts, current, new)
            if status is not None:
                return status
            if new.device_id != device.device_id:
                return err(
                    "Burning FS2 image failed: FW image file cannot be programmed to device "
                    f"{_chip_name(device.device_id)}, it is intended for: "
                    f"{_chip_name(new.device_id)} only"
                )
            if current is not None:
                # The device keeps its GUIDs, MACs and VSD (fs2_ops.cpp:1685-1712).
                data = fs2.with_vsd(fs2.with_guids(data, current.guids, current.macs), current.vsd)
            # Neither our images nor the flash carry an expansion ROM (fs2_ops.cpp:1612-1615).
            out("-W- Skipping ROM section handling (ROM section is empty)\n")
            out(f"\r{BURN_PREFIX}{0:3d}%")
            device.write_flash_image(data)
            out(f"\r{BURN_PREFIX}OK  \n")
            out(f"\r{RESTORE_LINE}\n")
        return FLINT_SUCCESS
    finally:
        device.close()


def _confirm(opts: Options, current: object, new: object) -> int | None:
    """Version, PSID and failsafe questions; a status ends the burn, None goes on."""
    from hcasim.devices.fs2 import Fs2Info

    assert isinstance(new, Fs2Info)
    cur = current if isinstance(current, Fs2Info) else None
    cur_text = version_text(cur.fw_version) if cur else "N/A"
    out(f"\n    Current FW version on flash:  {cur_text}\n")
    out(f"    New FW version:               {version_text(new.fw_version)}\n")
    if cur is not None:
        if cur.fw_version[:2] != new.fw_version[:2]:
            out(
                "\n    Note: The new FW version is on a different branch"
                " then the current FW version on flash.\n"
            )
        elif cur.fw_version >= new.fw_version:
            same = "the same as" if cur.fw_version == new.fw_version else "older than"
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
                f"PSID mismatch. The PSID on flash ({cur.psid}) differs from the PSID in the "
                f"given image ({new.psid})."
            )
        out(
            f'\n    You are about to replace current PSID on flash - "{cur.psid}" with a '
            f'different PSID - "{new.psid}".\n'
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


def _chip_name(device_id: int) -> str:
    return {4099: "ConnectX3", 4103: "ConnectX3Pro"}.get(device_id, f"device {device_id}")


def cmd_verify(opts: Options) -> int:
    """``v``: check every section of an image or of a device's flash."""
    from hcasim.devices import fs2

    if opts.params and opts.params != ["showitoc"]:
        return err(
            f'Unknown option "{opts.params[0]}" for the "verify" command. you can use showitoc.'
        )
    loaded = load_image(opts)
    if isinstance(loaded, int):
        return loaded
    data = loaded[0]
    from hcasim.cli.flint_format import format_verify, format_verify_error

    try:
        lines = fs2.verify_image(data)
    except fs2.ImageError as exc:
        out(format_verify_error(exc, source=opts.image or opts.device or ""))
        opts.failure_reported = True
        return FLINT_FAILED
    out(format_verify(lines))
    return FLINT_SUCCESS
