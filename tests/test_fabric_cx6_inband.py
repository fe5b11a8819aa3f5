"""The ConnectX-6 Dx in-band, end to end: identification reads and the AccessRegister SMP
(0xFF52) of docs/sources.md §7 against the lab daemon, from another host.

One lab for the module (OpenSM gives the LIDs), its tests in order: CR identification with
the real ``mstmcra``; MLOCK and CRYPTO_OPERATIONAL with the project's own client
(``sim_client``), before and after ``hcasim crypto commission``; what does not fit an SMP,
unknown registers and malformed TLVs; then the real tools: ``mstflint -d lid-N q`` reaches
MLOCK and stops at the flash gateway, and Debian's ``mstreg`` 4.21 crashes before it sends
a register MAD (docs/sources.md §7.2), which is why the register tests use our own client.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.ib import mad, vendor
from hcasim.testing import LabHandle
from tests.support.fabric import lab_with_sm, ok
from tests.support.sim_client import (
    CREDENTIAL_HANDLE,
    CRYPTO_OPERATIONAL,
    IMPORT_KEK_HANDLE,
    MFPA,
    MLOCK,
    REG_GET,
    REG_SET,
    RegisterReply,
    SimClient,
    access_register,
    register_reply,
)

# RegStatus values (docs/sources.md §7.1 table)
OK, UNKNOWN_TLV, REG_NOT_SUPP, CLASS_NOT_SUPP, METHOD_NOT_SUPP, BAD_PARAM, LEN_TOO_SMALL = (
    0, 3, 4, 5, 6, 7, 0x24)
DR_PATH = [1, 5]  # node2 -> sw1 port 5 -> crypto1 (the default lab's net file)
DOC = Path(__file__).resolve().parent.parent / "docs" / "crypto.md"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with lab_with_sm(tmp_path_factory.mktemp("cx6-inband") / "home") as handle:
        yield handle


@pytest.fixture(scope="module")
def lid(lab: LabHandle) -> int:
    r = lab.run("crypto1", "ibstat")  # libumad2sim's sysfs: the LID OpenSM gave crypto1
    match = re.search(r"Base lid: (\d+)", r.stdout)
    assert r.returncode == 0 and match, (r.stdout, r.stderr)
    return int(match.group(1))


def reg(lab: LabHandle, lid: int, register_id: int, method: int, register: bytes = b"",
        host: str = "node2", dr: bool = False, **kw: int) -> RegisterReply:
    raw = access_register(register_id, method, register, path=DR_PATH if dr else None, **kw)
    with SimClient(lab.home, host) as client:
        reply = client.mad(raw, None if dr else lid)
    assert reply is not None and reply.status == 0
    assert reply.mad[3] == mad.METHOD_GET_RESP and reply.mad[12:16] == raw[12:16]
    return register_reply(reply.mad)


def cr_get(lab: LabHandle, lid: int, address: int, count: int = 1) -> tuple[int, bytes]:
    request = vendor.ConfigSpaceAccessMad(
        base_version=1, mgmt_class=vendor.CLASS_MLNX_VENDOR_A, class_version=1,
        method=mad.METHOD_GET, tid=0x5F978201, attr_id=vendor.ATTR_CONFIG_SPACE_ACCESS,
        attr_mod=vendor.pack_cr_modifier(address, count)).encode()
    with SimClient(lab.home, "node2") as client:
        reply = client.mad(request, lid)
    assert reply is not None and reply.status == 0
    return int.from_bytes(reply.mad[4:6], "big"), reply.mad[32:32 + 4 * count]


# -- identification (docs/sources.md §7.3) ---------------------------------------------------------


def test_hw_id_in_band(lab: LabHandle, lid: int) -> None:
    assert ok(lab.run("node2", "mstmcra", f"lid-{lid}", "0xf0014")).stdout == "0x00000212\n"
    assert cr_get(lab, lid, 0xF0014) == (0, bytes.fromhex("00000212"))
    assert cr_get(lab, lid, 0xF0408, 2) == (0, bytes(8))  # cache-replacement words
    # the rest of CR space (the flash gateway) is not modelled: a quick error
    assert cr_get(lab, lid, 0xF0400)[0] == mad.STATUS_INVALID_FIELD
    r = lab.run("node2", "mstmcra", f"lid-{lid}", "0xf0400")
    assert (r.returncode, r.stdout) == (1, f"-E- ibvsmad : cr access read to Lid {lid} failed\n")


# -- AccessRegister --------------------------------------------------------------------------


def test_mlock_get(lab: LabHandle, lid: int) -> None:
    for dr in (False, True):
        r = reg(lab, lid, MLOCK, REG_GET, bytes(16), dr=dr)
        assert (r.mad_status, r.status, r.r, r.register_id, r.method) == (0, OK, 1, MLOCK, 1)
        assert r.data[:16] == bytes(16)  # operation 0: not locked
    assert reg(lab, lid, MLOCK, REG_SET, bytes(16)).status == METHOD_NOT_SUPP


def test_crypto_operational_in_band_follows_the_officer(lab: LabHandle, lid: int,
                                                        tmp_path: Path) -> None:
    # commissioning mode, seen in-band (the register's first 44 bytes)
    assert reg(lab, lid, CRYPTO_OPERATIONAL, REG_GET, bytes(44)).data == bytes(44)
    # an in-band SET cannot commission: the 0x80-byte register does not fit an SMP
    credential, kek = os.urandom(40), os.urandom(32)
    payload = b"\0\0\0\1" + bytes(4) + credential + kek + bytes(0x80 - 0x50)
    for r in (reg(lab, lid, CRYPTO_OPERATIONAL, REG_SET, payload),
              reg(lab, lid, CRYPTO_OPERATIONAL, REG_SET, payload[:44])):
        assert (r.mad_status, r.status, r.data) == (0, LEN_TOO_SMALL, bytes(44))
    assert "commissioning" in ok(lab.hcasim("crypto", "status", "--host", "crypto1")).stdout
    # the officer commissions through the control socket; the state shows in-band
    (tmp_path / "cred.hex").write_text(credential.hex() + "\n")
    (tmp_path / "kek.hex").write_text(kek.hex() + "\n")
    ok(lab.hcasim("crypto", "commission", "--host", "crypto1",
                  "--credential-file", str(tmp_path / "cred.hex"),
                  "--kek-file", str(tmp_path / "kek.hex")))
    for host, dr in (("node2", False), ("node2", True), ("crypto1", False)):
        r = reg(lab, lid, CRYPTO_OPERATIONAL, REG_GET, bytes(44), host=host, dr=dr)
        # wrapped_crypto_operational = 1; kek_size and the credential are WO: read as 0
        assert (r.status, r.data) == (OK, b"\x80\0\0\0" + bytes(40))
    ok(lab.hcasim("crypto", "going-to-commissioning", "--host", "crypto1"))
    assert reg(lab, lid, CRYPTO_OPERATIONAL, REG_GET, bytes(4), reg_bytes=4).data[:4] == (
        b"\xc0\0\0\0")
    ok(lab.hcasim("crypto", "going-to-commissioning", "--host", "crypto1", "--cancel"))
    log = (lab.home / "daemon.log").read_text()
    assert credential.hex() not in log and kek.hex() not in log


def test_the_docs_example_reads_the_state_in_band(lab: LabHandle, lid: int) -> None:
    # docs/crypto.md §10's program, as written but for crypto1's LID; after the commission
    text = DOC.read_text()
    section = text[text.index("## 10. In-band register access"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None and "), 6)" in match.group(1)
    code = match.group(1).replace("), 6)", f"), {lid})")
    assert ok(lab.run("node2", sys.executable, "-c", code)).stdout == "0 80000000\n"


def test_what_does_not_fit_and_unknown_registers(lab: LabHandle, lid: int) -> None:
    for register_id in (IMPORT_KEK_HANDLE, CREDENTIAL_HANDLE):
        for method in (REG_GET, REG_SET):
            for size in (0x300, 44):
                r = reg(lab, lid, register_id, method, bytes(44), reg_bytes=size)
                assert (r.status, r.data) == (LEN_TOO_SMALL, bytes(44))
    for register_id in (MFPA, 0x1234):
        r = reg(lab, lid, register_id, REG_GET, bytes(32))
        assert (r.mad_status, r.status, r.r, r.register_id) == (0, REG_NOT_SUPP, 1, register_id)


def test_malformed_tlvs_never_crash_the_lab(lab: LabHandle, lid: int) -> None:
    for kw, status in (({"op_type": 2}, UNKNOWN_TLV), ({"reg_type": 0}, UNKNOWN_TLV),
                       ({"op_len": 3}, BAD_PARAM), ({"reg_bytes": -4}, BAD_PARAM),
                       ({"reg_class": 2}, CLASS_NOT_SUPP), ({"reg_bytes": 0x1FF8}, LEN_TOO_SMALL)):
        r = reg(lab, lid, MLOCK, REG_GET, bytes(16), **kw)
        assert (r.mad_status, r.status, r.r) == (0, status, 1), kw
    assert reg(lab, lid, CRYPTO_OPERATIONAL, 3, bytes(44)).status == METHOD_NOT_SUPP
    # a Get SMP (mstflint always sends Set): the SMA's "attribute not supported"
    raw = access_register(MLOCK, REG_GET, bytes(16), mad_method=mad.METHOD_GET)
    with SimClient(lab.home, "node2") as client:
        reply = client.mad(raw, lid)
        assert reply is not None and int.from_bytes(reply.mad[4:6], "big") == 0x000C
        junk = raw[:3] + b"\x02" + raw[4:64] + b"\xff" * 192  # every TLV bit set
        reply = client.mad(junk, lid)
        assert reply is not None and register_reply(reply.mad).status == UNKNOWN_TLV
    # still answering, and still the same device
    assert reg(lab, lid, MLOCK, REG_GET, bytes(16)).status == OK
    assert "operational" in ok(lab.hcasim("crypto", "status", "--host", "crypto1")).stdout


def test_nothing_reaches_a_client(lab: LabHandle, lid: int) -> None:
    # a tool attached on crypto1 (where a forwarded MAD would go) and OpenSM see none of it
    with SimClient(lab.home, "crypto1") as host, SimClient(lab.home, "node2") as other:
        for raw in (access_register(MLOCK, REG_GET, bytes(16)),
                    access_register(0x1234, REG_GET),
                    bytes.fromhex("010a010100000000000000035f978201005000000f010014")
                    + bytes(232)):
            assert other.mad(raw, lid) is not None
        host.data.settimeout(0.2)
        with pytest.raises(TimeoutError):
            host.data.recv(512)
    assert ok(lab.run("node2", "sminfo")).stdout.endswith("state 3 SMINFO_MASTER\n")


# -- the real tools --------------------------------------------------------------------------


def test_mstflint_query_reaches_mlock_and_stops_at_the_flash_gateway(lab: LabHandle,
                                                                     lid: int) -> None:
    # docs/sources.md §7.3: 0xf0014, MLOCK (unlocked), 0xf0408/0xf040c = 0, MFPA (REG_NOT_SUPP,
    # sent twice), then the 5th-generation gateway at 0xf0400, which the model refuses
    r = lab.run("node2", "mstflint", "-d", f"lid-{lid}", "q")
    assert (r.returncode, r.stdout) == (1, (
        f"-E- ibvsmad : cr access read to Lid {lid} failed\n"
        f"-E- Cannot open Device: lid-{lid}. Invalid argument. MFE_BAD_PARAMS\n"))


def test_debian_mstreg_crashes_before_sending_a_register_mad(lab: LabHandle, lid: int,
                                                             tmp_path: Path) -> None:
    # docs/sources.md §7.2: its capability check dereferences mf->dinfo, NULL for lid- devices.
    # In tmp_path: a crashed libumad2sim process leaves its fake sysfs (sys-PID/) in its
    # working directory. ulimit -c 0: no core file wherever the suite runs. exec: the
    # signal is mstreg's own; the host's sandbox (bubblewrap, docs/security-model.md) reports
    # its command's death by a signal as 128 + the signal, as a shell does.
    r = lab.run("node2", "sh", "-c",
                'cd "$1" && ulimit -c 0 && exec mstreg -d "$2" --reg_name MLOCK --get',
                "sh", str(tmp_path), f"lid-{lid}")
    assert (r.returncode, r.stdout) == (128 + signal.SIGSEGV, "")
    assert not [f for f in tmp_path.iterdir() if f.name.startswith("core")]
    assert reg(lab, lid, MLOCK, REG_GET, bytes(16)).status == OK  # the device is fine
