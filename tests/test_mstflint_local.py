"""The real mstflint and mstmcra on a host against its own ConnectX-3, by PCI address.

``hcasim exec`` preloads libhcapci.so (preload/hcapci.c, built by ``make preload``), which
shows the tools the host's own PCI functions and answers the ConnectX-3 config-space
gateway from the daemon's device model (docs/secure-host.md, "The real mstflint on the
local path"). One lab for the module, its tests in order: queries and reads, then every
flow of the Secure Host seed with the unmodified Debian mstflint 4.21 typing its key at
the prompt, beside the project's flint; last, the preload's own edges through ctypes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.lab.pci_sysfs import write_pci_sysfs
from hcasim.testing import LabHandle
from tests.support.fabric import lab_with_sm, ok
from tests.support.verbs_clients import build_preload

KEY = "1a1a1a1a2b2b2b2b"
CX3 = "/dev/mst/mt4099_pci_cr0"
PCI = "01:00.0"
SECURE_LINE = ("mlx4_core 0000:01:00.0: HCA operating in secure-host mode. "
               "SMP firewall activated.")
SETTING_KEY = ("\rSetting the HW Key   - OK  \n\rRestoring signature  - OK\n\n"
               "-I- New key was updated successfully in the flash. In order to activate the "
               "new key you should reboot or restart the driver.\n")
#: What mstflint 4.21's v adds when the device cannot be opened (it then looks for FS4).
VERIFY_FS4 = ("-E- FW image verification failed: No valid FS4 image found.Check the flash "
              "parameters, if specified..AN HCA DEVICE CAN NOT BOOT FROM THIS IMAGE")
ENABLED = "-I- The Secure Host was disabled successfully on the device.\n"
#: mstflint's q; {space} is the blank it leaves after the last GUID.
QUERY = """Image type:            FS2
FW Version:            2.42.5000
FW Release Date:       5.9.2017
Device ID:             4099
HW Access Key:         {key}
Description:           Node             Port1            Port2            Sys image
GUIDs:                 0002c90300a1b220 0002c90300a1b221 0002c90300a1b222 0002c90300a1b223{space}
MACs:                                       0002c9a1b221     0002c9a1b222
VSD:                   hcasim simulated HCA
PSID:                  MT_1090120019
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    build_preload()  # make preload builds libhcapci.so beside the verbs preload
    tmp = tmp_path_factory.mktemp("pci-tools")
    with lab_with_sm(tmp / "home") as handle:
        yield handle


def mstflint(lab: LabHandle, *args: str, host: str = "node1",
             input: str | None = None) -> subprocess.CompletedProcess[str]:
    return lab.run(host, "mstflint", "-d", PCI, *args, input=input)


def locked(dev: str, head: str) -> str:
    return (f"-E- {head} HW access is disabled on the device. \n"
            f'-E- Run "flint -d {dev} hw_access enable [key]" in order to enable HW access.\n')


def secure_host(lab: LabHandle, host: str = "node1") -> bool:
    r = ok(lab.hcasim("driver", "show", host, "--json"))
    return bool(json.loads(r.stdout)["devices"][0]["secure_host"])


def image(lab: LabHandle, tmp: Path, version: str) -> Path:
    out = tmp / f"fw-{version}.bin"
    ini = tmp / "secure.ini"
    ini.write_text("[HCA]\ncr_protection_en = true\n")
    ok(lab.hcasim("fw", "build", "--ini", str(ini), "--fw-version", version,
                  "--guid", "0002c90300a1b220", "-o", str(out)))
    return out


# -- the host's own device, by PCI address --------------------------------------------------------


def test_query_in_both_address_forms_matches_flint(lab: LabHandle) -> None:
    for name in (PCI, "0000:01:00.0"):
        r = lab.run("node1", "mstflint", "-d", name, "q")
        expected = QUERY.format(key="Disabled", space=" ")
        assert (r.returncode, r.stdout, r.stderr) == (0, expected, "")
    for command in ("q", "v"):
        assert ok(mstflint(lab, command)).stdout == ok(lab.flint("node1", "-d", CX3,
                                                                 command)).stdout


