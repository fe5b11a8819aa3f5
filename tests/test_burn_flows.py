"""Burning firmware while secure (enable, burn, reboot) and what a burn does to the key."""

from __future__ import annotations

from pathlib import Path

from tests.support.flint import CX3, ENABLED, KEY, SET_KEY_OUTPUT, locked_query_error, rendered


def build(
    lab,
    tmp_path: Path,
    version: str,
    *,
    secure: bool = True,
    device: str = "mt4099",
    psid: str | None = None,
) -> Path:  # type: ignore[no-untyped-def]
    ini = tmp_path / f"fw-{version}.ini"
    ini.write_text("[HCA]\ncr_protection_en = 1\n" if secure else "[HCA]\n")
    out = tmp_path / f"fw-{version}-{device}-{int(secure)}.bin"
    args = [
        "fw",
        "build",
        "--ini",
        str(ini),
        "--fw-version",
        version,
        "--device",
        device,
        "-o",
        str(out),
        "--guid",
        "0x0002c903deadbe00",
    ]
    if psid:
        args += ["--psid", psid]
    r = lab.hcasim(*args)
    assert r.returncode == 0, r.stderr
    return out


BURN_TAIL = (
    "Burn process will not be failsafe. No checks will be performed.\n"
    "ALL flash, including the Invariant Sector will be overwritten.\n"
    "If this process fails, computer may remain in an inoperable state.\n"
    "\n Do you want to continue ? (y/n) [n] : y\n"
    "-W- Skipping ROM section handling (ROM section is empty)\n"
    "\rBurning FS2 FW image without signatures - OK  \n"
    "\rRestoring signature                     - OK\n"
)


def burn_output(current: str, new: str) -> str:
    return (
        f"\n    Current FW version on flash:  {current}\n"
        f"    New FW version:               {new}\n\n" + BURN_TAIL
    )


def query(lab, host="node1") -> str:  # type: ignore[no-untyped-def]
    r = lab.flint(host, "-d", CX3, "-qq", "q")
    assert r.returncode == 0, r.stdout
    return str(r.stdout)


def test_burn_while_secure(lab, tmp_path):  # type: ignore[no-untyped-def]
    img = build(lab, tmp_path, "2.42.5100")
    assert lab.flint("node1", "-d", CX3, "set_key", KEY).stdout == SET_KEY_OUTPUT
    lab.restart_driver("node1")
    # Locked: the burn cannot even open the device.
    r = lab.flint("node1", "-d", CX3, "-i", str(img), "-y", "b")
    assert (r.returncode, r.stdout) == (1, locked_query_error(CX3))
    # 1. temporarily enable, 2. burn, 3. reboot.
    assert lab.flint("node1", "-d", CX3, "hw_access", "enable", KEY).stdout == ENABLED
    r = lab.flint("node1", "-d", CX3, "-i", str(img), "-y", "b")
    assert (r.returncode, r.stdout) == (0, burn_output("2.42.5000", "2.42.5100"))
    assert rendered(r.stdout).endswith(
        "Burning FS2 FW image without signatures - OK  \n"
        "Restoring signature                     - OK\n"
    )
    q = query(lab)
    # New image on flash, old firmware still running until the host reboots.
    assert "FW Version:            2.42.5100\n" in q
    assert "FW Version(Running):   2.42.5000\n" in q
    # The device keeps its own GUIDs, not the image's.
    assert "deadbe" not in q and "0002c90300a1b220" in q
    lab.reboot("node1")
    q = query(lab)
    assert "FW Version:            2.42.5100\n" in q and "Running" not in q
    # mstflint 4.21 burns the image's HwAccessKey tag as it is: the new image has no key,
    # so after the reboot the device is no longer secure (docs/secure-host.md).
    assert "HW Access Key:         Disabled\n" in q
    assert lab.device_state("node1")["cr_space_locked"] is False


def test_burn_then_set_key_again_stays_secure(lab, tmp_path):  # type: ignore[no-untyped-def]
    img = build(lab, tmp_path, "2.42.5100")
    lab.flint("node1", "-d", CX3, "set_key", KEY)
    lab.restart_driver("node1")
    lab.flint("node1", "-d", CX3, "hw_access", "enable", KEY)
    assert lab.flint("node1", "-d", CX3, "-i", str(img), "-y", "b").returncode == 0
    assert lab.flint("node1", "-d", CX3, "set_key", KEY).returncode == 0
    lab.reboot("node1")
    s = lab.device_state("node1")
    assert (s["cr_space_locked"], s["smp_firewall"], s["fw_version"]) == (True, True, "2.42.5100")
    r = lab.flint("node1", "-d", CX3, "hw_access", "enable", KEY)
    assert (r.returncode, r.stdout) == (0, ENABLED)


