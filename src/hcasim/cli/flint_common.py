"""What every flint command shares: exit codes, output, the parsed command line, and
opening a device or an image the way mstflint 4.21 does (sources cited inline, from
Mellanox/mstflint tag v4.21.0-1)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # mypy reads it as typing.TYPE_CHECKING; typing is not loaded

if TYPE_CHECKING:
    from hcasim.api.mst import MstDevice

FLINT_SUCCESS = 0
FLINT_FAILED = 1
FLINT_BURN_ABORTED = 7  # flint/err_msgs.h:53

LOCKED_REASON = "HW access is disabled on the device. "


def out(text: str) -> None:
    """Write to stdout without a newline and flush (flint prints progress with \\r).

    Bytes that are not UTF-8 (in a file name from argv, or a PSID or VSD passed through
    :func:`raw_text`) are carried as surrogate escapes and written back as the bytes they
    were: mstflint prints them unchanged.
    """
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a replaced stdout (tests): text is all it takes
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    buffer.write(text.encode("utf-8", "surrogateescape"))
    buffer.flush()


def raw_text(latin1: str) -> str:
    """Image text decoded byte for byte (Latin-1), re-spelt so that :func:`out` writes its
    bytes >= 0x80 as they are rather than re-encoded as UTF-8."""
    return latin1.encode("latin-1").decode("ascii", "surrogateescape")


def err(message: str) -> int:
    """Print an ``-E-`` message the way reportErr does (stdout) and return FLINT_FAILED."""
    out(f"-E- {message}\n")
    return FLINT_FAILED


class Options:
    """Parsed command line."""

    def __init__(self) -> None:
        self.device: str | None = None
        self.image: str | None = None
        self.quick = False
        self.yes = False
        self.no = False
        self.allow_psid_change = False
        self.silent = False
        self.nofs = False
        #: Options mstflint takes that change nothing here, by name, with their values.
        self.other: dict[str, str] = {}
        self.command: str | None = None
        self.params: list[str] = []
        #: Set by a command that printed its own complete failure text.
        self.failure_reported = False


# ------------------------------------------------------------------ device helpers
def locked_hint(dev: str) -> str:
    """The second half of the locked-device error (flint_io.cpp:389-394)."""
    return f'-E- Run "flint -d {dev} hw_access enable [key]" in order to enable HW access.'


def _unparsed_name(dev: str, opens: int) -> None:
    """What mtcr_parse_name prints on stderr, at each attempt to open a name it cannot
    parse (mtcr_ul/mtcr_ul_com.c:1753-1756), whatever ``-s`` says."""
    data = f"Unable to parse device name {dev}\n".encode("utf-8", "surrogateescape") * opens
    buffer = getattr(sys.stderr, "buffer", None)
    if buffer is None:
        sys.stderr.write(data.decode("utf-8", "surrogateescape"))
    else:
        buffer.write(data)
    sys.stderr.flush()


def open_for_fw_ops(dev: str, *, silent: bool = False, with_image: bool = False) -> \
        MstDevice | int:
    """Open a device the way preFwOps does; on failure print its error (none with ``-s``:
    subcommands.cpp:631-638) and return 1.

    Without an image, FwOperationsCreate opens the device twice before it gives up: for
    its FwCompsMgr, whose failed mopen is no reason to stop (fw_comps_mgr/fw_comps_mgr.cpp:
    1070-1075), then for flash access (mlxfwops/lib/fw_ops.cpp:916-1020). Beside an FS2
    image (burn) the FwCompsMgr is skipped (canSkipFwCtrl, fw_ops.cpp:808-816): once.
    """
    from hcasim.api.mst import DeviceOpenError, MstDevice

    try:
        device = MstDevice.open(dev)
    except DeviceOpenError as exc:
        if exc.unparsed:
            _unparsed_name(dev, 1 if with_image else 2)
        return FLINT_FAILED if silent else \
            err(f"Cannot open Device: {dev}. {exc.reason}. MFE_CR_ERROR")
    if device.locked:
        device.close()
        return FLINT_FAILED if silent else \
            err(f"Cannot open Device: {dev}. {LOCKED_REASON}\n{locked_hint(dev)}")
    return device


def open_for_access(dev: str, *, allow_locked: bool = False) -> MstDevice | int:
    """Open a device the way preFwAccess / openIo does (set_key, hw_access)."""
    from hcasim.api.mst import DeviceOpenError, MstDevice

    try:
        device = MstDevice.open(dev)
    except DeviceOpenError as exc:
        if exc.unparsed:
            _unparsed_name(dev, 1)
        return err(f"Failed to open Device: {exc.reason}. MFE_CR_ERROR")
    if device.locked and not allow_locked:
        device.close()
        return err(f"Failed to open Device: {LOCKED_REASON}\n{locked_hint(dev)}")
    return device


#: The smallest file mstflint takes for an image of any format: it reads the format
#: version dword at 0x24 (FS3_IND_ADDR) and a file that ends before it is of no known
#: generation (IsFS3OrFS2Image, mlxfwops/lib/fw_ops.cpp:650-668, and :1084-1088).
_FORMAT_DWORD_END = 0x28
#: Files up to this size are read whole without asking the flash model its size.
_SMALL_FILE = 1 << 20


def read_image_file(path: str) -> bytes | int:
    """Read an image file as ``FImage::open`` and ``FwOperations`` do, printing mstflint's
    errors (mlxfwops/lib/flint_io.cpp:63-110).

    The size is where a seek to the end lands, as mstflint measures it: a character
    device such as /dev/zero or /dev/null has size 0, a pipe cannot seek ("Illegal seek"),
    and a directory has no size an int holds, which mstflint reports with errno still 0
    ("Success"). Only that many bytes are read, so /dev/zero is answered at once.
    """
    import os

    if os.path.isdir(path):
        # fopen() takes a directory; ftell() at its end does not fit flint's int.
        return err(f'Cannot open Image: {path}. Can not get file size for "{path}" - Success')
    try:
        with open(path, "rb") as f:
            try:
                size = f.seek(0, os.SEEK_END)
            except OSError as exc:
                return err(f'Cannot open Image: {path}. Can not get file size for "{path}" - '
                           f"{exc.strerror}")
            f.seek(0)
            flash_size = None
            if size > _SMALL_FILE:
                # No more than a flash holds, plus one byte to tell a file that is bigger
                # (the flash model loads dataclasses: only for files that need it).
                from hcasim.devices.flash import FLASH_SIZE

                flash_size = FLASH_SIZE
            data = f.read(size if flash_size is None else min(size, flash_size + 1))
    except OSError as exc:
        return err(f'Cannot open Image: {path}. Can not open file "{path}" - {exc.strerror}')
    if size % 4:
        return err(
            f"Cannot open Image: {path}. Image size should be 4-bytes aligned. "
            f"Make sure file {path} is in the right format (binary image)"
        )
    if size < _FORMAT_DWORD_END:
        return err(f"Cannot open Image: {path}. Invalid Firmware Format (found FS Gen 1)")
    if flash_size is not None and len(data) > flash_size:
        # hcasim's own limit (docs/flint.md): mstflint reads bigger files lazily.
        return err(
            f"Cannot open Image: {path}. Image is larger than the flash "
            f"({flash_size:#x} bytes): no device can hold it"
        )
    return data


def load_image(opts: Options) -> tuple[bytes, tuple[int, int, int] | None] | int:
    """The image a command works on: the ``-i`` file, or the ``-d`` device's flash.

    With a device, also the firmware version it runs. On failure the error is printed and
    FLINT_FAILED returned.
    """
    if opts.image is not None:
        data = read_image_file(opts.image)
        return data if isinstance(data, int) else (data, None)
    device = open_for_fw_ops(opts.device or "", silent=opts.silent)
    if isinstance(device, int):
        return device
    try:
        from hcasim.devices.cx3_registers import SEM_FLASH_PROGRAMMING

        with device.semaphore(SEM_FLASH_PROGRAMMING):
            data = device.read_flash_image()
        return data, device.running_version()
    finally:
        device.close()