def test_mstmcra_reads_the_hardware_id(lab: LabHandle) -> None:
    r = lab.run("node1", "mstmcra", PCI, "0xf0014")
    assert (r.returncode, r.stdout, r.stderr) == (0, "0x00a001f5\n", "")
    # a ConnectX-3 Pro on node3: its own id, through its own host's sysfs
    assert ok(lab.run("node3", "mstmcra", PCI, "0xf0014")).stdout == "0x00a001f7\n"


def test_only_the_hosts_own_devices_appear(lab: LabHandle) -> None:
    for host, name in (("node1", "02:00.0"), ("node1", "0000:00:00.0"), ("crypto1", PCI)):
        r = lab.run(host, "mstflint", "-d", name, "q")
        assert (r.returncode, r.stdout) == (
            1, f"-E- Cannot open Device: {name}. No such file or directory. MFE_CR_ERROR\n")
    r = lab.run("crypto1", "mstmcra", PCI, "0xf0014")
    assert r.returncode != 0 and r.stdout == ""


# -- the seed's flows, locally ------------------------------------------------------------------


def test_set_key_at_the_prompt_and_driver_restart(lab: LabHandle) -> None:
    assert lab.run("node1", "sminfo").returncode == 0
    r = mstflint(lab, "set_key", input=f"{KEY}\n{KEY}\n")
    assert (r.returncode, r.stdout) == (
        0, "Enter Key : " + "*" * 16 + "\nVerify Key : " + "*" * 16 + "\n" + SETTING_KEY)
    assert secure_host(lab) is False  # not before the driver restarts
    ok(lab.hcasim("driver", "restart", "node1"))
    assert secure_host(lab) is True
    state = lab.device_state("node1")
    assert (state["cr_space_locked"], state["smp_firewall"]) == (True, True)
    assert KEY not in (lab.home / "daemon.log").read_text()  # the typed key is never logged


def test_a_locked_device_fails_as_locked_hardware_does(lab: LabHandle, tmp_path: Path) -> None:
    # the seed's check: -qq q names the locked device and how to unlock it
    for name in (PCI, "0000:01:00.0"):
        r = lab.run("node1", "mstflint", "-d", name, "-qq", "q")
        assert (r.returncode, r.stdout) == (1, locked(name, f"Cannot open Device: {name}."))
    assert ok(lab.run("node1", "mstmcra", PCI, "0xf0014")).stdout == "0xbad0cafe\n"
    new = image(lab, tmp_path, "2.42.5100")
    for args, expected in [
        (("v",), locked(PCI, f"Cannot open Device: {PCI}.") + VERIFY_FS4),
        (("-i", str(new), "-y", "b"), locked(PCI, f"Cannot open Device: {PCI}.")),
        (("set_key", "22062011"), locked(PCI, "Failed to open Device:")),
    ]:
        r = mstflint(lab, *args)
        assert (r.returncode, r.stdout) == (1, expected), args
    assert ok(mstflint(lab, "hw_access", "disable")).stdout == "-I- HW access already disabled\n"
    r = mstflint(lab, "hw_access", "enable", input="1234\n")
    assert (r.returncode, r.stdout) == (
        1, "Enter Key : ****\n-E- Failed to execute command hw_access. Enable HW access "
        "failed: The given key is incorrect\n")
    assert lab.device_state("node1")["cr_space_locked"] is True
    assert lab.run("node1", "sminfo").returncode == 255  # the SMP firewall


def test_hw_access_enable_and_disable(lab: LabHandle) -> None:
    r = mstflint(lab, "hw_access", "enable", input=f"{KEY}\n")
    assert (r.returncode, r.stdout) == (0, "Enter Key : " + "*" * 16 + "\n" + ENABLED)
    # the temporary enable leaves the SMP firewall on
    assert lab.run("node1", "sminfo").returncode == 255
    assert ok(lab.run("node1", "mstmcra", PCI, "0xf0014")).stdout == "0x00a001f5\n"
    assert ok(mstflint(lab, "-qq", "q")).returncode == 0
    assert ok(mstflint(lab, "q")).stdout == QUERY.format(key="Enabled", space=" ")
    assert ok(mstflint(lab, "hw_access", "disable")).stdout == ""
    assert lab.device_state("node1")["cr_space_locked"] is True
    # the project's flint sees the same device, locked, as the real tool left it
    r = lab.flint("node1", "-d", CX3, "-qq", "q")
    assert (r.returncode, r.stdout) == (1, locked(CX3, f"Cannot open Device: {CX3}."))