def test_burn_questions(lab, tmp_path):  # type: ignore[no-untyped-def]
    same = build(lab, tmp_path, "2.42.5000")
    r = lab.flint("node1", "-d", CX3, "-i", str(same), "b", input="n\n")
    assert r.returncode == 7
    assert r.stdout == (
        "\n    Current FW version on flash:  2.42.5000\n"
        "    New FW version:               2.42.5000\n"
        "\n    Note: The new FW version is the same as the current FW version on flash.\n"
        "\n Do you want to continue ? (y/n) [n] : -E- Aborted by user\n"
    )
    r = lab.flint("node1", "-d", CX3, "-i", str(same), "--no", "b")
    assert r.returncode == 7 and r.stdout.endswith("(y/n) [n] : n\n")
    other_psid = build(lab, tmp_path, "2.42.5200", psid="MT_0000000001")
    r = lab.flint("node1", "-d", CX3, "-i", str(other_psid), "-y", "b")
    assert r.returncode == 1
    assert r.stdout.endswith(
        "\n\n-E- PSID mismatch. The PSID on flash (MT_1090120019) differs from the PSID in the "
        "given image (MT_0000000001).\n"
    )
    pro = build(lab, tmp_path, "2.42.5300", device="mt4103", psid="MT_1090120019")
    r = lab.flint("node1", "-d", CX3, "-i", str(pro), "-y", "b")
    assert r.returncode == 1
    assert r.stdout.endswith(
        '-E- Burning FS2 image failed: Device/Image mismatch: Trying to burn a "ConnectX-3Pro" '
        'image on a "ConnectX-3" device.\n\n'
    )
    # Nothing was written by any refused burn.
    assert "FW Version:            2.42.5000\n" in query(lab)


def test_broken_image_is_refused(lab, tmp_path):  # type: ignore[no-untyped-def]
    good = build(lab, tmp_path, "2.42.5100").read_bytes()
    broken = bytearray(good)
    broken[len(broken) // 2] ^= 0xFF
    bad = tmp_path / "broken.bin"
    bad.write_bytes(bytes(broken))
    r = lab.flint("node1", "-d", CX3, "-i", str(bad), "-y", "b")
    assert (r.returncode, r.stdout) == (1, f"-E- Failed to query image: {bad}. Bad CRC.\n")
    assert "FW Version:            2.42.5000\n" in query(lab)


def test_fw_build_refuses_broken_ini(tmp_path):  # type: ignore[no-untyped-def]
    from hcasim.testing import LabHandle

    tool = LabHandle(tmp_path / "unused-home")  # fw build needs no running lab
    out = tmp_path / "fw.bin"
    cases = {
        "cr_protection_en = 1\n": "bad.ini:1: ",
        "[HCA]\ncr_protection_en = maybe\n": "bad.ini:2: ",
        "[HCA]\ncr_protection_en = 1\ncr_protection_en = 0\n": "bad.ini:3: ",
        "[HCA\n": "bad.ini:1: ",
    }
    for text, where in cases.items():
        ini = tmp_path / "bad.ini"
        ini.write_text(text)
        r = tool.hcasim("fw", "build", "--ini", str(ini), "-o", str(out))
        assert r.returncode == 1, text
        assert r.stderr.startswith(f"hcasim: {tmp_path}/{where}"), r.stderr
        assert not out.exists()
    r = tool.hcasim("fw", "build", "--ini", str(tmp_path / "nope.ini"), "-o", str(out))
    assert (r.returncode, r.stderr) == (
        1,
        f"hcasim: {tmp_path / 'nope.ini'}: No such file or directory\n",
    )
    ini.write_text("[HCA]\ncr_protection_en = 1\n")
    r = tool.hcasim("fw", "build", "--ini", str(ini), "--fw-version", "2.x.1", "-o", str(out))
    assert r.returncode == 1 and "bad --fw-version '2.x.1'" in r.stderr
