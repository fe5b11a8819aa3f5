"""flint: mstflint 4.21-compatible flash tool for hcasim's simulated ConnectX-3 devices.

Messages, prompts, streams and exit codes follow mstflint 4.21 (sources cited inline, from
Mellanox/mstflint tag v4.21.0-1). Every message, errors included, goes to stdout, except
getopt's complaints about the command line (stderr, :mod:`hcasim.cli.flint_args`); the exit
status is 0 on success, 1 on failure and 7 for a burn declined at the version question
(flint/err_msgs.h:47-53). Imports are kept lazy: ``flint -qq q`` is on many scripts' hot
path (docs/flint.md, section 4). What differs from mstflint, and why: docs/flint.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from hcasim.cli.flint_common import (
    FLINT_FAILED,
    FLINT_SUCCESS,
    Options,
    err,
    load_image,
    open_for_access,
    out,
)

TYPE_CHECKING = False  # mypy reads it as typing.TYPE_CHECKING; typing is not loaded
if TYPE_CHECKING:
    from hcasim.api.mst import MstDevice

HW_ACCESS_OPCODE = 0x60  # cmdif/tools_cif.c:51
STATUS_BAD_OP = 0x2  # on lock: MFE_MISSING_KEY (mflash.c:3878-3891)
STATUS_BAD_PARAM = 0x3  # MFE_MISMATCH_KEY (mflash.c:3813)

MAX_PASSWORD_LEN = 256  # flint/subcommands.h:43: characters past it are dropped

KEY_SYNTAX_ERROR = (
    "Invalid Key syntax, it should contain only hexa numbers and of appropriate length."
)


# ------------------------------------------------------------------ key entry
def read_key(prompt: str) -> str:
    """Prompt for a key, echoing ``*`` per character (subcommands.cpp:920-945).

    On a terminal the typed characters are read without echo; from a pipe they are read as
    they come. A missing newline at end of input ends the key (real flint would hang).
    """
    out(prompt)
    chars: list[str] = []
    fd = sys.stdin.fileno()
    restore: Callable[[], None] | None = None
    if os.isatty(fd):
        import termios

        old = termios.tcgetattr(fd)
        new = termios.tcgetattr(fd)
        new[3] &= ~(termios.ECHO | termios.ICANON)
        termios.tcsetattr(fd, termios.TCSADRAIN, new)

        def restore() -> None:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)

    try:
        while True:
            raw = os.read(fd, 1)
            if not raw or raw == b"\n" or raw == b"\r":
                break
            c = raw.decode("latin-1")
            if c in ("\b", "\x7f"):
                if chars:
                    chars.pop()
                    out("\b \b")
            elif " " <= c <= "~" and len(chars) < MAX_PASSWORD_LEN:  # isprint(), C locale
                chars.append(c)
                out("*")
    finally:
        if restore is not None:
            restore()
    out("\n")
    return "".join(chars)


# ------------------------------------------------------------------ device helpers
# ------------------------------------------------------------------ commands
class CommandSpec:
    """A flint command: its canonical name, handler, argument limit and what it operates on
    (a plain class: a NamedTuple would load typing at start-up)."""

    __slots__ = ("handler", "max_args", "min_args", "name", "target")

    def __init__(self, name: str, handler: Callable[[Options], int], max_args: int,
                 target: str, min_args: int = -1) -> None:
        self.name = name
        self.handler = handler
        self.max_args = max_args  # -1: not checked
        self.min_args = min_args
        #: "device", "image", "either" (device or image), "both" or "none"
        self.target = target


def precheck(spec: CommandSpec, opts: Options) -> int | None:
    """The checks mstflint makes before opening anything, in its order
    (``SubCommand::basicVerifyParams``, subcommands.cpp:690-803).

    Argument count first (err_msgs.h:76-80), then which of device and image are given
    (err_msgs.h:72-74, 91-95); a failure prints its message and returns FLINT_FAILED.
    """
    count, most, least = len(opts.params), spec.max_args, spec.min_args
    if most == least and most != -1 and count != most:
        return err(f'Command "{spec.name}" requires {most} arguments, but {count} arguments '
                   "were given")
    if most != -1 and count > most:
        if most == 0:
            return err(f'Command "{spec.name}" does not require arguments')
        return err(f'Command "{spec.name}" requires at most {most} arguments, '
                   f"but {count} arguments were given")
    if least != -1 and count < least:
        return err(f'Command "{spec.name}" requires at least {least} arguments, '
                   f"but {count} arguments were given")
    has_dev, has_img = opts.device is not None, opts.image is not None
    if spec.target == "device":
        if has_dev and has_img:
            return err(
                f'Command "{spec.name}" requires device, '
                "but both an image file and a device are given."
            )
        if has_img:
            return err(f'Command "{spec.name}" requires device, but an image file was given.')
        if not has_dev:
            return err("Please specify Device.")
    elif spec.target == "image":
        if has_dev:
            both = "an image, but both an image file and a device are given"
            return err(f'Command "{spec.name}" requires '
                       f"{both if has_img else 'an image file, but device was given'}.")
        if not has_img:
            return err("Please specify Image file.")
    elif spec.target == "either" and has_dev == has_img:
        return err("Please specify either Device or Image.")
    elif spec.target == "both" and not (has_dev and has_img):
        return err(f'Command "{spec.name}" requires both image and device to be specified.')
    elif spec.target == "none":
        return None
    # The rest of basicVerifyParams (subcommands.cpp:792-802), then the command's own
    # verifyParams (burn's: :2365-2535).
    if has_dev and "striped_image" in opts.other:
        return err('Cannot specify "-device" flag with "-striped_image" flag.')
    if "override_cache_replacement" in opts.other or "ocr" in opts.other:
        out("\n-W- Firmware flash cache access is enabled. Running in this mode may cause the "
            "firmware to hang.\n")
    if spec.name == "burn":
        return _verify_burn_flags(opts)
    return None


def _verify_burn_flags(opts: Options) -> int | None:
    """``BurnSubCommand::verifyParams`` for a device that is no cable (subcommands.cpp:
    2455-2535): flags that belong to cables, and GUID, MAC and UID flags that exclude
    each other."""
    given = opts.other
    if "downstream_device_id_start_index" in given or "num_of_downstream_devices" in given:
        return err("For burn command, Please specify Flags 'cable_device_size'/"
                   "'cable_device_index' relevant only for cable components..")
    if "activate" in given or "download_transfer" in given \
            or given.get("activate_delay_sec", "1") != "1":
        return err("For burn command, Please specify Flags 'activate'/'download_transfer'/"
                   "'activate_delay_sec' relevant only for cable components..")
    guids = "guid" in given or "guids" in given
    macs = "mac" in given or "macs" in given
    if guids and "uid" in given:
        return err("For burn command, Please specify either GUIDs / UID (using command line "
                   "flags -guid(s) / -uid ).")
    if macs and "uid" in given:
        return err("For burn command, Please specify either MACs / UID (using command line "
                   "flags -mac(s) / -uid ).")
    from_user = guids or macs or "uid" in given
    if from_user and "use_image_guids" in given:
        return err('Cannot specify "GUIDs/UIDs/MACs" flag with "-use_image_guids" flag.')
    if (from_user or "use_image_guids" in given) and "blank_guids" in given:
        first = "-use_image_guids" if "use_image_guids" in given else "GUIDs/UIDs/MACs"
        return err(f'Cannot specify "{first}" flag with "-blank_guids" flag.')
    if "guid" in given and "guids" in given:
        return err('Cannot specify "-guids" flag with "-guid" flag.')
    if "mac" in given and "macs" in given:
        return err('Cannot specify "-macs" flag with "-mac" flag.')
    if "use_image_ps" in given and "vsd" in given:
        return err('Cannot specify "-use_image_ps" flag with "-vsd" flag.')
    if "ignore_dev_data" in given and not opts.nofs:
        return err('"-nofs" flag must be specified with "-ignore_dev_data" flag.')
    if "use_dev_rom" in given and "use_image_rom" in given:
        return err('Cannot specify "--use_dev_rom" flag with "--use_image_rom" flag.')
    return None


def cmd_query(opts: Options) -> int:
    """``q``: print firmware and image information of a device or an image."""
    if opts.params and opts.params != ["full"]:
        return err(f'Unknown option "{opts.params[0]}" for the "query" command. you can use full.')
    loaded = load_image(opts)
    if isinstance(loaded, int):
        return loaded
    # Only now: an image or device that cannot be opened needs no FS2 layouts.
    from hcasim.cli.flint_format import format_query
    from hcasim.devices import fs2

    data, running = loaded
    try:
        info = fs2.parse_image(data, flash=opts.image is None)
    except fs2.ImageError as exc:
        from hcasim.cli.flint_format import format_query_error

        out(format_query_error(exc, source=opts.image or opts.device or "", device=not opts.image))
        return FLINT_FAILED
    out(format_query(info, skip_rom=opts.quick, running_version=running))
    return FLINT_SUCCESS


def cmd_set_key(opts: Options) -> int:
    """``set_key [key]``: write a new HW access key into the flash image (CX3 flow)."""
    device = open_for_access(opts.device or "")
    if isinstance(device, int):
        return device
    try:
        from hcasim.devices.hw_key import parse_key

        if opts.params:
            key = parse_key(opts.params[0])
            if key is None:
                return err(KEY_SYNTAX_ERROR)
        else:
            # getKeyInteractively (subcommands.cpp:5925-5953): each key is checked as it
            # is typed, and the two are compared as numbers, not as text.
            first = read_key("Enter Key : ")
            if not first:
                return err("Invalid Password.")
            key = parse_key(first)
            if key is None:
                return err(KEY_SYNTAX_ERROR)
            again = parse_key(read_key("Verify Key : "))
            if again is None:
                return err(KEY_SYNTAX_ERROR)
            if again != key:
                return err("Failed to set the HW access key: The keys you entered did not match.")
        return _write_key(device, key)
    finally:
        device.close()


def _write_key(device: MstDevice, key: int) -> int:
    from hcasim.devices import fs2
    from hcasim.devices.cx3_registers import SEM_FLASH_PROGRAMMING
    from hcasim.devices.hw_key import image_with_key

    prefix = "Setting the HW Key   - "
    with device.semaphore(SEM_FLASH_PROGRAMMING):
        try:
            image = image_with_key(device.read_flash_image(), key)
        except fs2.ImageError as exc:
            return err(f"Failed to set the HW access key: {exc}")
        # mstflint prints no percentage before OK for a whole-image write of this size
        # (compared in-band: docs/flint.md).
        device.write_flash_image(image)
        out(f"\r{prefix}OK  \n")
        out("\rRestoring signature  - OK\n")
    out(
        "\n-I- New key was updated successfully in the flash. In order to activate the new key "
        "you should reboot or restart the driver.\n"
    )
    return FLINT_SUCCESS


def cmd_hw_access(opts: Options) -> int:
    """``hw_access enable|disable [key]``: unlock or re-lock CR-space through the tools HCR."""
    if not opts.params:
        return err('Missed <disable/enable> parameter after "hw_access" command.')
    action = opts.params[0]
    if action not in ("enable", "disable"):
        return err(
            f'Unknown option "{action}" for the "hw_access" command. you can use enable or disable.'
        )
    device = open_for_access(opts.device or "", allow_locked=True)
    if isinstance(device, int):
        return device
    try:
        locked = device.locked
        if action == "enable":
            if not locked:
                out("-I- HW access already enabled\n")
                return FLINT_SUCCESS
            from hcasim.devices.hw_key import parse_key

            text = opts.params[1] if len(opts.params) > 1 else read_key("Enter Key : ")
            if len(opts.params) == 1 and not text:
                return err("Invalid Password.")
            key = parse_key(text)
            if key is None:
                return err(KEY_SYNTAX_ERROR)
            status, _ = device.hcr_command(HW_ACCESS_OPCODE, 0, key)
            if status == 0:
                out("-I- The Secure Host was disabled successfully on the device.\n")
                return FLINT_SUCCESS
            reason = (
                "The given key is incorrect" if status == STATUS_BAD_PARAM else _hcr_reason(status)
            )
            return err(f"Failed to execute command hw_access. Enable HW access failed: {reason}")
        if locked:
            out("-I- HW access already disabled\n")
            return FLINT_SUCCESS
        status, _ = device.hcr_command(HW_ACCESS_OPCODE, 1, 0)
        if status == 0:
            return FLINT_SUCCESS
        reason = {
            STATUS_BAD_OP: "No key was set",
            STATUS_BAD_PARAM: "The given key is incorrect",
        }.get(status, _hcr_reason(status))
        # Printed with plain printf, without the -E- prefix (subcommands.cpp:6080-6084).
        out(f"Failed to execute command hw_access. Disable HW access failed: {reason}\n")
        return FLINT_FAILED
    finally:
        device.close()


def _hcr_reason(status: int) -> str:
    # Generic names for other statuses (mflash/mflash_pack_layer.c:259-377).
    return {1: "MFE_CMDIF_BUSY", 2: "MFE_CMDIF_BAD_OP", 4: "MFE_CMDIF_BAD_SYS"}.get(
        status, "MFE_CMDIF_UNKN_STATUS"
    )


def command_spec(name: str) -> CommandSpec | None:
    """Look a command up by the name or abbreviation flint accepts."""
    if name in ("q", "query"):
        return CommandSpec("query", cmd_query, 1, "either")
    if name == "set_key":
        return CommandSpec("set_key", cmd_set_key, 1, "device")
    if name == "hw_access":
        return CommandSpec("hw_access", cmd_hw_access, 2, "device")
    if name in ("b", "burn", "v", "verify"):
        from hcasim.cli import flint_burn

        if name in ("b", "burn"):
            # burn takes one word (mstflint's "burn [ignore_dev_data]"), which changes
            # nothing for an FS2 image.
            return CommandSpec("burn", flint_burn.cmd_burn, 1, "both")
        return CommandSpec("verify", flint_burn.cmd_verify, 1, "either")
    if name in _REFUSED_AT_ONCE:
        return CommandSpec(name, _refused_at_once, -1, "none")
    other = _UNMODELLED.get(name)
    if other is None:
        return None
    shown, target, most, least = other
    return CommandSpec(shown, _not_modelled, most, target, least)


#: mstflint's other commands, checked as it checks them before it runs one (its name in
#: messages, what it works on, most and fewest arguments; -1 not checked): each
#: SubCommand constructor of flint/subcommands.cpp, v4.21.0-1.
_UNMODELLED: dict[str, tuple[str, str, int, int]] = {
    "swreset": ("swreset", "device", 0, -1), "reset_cfg": ("reset_cfg", "device", 0, -1),
    "brom": ("brom", "either", 1, 1), "drom": ("drom", "either", 0, -1),
    "rrom": ("rrom", "either", 1, 1), "qrom": ("qrom", "image", 0, -1),
    "bb": ("bb", "both", 0, -1), "sg": ("sg", "either", 2, -1), "sv": ("sv", "either", 0, -1),
    "ri": ("ri", "device", 1, 1), "dc": ("dc", "either", 1, -1), "dh": ("dh", "either", 1, -1),
    "hw": ("Hw", "device", 2, 1), "erase": ("erase", "device", 1, 1),
    "rw": ("rw", "either", 1, 1), "ww": ("ww", "either", 2, 2), "wwne": ("wwne", "device", 2, 2),
    "wbne": ("wbne", "device", -1, 3), "wb": ("wb", "device", 2, 2),
    "rb": ("rb", "either", 3, 2), "clear_semaphore": ("clear_semaphore", "device", 0, -1),
    "checksum": ("checksum", "either", 0, -1), "timestamp": ("time stamp", "either", 3, 1),
    "sign": ("sign", "image", 0, -1), "sign_with_hmac": ("sign_with_hmac", "image", 0, -1),
    "set_public_keys": ("set public keys", "image", 1, 1),
    "set_forbidden_versions": ("set forbidden versions", "image", 1, 1),
    "image_reactivation": ("image_reactivation", "device", 0, -1),
    "binary_compare": ("Binary compare", "both", 1, 0), "rsa_sign": ("rsa_sign", "image", 0, -1),
    "export_public_key": ("export_public_key", "none", 0, -1),
}


#: Commands this mstflint build refuses before any check, with what it prints (no newline
#: where there is none): ones compiled out of it (Flint::run, flint/flint.cpp:262-267),
#: the Windows-only cache command and the HSM ones of a build without HSM support.
_REFUSED_AT_ONCE = {
    "fi": "-E- FATAL: command object not found.",
    "extract_fw_data": "-E- FATAL: command object not found.",
    "cache_image": '-E- Command  "cache image" is supported only in windows.\n',
    "import_hsm_key": "-E- HSM funcionality is not supported",
}


def _refused_at_once(opts: Options) -> int:
    out(_REFUSED_AT_ONCE[opts.command or ""])
    return FLINT_FAILED


def _not_modelled(opts: Options) -> int:
    # What the lab's ConnectX-3 does not model (docs/flint.md, section 3).
    return err(f'Command "{opts.command}" is not supported by hcasim\'s flint.')


def main(argv: list[str] | None = None) -> int:
    """Run flint; return its exit status (a closed output pipe or a refused file operation
    ends it cleanly: :func:`hcasim.cli.guard.run_guarded`)."""
    from hcasim.cli.guard import run_guarded

    args = sys.argv[1:] if argv is None else argv
    return run_guarded(lambda: _main(args), lambda message: out(f"-E- {message}\n"))


def _main(args: list[str]) -> int:
    from hcasim.cli.flint_args import UsageExit, parse_args, program_name

    try:
        opts = parse_args(args, program_name())
    except UsageExit as exc:
        return exc.status
    if "use_fw" in opts.other and ("override_cache_replacement" in opts.other
                                   or "ocr" in opts.other):
        # Flint::run, before any command (flint/flint.cpp:255-260); no newline.
        out("-E- flags --use_fw and --override_cache_replacement/-ocr cannot be specified "
            "simultaneously")
        return FLINT_FAILED
    spec = command_spec(opts.command or "")
    if spec is None:
        # A command of mstflint's that hcasim's devices do not model (docs/flint.md).
        return err(f'Command "{opts.command}" is not supported by hcasim\'s flint.')
    try:
        status = precheck(spec, opts)
        if status is None:
            status = spec.handler(opts)
    except KeyboardInterrupt:
        out("\n")
        status = FLINT_FAILED
    except Exception as exc:  # the lab went away mid-command, or a semaphore timed out
        from hcasim.api.client import LabError, LabUnavailable
        from hcasim.api.mst import SemaphoreTimeout

        if not isinstance(exc, (LabError, LabUnavailable, SemaphoreTimeout)):
            raise
        status = err(str(exc))
    if spec.name == "verify" and status != FLINT_SUCCESS and not opts.failure_reported:
        # mstflint appends this after any verify failure, without a newline.
        out(
            "-E- FW image verification failed: No valid FS4 image found.Check the flash "
            "parameters, if specified..AN HCA DEVICE CAN NOT BOOT FROM THIS IMAGE"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