def test_burn_while_secure_then_reboot(lab: LabHandle, tmp_path: Path) -> None:
    new = image(lab, tmp_path, "2.42.5100")
    ok(mstflint(lab, "hw_access", "enable", input=f"{KEY}\n"))
    r = ok(mstflint(lab, "-i", str(new), "-y", "b"))
    assert r.stdout == (
        "\n    Current FW version on flash:  2.42.5000\n"
        "    New FW version:               2.42.5100\n\n"
        "Burn process will not be failsafe. No checks will be performed.\n"
        "ALL flash, including the Invariant Sector will be overwritten.\n"
        "If this process fails, computer may remain in an inoperable state.\n\n"
        " Do you want to continue ? (y/n) [n] : y\n"
        "-W- Skipping ROM section handling (ROM section is empty)\n"
        "\rBurning FS2 FW image without signatures - OK  \n"
        "\rRestoring signature                     - OK\n")
    q = ok(lab.flint("node1", "-d", CX3, "q")).stdout
    assert "FW Version:            2.42.5100\nFW Version(Running):   2.42.5000\n" in q
    ok(lab.hcasim("host", "reboot", "node1"))
    q = ok(mstflint(lab, "q")).stdout
    assert "FW Version:            2.42.5100\n" in q
    # the burnt image carries no key: the host comes up insecure, as the model's flash says
    assert "HW Access Key:         Disabled\n" in q
    assert secure_host(lab) is False


def test_permanently_disabling_secure_mode(lab: LabHandle) -> None:
    # the key again (given on the command line this time), the driver restarted: secure
    r = ok(mstflint(lab, "set_key", KEY))
    assert r.stdout == SETTING_KEY
    ok(lab.hcasim("driver", "restart", "node1"))
    assert secure_host(lab) is True
    # the seed: temporarily disable secure mode, reset the key to zero, reboot
    ok(mstflint(lab, "hw_access", "enable", input=f"{KEY}\n"))
    r = mstflint(lab, "set_key", input="0\n0\n")
    assert (r.returncode, r.stdout) == (0, "Enter Key : *\nVerify Key : *\n" + SETTING_KEY)
    ok(lab.hcasim("host", "reboot", "node1"))
    assert secure_host(lab) is False
    state = lab.device_state("node1")
    assert (state["cr_space_locked"], state["smp_firewall"]) == (False, False)
    assert ok(mstflint(lab, "-qq", "q")).returncode == 0
    assert ok(lab.run("node1", "sminfo")).returncode == 0
    assert KEY not in (lab.home / "daemon.log").read_text()


# -- the preload's own edges ----------------------------------------------------------------------

#: Run on node1 under the preload: the gateway and path calls mstflint makes, through
#: ctypes, reporting each result and errno as JSON.
PROBE = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.pread64.argtypes = libc.pwrite64.argtypes = [
    ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64]
libc.pread64.restype = libc.pwrite64.restype = ctypes.c_ssize_t
out = {}
def call(name, rc):
    out[name] = [rc, os.strerror(ctypes.get_errno()) if rc < 0 else ""]
    ctypes.set_errno(0)
    return rc
