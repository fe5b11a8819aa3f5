"""Labs from a net file and a lab file; malformed files are refused with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcasim.testing import LabHandle

NET = """\
# two hosts on one switch
Switch 8 "leaf1" # "leaf one"
[1] "alpha"[1]
[2] "beta"[1]

caguid=0x0002c90300001000
Hca 2 "alpha"
[1] "leaf1"[1]

caguid=0x0002c90300002000
Hca 2 "beta"
[1] "leaf1"[2]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lab_from_files(tmp_path: Path) -> None:
    net = write(tmp_path, "lab.net", NET)
    write(tmp_path, "secure.ini", "[HCA]\ncr_protection_en = 1\n")
    labfile = write(
        tmp_path, "lab.toml", '[hosts.beta]\ndevice = "mt4103"\nfirmware_ini = "secure.ini"\n'
    )
    lab = LabHandle(tmp_path / "home")
    lab.up("--topology", str(net), "--lab", str(labfile))
    try:
        hosts = {h["name"]: h["devices"][0] for h in lab.status()["hosts"]}
        assert set(hosts) == {"alpha", "beta"}
        assert hosts["alpha"]["device"] == "/dev/mst/mt4099_pci_cr0"
        assert hosts["alpha"]["secure_host_capable"] is False
        assert hosts["beta"]["device"] == "/dev/mst/mt4103_pci_cr0"
        assert hosts["beta"]["secure_host_capable"] is True
        q = lab.flint("beta", "-d", "/dev/mst/mt4103_pci_cr0", "-qq", "q")
        assert q.returncode == 0
        assert "Device ID:             4103\n" in q.stdout
        assert "GUIDs:                 0002c90300002000 0002c90300002001" in q.stdout
        assert lab.flint("beta", "-d", "/dev/mst/mt4103_pci_cr0", "set_key", "77").returncode == 0
        lab.restart_driver("beta")
        assert lab.device_state("beta")["cr_space_locked"] is True
        # The home keeps its lab; a different topology is refused.
        lab.down()
        other = write(tmp_path, "other.net", NET.replace('"beta"', '"gamma"'))
        r = lab.hcasim("up", "--topology", str(other))
        assert r.returncode == 1 and "already holds a different lab" in r.stderr
        lab.up()  # without --topology the stored lab comes back, key still on flash
        assert lab.device_state("beta")["cr_space_locked"] is True
    finally:
        lab.hcasim("down")


@pytest.mark.parametrize(
    "net, lab, expected",
    [
        (NET.replace('[2] "beta"[1]\n', ""), None, "lab.net:11: "),
        (NET.replace('Hca 2 "beta"', 'Hca 2 "beta'), None, "lab.net:"),
        (NET, '[hosts.zeta]\ndevice = "mt4099"\n', "host 'zeta' is not a CA in"),
        (NET, '[hosts.beta]\ndevice = "mt9999"\n', "unknown device 'mt9999'"),
        (NET, '[hosts.beta]\nfirmware_ini = "bad.ini"\n', "bad.ini:2: "),
        (NET, '[hosts.beta]\nfirmware_ini = "missing.ini"\n', "No such file or directory"),
        (NET, "[hosts.beta\n", "lab.toml: "),
    ],
)
def test_malformed_files_are_refused(
    tmp_path: Path, net: str, lab: str | None, expected: str
) -> None:
    netfile = write(tmp_path, "lab.net", net)
    write(tmp_path, "bad.ini", "[HCA]\ncr_protection_en = maybe\n")
    args = ["up", "--topology", str(netfile)]
    if lab is not None:
        args += ["--lab", str(write(tmp_path, "lab.toml", lab))]
    handle = LabHandle(tmp_path / "home")
    r = handle.hcasim(*args)
    assert r.returncode == 1
    assert r.stderr.startswith("hcasim: ") and expected in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    assert not (tmp_path / "home" / "hcasim.sock").exists()


def test_net_file_with_include(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    write(tmp_path / "parts", "beta.net", NET[NET.index("caguid=0x0002c90300002000") :])
    net = write(
        tmp_path,
        "lab.net",
        NET[: NET.index("caguid=0x0002c90300002000")] + 'include "parts/beta.net"\n',
    )
    lab = LabHandle(tmp_path / "home")
    lab.up("--topology", str(net))
    try:
        assert {h["name"] for h in lab.status()["hosts"]} == {"alpha", "beta"}
        r = lab.run("alpha", "smpquery", "-D", "nodeinfo", "0,1,2")
        assert (
            r.returncode == 0 and "Guid:............................0x0002c90300002000" in r.stdout
        )
        lab.down()
        lab.up()  # the stored lab needs the include no more
        assert lab.device_state("beta")["model"] == "ConnectX-3"
    finally:
        lab.hcasim("down")
