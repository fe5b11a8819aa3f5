"""mlxburn-style firmware ini files: the board settings a ConnectX-3 image is built from.

NVIDIA's tools generate a firmware image from a release (``.mlx``) plus a parameter-set
``.ini`` of ``[SECTION]`` headers and ``key = value`` lines. For Secure Host the documented
switch is ``cr_protection_en=true`` under ``[HCA]`` ("Generating/Burning a Firmware
Supporting Secure Host", NVIDIA MFT documentation v4.22.1, Secure Host page); an image
built with it carries the HwAccessKey tag (see :mod:`hcasim.devices.fs2`).

mlxburn is not open source, so the grammar accepted here is hcasim's documented choice
(docs/fs2-image.md), strict so that a typo is reported instead of silently building an
unprotected image:

- a comment is a line whose first non-blank character is ``;`` or ``#``. Values are not
  cut at ``;`` because real parameter files carry it inside values (``Description =
  ConnectX-3 VPI adapter card; dual-port QSFP; ...``);
- ``[NAME]`` opens a section; each section appears once; nothing but blank lines and
  comments may come before the first one;
- ``key = value`` (spaces around ``=`` optional); a key is letters, digits, ``_``, ``.``
  and ``-``; each key appears once per section; names compare case-insensitively;
- ``cr_protection_en`` must sit in ``[HCA]`` and be ``true``, ``false``, ``1`` or ``0``
  (any case); when absent it is false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["FirmwareIni", "IniError", "parse_ini"]

_SECTION = re.compile(r"\[\s*([A-Za-z0-9_.\-]+)\s*\]")
_KEY = re.compile(r"[A-Za-z0-9_.\-]+")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
CR_PROTECTION_SECTION = "HCA"
CR_PROTECTION_KEY = "cr_protection_en"


class IniError(ValueError):
    """A firmware ini cannot be used; the message is ``"{filename}:{line}: {reason}"``."""

    def __init__(self, filename: str, line: int, reason: str) -> None:
        super().__init__(f"{filename}:{line}: {reason}")
        self.filename = filename
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class FirmwareIni:
    """A parsed firmware ini: its sections as written, and the settings hcasim uses.

    ``sections`` maps each section name, as spelled in the file, to its keys and values
    (values stripped of surrounding blanks, otherwise raw text).
    """

    filename: str
    sections: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    cr_protection_en: bool = False

    def get(self, section: str, key: str) -> str | None:
        """Return the value of ``key`` in ``section`` (names compared case-insensitively)."""
        for name, values in self.sections.items():
            if name.casefold() == section.casefold():
                for k, v in values.items():
                    if k.casefold() == key.casefold():
                        return v
        return None


def _parse_bool(value: str) -> bool | None:
    return _BOOLEANS.get(value.strip().casefold())


def parse_ini(text: str, filename: str) -> FirmwareIni:
    """Parse the text of a firmware ini read from ``filename`` (used in error messages).

    Raises :class:`IniError` naming the line of the first malformed line, content before
    the first section, repeated section or key, or unusable ``cr_protection_en`` value.
    """
    sections: dict[str, dict[str, str]] = {}
    section_lines: dict[str, int] = {}
    key_lines: dict[tuple[str, str], int] = {}
    current: str | None = None
    cr_protection: bool | None = None
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            match = _SECTION.fullmatch(line)
            if match is None:
                raise IniError(filename, number, "malformed section header "
                               "(expected [NAME] with letters, digits, '_', '.' or '-')")
            name = match.group(1)
            folded = name.casefold()
            if folded in section_lines:
                raise IniError(filename, number, f"duplicate section [{name}] "
                               f"(first at line {section_lines[folded]})")
            section_lines[folded] = number
            sections[name] = {}
            current = name
            continue
        key, equals, value = line.partition("=")
        key = key.strip()
        if not equals:
            raise IniError(filename, number, "malformed line "
                           "(expected 'key = value', '[SECTION]' or a ';' comment)")
        if not _KEY.fullmatch(key):
            raise IniError(filename, number, "malformed key "
                           "(expected letters, digits, '_', '.' or '-')")
        if current is None:
            raise IniError(filename, number, "a key comes before the first [SECTION]")
        where = (current.casefold(), key.casefold())
        if where in key_lines:
            raise IniError(filename, number, f"duplicate key '{key}' in [{current}] "
                           f"(first at line {key_lines[where]})")
        key_lines[where] = number
        value = value.strip()
        sections[current][key] = value
        if key.casefold() == CR_PROTECTION_KEY:
            if current.casefold() != CR_PROTECTION_SECTION.casefold():
                raise IniError(filename, number, f"{CR_PROTECTION_KEY} belongs in "
                               f"[{CR_PROTECTION_SECTION}], not in [{current}]")
            cr_protection = _parse_bool(value)
            if cr_protection is None:
                raise IniError(filename, number, f"{CR_PROTECTION_KEY} must be true, false, "
                               f"1 or 0, not {value!r}")
    frozen = MappingProxyType({name: MappingProxyType(values) for name, values in sections.items()})
    return FirmwareIni(filename=filename, sections=frozen, cr_protection_en=bool(cr_protection))
