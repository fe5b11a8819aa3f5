"""flint against the installed mstflint 4.21: same bytes on stdout, same exit status.

Where the real tool's output can be produced on this machine (argument errors, a device
that does not exist, image files), the two are run side by side.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.flint import CX3, mstflint

MISSING = "99:00.0"  # a device that exists neither here nor on the lab host

SAME_OUTPUT = [
    [],
    ["-d", MISSING],
    ["q"],
    ["-d", MISSING, "q"],
    ["-d", MISSING, "-qq", "q"],
    ["--qq", "-d", MISSING, "query"],
    ["--device", MISSING, "q", "full"],
    ["-d", MISSING, "q", "extra"],
    ["q", "full", "extra"],
    ["-d", MISSING, "set_key"],
    ["-d", MISSING, "set_key", "1234"],
    ["-d", MISSING, "set_key", "zz"],
    ["-d", MISSING, "set_key", "1", "2"],
    ["set_key", "12"],
    ["-i", "x", "-d", MISSING, "set_key", "1"],
    ["-i", "x", "set_key", "1"],
    ["-d", MISSING, "hw_access"],
    ["-d", MISSING, "hw_access", "foo"],
    ["-d", MISSING, "hw_access", "enable"],
    ["-d", MISSING, "hw_access", "disable"],
    ["-d", MISSING, "hw_access", "enable", "12", "3"],
    ["hw_access", "enable"],
    ["-i", "x", "hw_access"],
    ["-d", MISSING, "b"],
    ["-i", "x", "b"],
    ["-d", MISSING, "-i", "/nonexistent.bin", "b"],
    ["-i", "/nonexistent.bin", "q"],
    ["-d", MISSING, "v"],
    ["v"],
]


@pytest.fixture(scope="module")
def module_lab(tmp_path_factory):  # type: ignore[no-untyped-def]
    from hcasim.testing import running_lab

    with running_lab(tmp_path_factory.mktemp("flintcmp") / "home") as lab:
        yield lab


@pytest.mark.parametrize("args", SAME_OUTPUT, ids=lambda a: " ".join(a) or "(none)")
def test_same_output_as_mstflint(module_lab, args):  # type: ignore[no-untyped-def]
    real = mstflint(*args)
    ours = module_lab.flint("node1", *args)
    assert (ours.returncode, ours.stdout) == (real.returncode, real.stdout)


@pytest.mark.parametrize(
    "args",
    [["-d", MISSING, "foo"], ["-d", MISSING, "Q"], ["-d", MISSING, "q", "-qq"]],
    ids=" ".join,
)
def test_usage_errors_first_line(module_lab, args):  # type: ignore[no-untyped-def]
    # The usage text that follows is our own; the error line and status are mstflint's.
    real = mstflint(*args)
    ours = module_lab.flint("node1", *args)
    assert ours.returncode == real.returncode == 1
    assert ours.stdout.splitlines()[0] == real.stdout.splitlines()[0]


def test_misaligned_image(module_lab, tmp_path: Path):  # type: ignore[no-untyped-def]
    bad = tmp_path / "odd.bin"
    bad.write_bytes(b"abc")
    for args in (["-i", str(bad), "q"], ["-d", MISSING, "-i", str(bad), "b"]):
        real = mstflint(*args)
        ours = module_lab.flint("node1", *args)
        assert (ours.returncode, ours.stdout) == (real.returncode, real.stdout)


def test_missing_device_on_a_lab_host(module_lab):  # type: ignore[no-untyped-def]
    # node1 has a ConnectX-3, not a Pro: the Pro's device file does not exist there.
    ours = module_lab.flint("node1", "-d", "/dev/mst/mt4103_pci_cr0", "q")
    real = mstflint("-d", MISSING, "q")
    assert ours.returncode == real.returncode == 1
    assert ours.stdout == real.stdout.replace(MISSING, "/dev/mst/mt4103_pci_cr0")


def build(lab, tmp_path: Path, name: str, ini: str, *args: str) -> Path:  # type: ignore[no-untyped-def]
    ini_file = tmp_path / f"{name}.ini"
    ini_file.write_text(ini)
    out = tmp_path / f"{name}.bin"
    r = lab.hcasim("fw", "build", "--ini", str(ini_file), "-o", str(out), *args)
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize("secure", [True, False])
@pytest.mark.parametrize("device", ["mt4099", "mt4103"])
def test_built_images_query_like_mstflint(module_lab, tmp_path, secure, device):  # type: ignore[no-untyped-def]
    ini = "[HCA]\ncr_protection_en = 1\n" if secure else "[HCA]\nhca_header_device_id = 0\n"
    img = build(module_lab, tmp_path, "fw", ini, "--device", device, "--fw-version", "2.42.5100")
    for q in (["q"], ["-qq", "q"]):
        real = mstflint("-i", str(img), *q)
        ours = module_lab.flint("node1", "-i", str(img), *q)
        assert real.returncode == 0, real.stdout
        assert (ours.returncode, ours.stdout) == (0, real.stdout)
    assert ("HW Access Key:         Disabled" in real.stdout) == secure
    v = mstflint("-i", str(img), "v")
    assert v.returncode == 0 and "FW image verification succeeded" in v.stdout
    ours = module_lab.flint("node1", "-i", str(img), "v")
    assert (ours.returncode, ours.stdout) == (0, v.stdout)


def test_device_query_matches_mstflint_on_the_flash_image(module_lab, tmp_path):  # type: ignore[no-untyped-def]
    # Read node1's flash back through our own device path and query it with mstflint.
    from hcasim.lab.store import LabStore

    store = LabStore(module_lab.home / "lab.db")
    try:
        image = store.flash_image("node1/mt4099")
    finally:
        store.close()
    dump = tmp_path / "node1.bin"
    dump.write_bytes(image)
    real = mstflint("-i", str(dump), "-qq", "q")
    ours = module_lab.flint("node1", "-d", CX3, "-qq", "q")
    assert (ours.returncode, ours.stdout) == (0, real.stdout)


@pytest.mark.parametrize("where", [0x40, 0x80, 0x100, -8])
def test_broken_images_fail_like_mstflint(module_lab, tmp_path, where):  # type: ignore[no-untyped-def]
    img = build(module_lab, tmp_path, "fw", "[HCA]\ncr_protection_en = 1\n")
    data = bytearray(img.read_bytes())
    data[where] ^= 0x5A
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    for cmd in (["q"], ["v"]):
        real = mstflint("-i", str(bad), *cmd)
        ours = module_lab.flint("node1", "-i", str(bad), *cmd)
        assert real.returncode != 0
        assert (ours.returncode, ours.stdout) == (real.returncode, real.stdout)
