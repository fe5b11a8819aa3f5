"""mlxburn-style firmware ini parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcasim.devices.firmware_ini import FirmwareIni, IniError, parse_ini

# Shaped like a ConnectX-3 parameter file with the Secure Host switch NVIDIA documents.
SECURE_HOST_INI = """\
; ConnectX-3 VPI parameter set
[PS_INFO]
Name = MCX354A-FCB_A2-A5
Description = ConnectX-3 VPI adapter card; dual-port QSFP; FDR IB (56Gb/s) and 40GigE

[ADAPTER]
PSID = MT_1090120019

# security
[HCA]
hca_header_device_id = 0x1003
cr_protection_en=true

[IB]
port1_default_link_type = 1
"""


def test_secure_host_ini() -> None:
    ini = parse_ini(SECURE_HOST_INI, "secure_host.ini")
    assert ini.cr_protection_en is True
    assert list(ini.sections) == ["PS_INFO", "ADAPTER", "HCA", "IB"]
    assert ini.sections["HCA"] == {"hca_header_device_id": "0x1003", "cr_protection_en": "true"}
    # ';' inside a value is text, not a comment.
    assert ini.get("ps_info", "DESCRIPTION") == (
        "ConnectX-3 VPI adapter card; dual-port QSFP; FDR IB (56Gb/s) and 40GigE")
    assert ini.get("ADAPTER", "PSID") == "MT_1090120019"
    assert ini.get("ADAPTER", "missing") is None and ini.get("NOPE", "PSID") is None
    assert ini.filename == "secure_host.ini"


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("1", True), ("TRUE", True), ("True", True),
    ("false", False), ("0", False), ("FALSE", False),
])
def test_cr_protection_values(value: str, expected: bool) -> None:
    ini = parse_ini(f"[HCA]\ncr_protection_en = {value}\n", "x.ini")
    assert ini.cr_protection_en is expected


def test_missing_switch_means_no_protection() -> None:
    assert parse_ini("[HCA]\nfoo = 1\n", "a.ini").cr_protection_en is False
    assert parse_ini("", "empty.ini") == FirmwareIni(filename="empty.ini", sections={})
    assert parse_ini("; only comments\n\n# here\n", "c.ini").cr_protection_en is False


def test_crlf_bom_and_blanks() -> None:
    ini = parse_ini("\ufeff[ HCA ]\r\n  cr_protection_en  =  1  \r\n", "w.ini")
    assert ini.cr_protection_en is True and ini.sections["HCA"]["cr_protection_en"] == "1"


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("cr_protection_en = true\n", 1, "a key comes before the first [SECTION]"),
    ("; hi\n\nfoo = 1\n[HCA]\n", 3, "a key comes before the first [SECTION]"),
    ("[HCA]\ncr_protection_en = yes\n", 2, "cr_protection_en must be true, false, 1 or 0, "
                                           "not 'yes'"),
    ("[HCA]\ncr_protection_en =\n", 2, "cr_protection_en must be true, false, 1 or 0, not ''"),
    ("[HCA]\na = 1\nb = 2\nA = 3\n", 4, "duplicate key 'A' in [HCA] (first at line 2)"),
    ("[HCA]\n[IB]\n[hca]\n", 3, "duplicate section [hca] (first at line 1)"),
    ("[HCA]\njust words\n", 2, "malformed line (expected 'key = value', "
                               "'[SECTION]' or a ';' comment)"),
    ("[HCA\n", 1, "malformed section header (expected [NAME] with letters, digits, "
                  "'_', '.' or '-')"),
    ("[]\n", 1, "malformed section header (expected [NAME] with letters, digits, '_', "
                "'.' or '-')"),
    ("[HCA] x\n", 1, "malformed section header (expected [NAME] with letters, "
                     "digits, '_', '.' or '-')"),
    ("[HCA]\n= 1\n", 2, "malformed key (expected letters, digits, '_', '.' or '-')"),
    ("[HCA]\ncr protection = 1\n", 2, "malformed key (expected letters, "
                                      "digits, '_', '.' or '-')"),
    ("[IB]\ncr_protection_en = true\n", 2, "cr_protection_en belongs in [HCA], not in [IB]"),
])
def test_errors_name_file_and_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(IniError) as caught:
        parse_ini(text, "conf/fw.ini")
    assert str(caught.value) == f"conf/fw.ini:{line}: {reason}"
    assert (caught.value.filename, caught.value.line, caught.value.reason) == (
        "conf/fw.ini", line, reason)


def test_errors_never_quote_a_file_that_is_no_ini() -> None:
    # firmware_ini naming some other file (a password file, a key) must not print its
    # lines: until a line is ini syntax, an error quotes nothing from the file.
    for text in ("root:x:0:0:root:/root:/bin/bash\n", "secret = hunter2\n", "[s3cret\n",
                 "[HCA]\npass word = hunter2\n"):
        with pytest.raises(IniError) as caught:
            parse_ini(text, "other")
        for word in ("root", "secret", "hunter2", "s3cret", "pass"):
            assert word not in str(caught.value)


def test_sections_are_read_only() -> None:
    ini = parse_ini(SECURE_HOST_INI, "s.ini")
    with pytest.raises(TypeError):
        ini.sections["HCA"]["cr_protection_en"] = "false"  # type: ignore[index]


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,11}", fullmatch=True).filter(
    lambda name: name.casefold() != "cr_protection_en")
_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@given(st.dictionaries(_names, st.dictionaries(_names, _values, max_size=5), max_size=5))
def test_written_sections_read_back(sections: dict[str, dict[str, str]]) -> None:
    folded_sections = {s.casefold() for s in sections}
    keys_ok = all(len({k.casefold() for k in v}) == len(v) for v in sections.values())
    text = "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
                   for name, values in sections.items())
    if len(folded_sections) != len(sections) or not keys_ok:
        with pytest.raises(IniError):
            parse_ini(text, "h.ini")
        return
    assert parse_ini(text, "h.ini").sections == sections
