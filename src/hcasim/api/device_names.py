"""Device names as mstflint's mtcr library takes them apart, for hcasim's flint.

mstflint 4.21 opens a device by the name given to ``-d``: ``mtcr_parse_name``
(mtcr_ul/mtcr_ul_com.c:1644-1790, Mellanox/mstflint v4.21.0-1) reads a PCI address
(``01:00.0``, ``0000:01:00.0``, ``pciconf-01:00.0``) with ``sscanf`` and opens that
function's ``/sys/bus/pci/devices/DDDD:BB:DD.F/config`` (:2556-2597), takes a sysfs or
procfs path as it is, a name holding ``lid-`` or ``ibdr-`` as an in-band device, and
refuses anything else ("Unable to parse device name", EINVAL). hcasim's flint also takes
the mst device files of MFT's flint (``/dev/mst/mt4099_pci_cr0``), which the lab's hosts
have. :func:`device_file` says which file a name stands for.
"""

from __future__ import annotations

#: The sysfs directory of PCI functions mtcr opens a parsed address under.
PCI_DEVICES = "/sys/bus/pci/devices"
_WHITESPACE = " \t\n\v\f\r"
_HEX = "0123456789abcdefABCDEF"


def _scan_hex(text: str, at: int) -> tuple[int, int] | None:
    """One ``%x`` conversion of glibc's sscanf at ``at``: blanks skipped, a sign, ``0x``,
    hex digits; the value as an ``unsigned`` gets it (negated and cut to 32 bits), and
    where the text goes on. None when no number starts there."""
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    negative = at < len(text) and text[at] == "-"
    if at < len(text) and text[at] in "+-":
        at += 1
    start = at
    prefixed = text[at:at + 2] in ("0x", "0X")
    if prefixed:
        at += 2
        start = at
    while at < len(text) and text[at] in _HEX:
        at += 1
    if at == start and not prefixed:
        return None
    value = min(int(text[start:at] or "0", 16), (1 << 64) - 1)  # strtoul saturates
    if negative:
        value = -value
    return value % (1 << 32), at


def scan(text: str, pattern: str) -> list[int]:
    """The numbers ``sscanf(text, pattern)`` assigns, for a pattern of ``%x`` conversions
    and literal characters: as many as matched before the first mismatch."""
    values: list[int] = []
    at = 0
    parts = pattern.split("%x")
    for n, literal in enumerate(parts):
        if not text.startswith(literal, at):
            return values
        at += len(literal)
        if n == len(parts) - 1:
            break
        scanned = _scan_hex(text, at)
        if scanned is None:
            return values
        value, at = scanned
        values.append(value)
    return values


def _function_file(domain: int, bus: int, dev: int, func: int) -> str:
    # sprintf(cbuf, "/sys/bus/pci/devices/%4.4x:%2.2x:%2.2x.%1.1x/config", ...), :2597
    return f"{PCI_DEVICES}/{domain:04x}:{bus:02x}:{dev:02x}.{func:x}/config"


def device_file(name: str) -> str | None:
    """The device file ``name`` (flint's ``-d``) stands for, as mtcr_parse_name reads it:
    an mst device file, a sysfs or procfs path or an in-band name as given (the lab's hosts
    answer only their mst files and their functions' sysfs config files); a PCI address as
    its function's sysfs config file. None for a name mtcr cannot parse, which mstflint
    reports on stderr ("Unable to parse device name NAME") and fails with EINVAL."""
    if name.startswith("/dev/mst/"):
        return name
    if name.endswith(("/config", "/resource0")) or name.startswith("/proc/bus/pci/"):
        return name
    if "lid-" in name or "ibdr-" in name:
        return name  # mstflint's in-band path; hcasim's flint has none (docs/flint.md)
    for prefix in ("mthca", "mlx4_", "mlx5_"):
        if len(scan(name, prefix + "%x")) == 1:
            return name  # an RDMA device name, through /sys/class/infiniband (docs/flint.md)
    for pattern, domain_given in (("%x:%x.%x", False), ("%x:%x:%x.%x", True),
                                  ("pciconf-%x:%x.%x", False),
                                  ("pciconf-%x:%x:%x.%x", True)):
        values = scan(name, pattern)
        if len(values) == pattern.count("%x"):
            return _function_file(*(values if domain_given else [0, *values]))
    return None