config = b"/sys/bus/pci/devices/0000:01:00.0/config"
fd = call("open", libc.open64(config, os.O_RDWR))
word = ctypes.c_uint32(0xF0014)
call("write_addr", libc.pwrite64(fd, ctypes.byref(word), 4, 0x58))
got = ctypes.c_uint32(0)
call("read_addr", libc.pread64(fd, ctypes.byref(got), 4, 0x58)); out["addr"] = got.value
call("read_data", libc.pread64(fd, ctypes.byref(got), 4, 0x5C)); out["data"] = got.value
header = ctypes.c_uint32(0)
call("read_header", libc.pread64(fd, ctypes.byref(header), 4, 0)); out["header"] = header.value
call("write_header", libc.pwrite64(fd, ctypes.byref(word), 4, 0))
bad = ctypes.c_uint32(0xF0015)  # not dword aligned: the device refuses
call("write_bad_addr", libc.pwrite64(fd, ctypes.byref(bad), 4, 0x58))
call("read_refused", libc.pread64(fd, ctypes.byref(got), 4, 0x5C))
call("write_refused", libc.pwrite64(fd, ctypes.byref(word), 4, 0x5C))
fds = [libc.open64(config, os.O_RDWR) for _ in range(16)]
call("open_too_many", fds[-1])
call("close", libc.close(fds[0]))
call("open_after_close", libc.open64(config, os.O_RDWR))
call("long_path", libc.open64(b"/sys/bus/pci/devices/" + b"x" * 5000, os.O_RDONLY))
call("fopen_long", -1 if not libc.fopen(b"/sys/bus/pci/devices/" + b"x" * 5000, b"r") else 0)
call("fopen64_long", -1 if not libc.fopen64(b"/sys/bus/pci/devices/" + b"y" * 5000, b"r") else 0)
call("opendir_long", -1 if not libc.opendir(b"/sys/bus/pci/devices/" + b"z" * 5000) else 0)
call("mkdir_long", libc.mkdir(b"/tmp/mstflint_lockfiles/" + b"x" * 5000, 0o755))
call("not_prefix", libc.open64(b"/sys/bus/pci/devicesX/none", os.O_RDONLY))
os.makedirs(os.environ["HCASIM_PCI_ROOT"] + "/sys/bus/pci/devices/0000:07:00.0", exist_ok=True)
open(os.environ["HCASIM_PCI_ROOT"] + "/sys/bus/pci/devices/0000:07:00.0/config", "wb").close()
libc.close(fds[1])  # a free slot, so that only the daemon's refusal can fail the open
call("unknown_device", libc.open64(b"/sys/bus/pci/devices/0000:07:00.0/config", os.O_RDWR))
json.dump(out, sys.stdout)
"""


def test_the_preload_gateway_and_its_refusals(lab: LabHandle) -> None:
    r = ok(lab.run("node1", sys.executable, "-c", PROBE))
    out = json.loads(r.stdout)
    assert out.pop("open")[0] >= 0
    assert (out.pop("addr"), out.pop("data"), out.pop("header")) == (0xF0014, 0xA001F5,
                                                                     0x100315B3)
    assert out == {
        "write_addr": [4, ""], "read_addr": [4, ""], "read_data": [4, ""],
        "read_header": [4, ""],
        # the header is read-only; only the gateway registers take writes
        "write_header": [-1, "Bad file descriptor"],
        "write_bad_addr": [4, ""],
        "read_refused": [-1, "Invalid argument"], "write_refused": [-1, "Invalid argument"],
        "open_too_many": [-1, "Too many open files"],
        "close": [0, ""], "open_after_close": [out["open_after_close"][0], ""],
        "long_path": [-1, "File name too long"], "fopen_long": [-1, "File name too long"],
        "fopen64_long": [-1, "File name too long"], "opendir_long": [-1, "File name too long"],
        "mkdir_long": [-1, "File name too long"],
        "not_prefix": [-1, "No such file or directory"],
        "unknown_device": [-1, "No such file or directory"],
    }
    assert out["open_after_close"][0] >= 0


def test_the_preload_without_a_lab_host(lab: LabHandle) -> None:
    # HCASIM_HOST missing: the config file opens nothing (ENODEV from the daemon client)
    r = ok(lab.run("node1", "env", "-u", "HCASIM_HOST", sys.executable, "-c",
                   "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                   "rc = libc.open64(b'/sys/bus/pci/devices/0000:01:00.0/config', 2)\n"
                   "print(rc, os.strerror(ctypes.get_errno()))\n"))
    assert r.stdout == "-1 No such device\n"
    # outside a lab (no HCASIM_PCI_ROOT) the preload changes no path
    r = ok(lab.run("node1", "env", "-u", "HCASIM_PCI_ROOT", sys.executable, "-c",
                   "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                   "rc = libc.open64(b'/sys/bus/pci/devices/hcasim-none/config', 0)\n"
                   "print(rc, os.strerror(ctypes.get_errno()))\n"))
    assert r.stdout == "-1 No such file or directory\n"


#: A daemon that answers wrongly, for the preload's checks of what comes back: served from a
#: thread of the very process the preload runs in (ctypes lets the thread run during a call).
FAKE_DAEMON = r"""
import ctypes, json, os, socket, struct, sys, threading
path = os.environ["HCASIM_SOCKET"]
replies = {"hello": [{"host": "h"}],
           "open": [{"handle": 7}, {"handle": "h" * 200}, {"handle": "dev"}],
           "cr_read": [{"values": 5}, {"values": [5, 6]}]}
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(1)
def serve():
    conn, _ = server.accept()
    while True:
        header = conn.recv(4, socket.MSG_WAITALL)
        if len(header) < 4:
            return
        request = json.loads(conn.recv(struct.unpack(">I", header)[0], socket.MSG_WAITALL))
        body = json.dumps({"ok": True, **replies[request["op"]].pop(0)}).encode()
        conn.sendall(struct.pack(">I", len(body)) + body)
threading.Thread(target=serve, daemon=True).start()
libc = ctypes.CDLL(None, use_errno=True)
libc.pread64.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64]
libc.pread64.restype = ctypes.c_ssize_t
config = b"/sys/bus/pci/devices/0000:01:00.0/config"
def result(rc):
    return [rc, os.strerror(ctypes.get_errno()) if rc < 0 else ""]
out = [result(libc.open64(config, os.O_RDWR)), result(libc.open64(config, os.O_RDWR))]
fd = libc.open64(config, os.O_RDWR)
value = ctypes.c_uint32(0)
out += [result(libc.pread64(fd, ctypes.byref(value), 4, 0x5C)) for _ in range(2)]
print(json.dumps(out))
"""


def test_the_preload_checks_the_daemons_replies(tmp_path: Path) -> None:
    function = tmp_path / "root" / "sys/bus/pci/devices/0000:01:00.0"
    function.mkdir(parents=True)
    (function / "config").write_bytes(bytes(256))
    env = {"PATH": "/usr/bin:/bin", "LD_PRELOAD": str(build_preload().parent / "libhcapci.so"),
           "HCASIM_PCI_ROOT": str(tmp_path / "root"), "HCASIM_HOST": "h",
           "HCASIM_SOCKET": str(tmp_path / "fake.sock")}
    r = subprocess.run([sys.executable, "-c", FAKE_DAEMON], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # a handle that is not a string, one too long to keep; dword lists that are not [N]
    assert json.loads(r.stdout) == [[-1, "Input/output error"]] * 4


def test_the_sysfs_tree_holds_exactly_the_hosts_functions(tmp_path: Path) -> None:
    devices = tmp_path / "sys/bus/pci/devices"
    write_pci_sysfs(tmp_path, [{"address": "0000:01:00.0", "device_id": 4099},
                               {"address": "0000:02:00.0", "device_id": 4103}])
    assert sorted(p.name for p in devices.iterdir()) == ["0000:01:00.0", "0000:02:00.0"]
    function = devices / "0000:02:00.0"
    assert (function / "vendor").read_text() == "0x15b3\n"
    assert (function / "device").read_text() == "0x1007\n"
    config = (function / "config").read_bytes()
    assert (len(config), config[:4], config[0x34]) == (256, bytes.fromhex("b3150710"), 0)
    write_pci_sysfs(tmp_path, [{"address": "0000:01:00.0", "device_id": 4099}])  # one left
    assert [p.name for p in devices.iterdir()] == ["0000:01:00.0"]
    for bad in ("01:00.0", "0000:01:00.0/../x", 7):
        with pytest.raises(ValueError):
            write_pci_sysfs(tmp_path, [{"address": bad, "device_id": 4099}])
