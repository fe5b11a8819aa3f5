"""Secure Host on the wire, end to end: the real OpenSM, infiniband-diags and mstflint's
in-band tools against the lab daemon (hcasim exec, libumad2sim.so).

One lab for the whole module, its tests in order: OpenSM manages the subnet with an M_Key
at protection level 1; node1 gets a key (the seed's flow), after which its host's SMPs
time out while the firmware keeps answering the wire; then the in-band tools work on
node1 from node2, locked and unlocked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.ib import build, mad, smp_attrs
from hcasim.ib.simproto import SimCtlType
from hcasim.testing import LabHandle, running_lab
from tests.support.fabric import ok
from tests.support.sim_client import SimClient

KEY = "1a1a1a1a2b2b2b2b"
NEW_KEY = "22062011"
M_KEY = 0x1122334455667788
CX3 = "/dev/mst/mt4099_pci_cr0"
SECURE_LINE = ("mlx4_core 0000:01:00.0: HCA operating in secure-host mode. "
               "SMP firewall activated.")
PID = re.compile(r"ibwarn: \[\d+\]")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    tmp = tmp_path_factory.mktemp("secure-fabric")
    conf = tmp / "opensm.conf"
    # opensm takes the M_Key settings from its config file only (opensm.8 m_key,
    # m_key_protection_level, m_key_lease_period); force_log_flush lets hcasim see SUBNET UP.
    conf.write_text(f"force_log_flush TRUE\nm_key {M_KEY:#018x}\n"
                    "m_key_protection_level 1\nm_key_lease_period 0\n")
    with running_lab(tmp / "home") as handle:
        r = handle.hcasim("sm", "start", "--", "-F", str(conf))
        assert r.returncode == 0, r.stderr
        yield handle


def driver(lab: LabHandle, host: str) -> dict:  # type: ignore[type-arg]
    r = lab.hcasim("driver", "show", host, "--json")
    assert r.returncode == 0, r.stderr
    data: dict = json.loads(r.stdout)  # type: ignore[type-arg]
    return data["devices"][0]  # type: ignore[no-any-return]


def lid(lab: LabHandle, host: str) -> int:
    return int(driver(lab, host)["port"]["lid"])


def masked(text: str) -> str:
    return PID.sub("ibwarn: [PID]", text)


# -- before the key ---------------------------------------------------------------------------


def test_driver_show_after_the_sm_sweep(lab: LabHandle) -> None:
    dev = driver(lab, "node1")
    assert dev["secure_host"] is False and dev["log"] == []
    port = dev["port"]
    assert (port["state"], port["sm_lid"]) == ("ACTIVE", 1) and port["lid"] > 1
    # what OpenSM set reached the driver as firmware events (docs/sources.md §9.3)
    assert dev["events"] == [
        f"EQE 0x1d PORT_MNG_CHG subtype 0x15 PORT_INFO port 1 changed_attr 0x5 "
        f"(MSTR_SM_LID,LID) mstr_sm_lid 1 port_lid {port['lid']} mstr_sm_sl 0",
        "EQE 0x09 PORT_CHANGE subtype 0x4 ACTIVE port 1",
    ]
    text = ok(lab.hcasim("driver", "show", "node1")).stdout
    assert text == (
        f"node1: mlx4_0 (ConnectX-3, {CX3})\n"
        "  secure-host mode: off\n"
        f"  port 1: state ACTIVE, LID {port['lid']}, SM LID 1, SM SL 0, "
        "GID prefix 0xfe80000000000000\n"
        "  events (oldest first):\n"
        f"    {dev['events'][0]}\n    {dev['events'][1]}\n"
        "  driver log: empty\n")
    r = lab.hcasim("driver", "show", "crypto1")
    assert r.stdout == "crypto1: no ConnectX-3 (mlx4) device\n"
    r = lab.hcasim("driver", "show", "nosuch")
    assert r.returncode == 1 and r.stderr == "hcasim: unknown host 'nosuch'\n"


def test_sminfo_works_before_the_key(lab: LabHandle) -> None:
    r = ok(lab.run("node1", "sminfo"))
    assert r.stdout.startswith("sminfo: sm lid 1 sm guid 0x2c90300a1b211, activity count ")


# -- the seed: set_key, driver restart, and the SMP firewall -------------------------------------


def test_set_key_and_driver_restart_turn_the_firewall_on(lab: LabHandle) -> None:
    ok(lab.flint("node1", "-d", CX3, "set_key", KEY))
    ok(lab.hcasim("driver", "restart", "node1"))
    dev = driver(lab, "node1")
    assert dev["secure_host"] is True and dev["log"] == [SECURE_LINE]
    state = lab.device_state("node1")
    assert (state["cr_space_locked"], state["smp_firewall"]) == (True, True)
    log = (lab.home / "daemon.log").read_text()
    assert f"node1: {SECURE_LINE}" in log
    assert KEY not in log and KEY.upper() not in log  # never a key in a log
    assert driver(lab, "node2")["secure_host"] is False


def test_seed_sminfo_failure(lab: LabHandle) -> None:
    r = lab.run("node1", "sminfo")
    assert r.returncode == 255
    assert r.stdout == "sminfo: iberror: failed: query\n"
    assert masked(r.stderr) == "ibwarn: [PID] mad_rpc: _do_madrpc failed; dport (Lid 1)\n"
    assert ok(lab.run("node2", "sminfo")).stdout.endswith("state 3 SMINFO_MASTER\n")


@pytest.mark.parametrize(("args", "message"), [
    (("portinfo", "1", "1"), "operation portinfo: port info query failed"),
    (("nodeinfo", "1"), "operation nodeinfo: node info query failed"),
    (("nodedesc", "1"), "operation nodedesc: node info query failed"),
    (("guidinfo", "1"), "operation guidinfo: port info failed"),
    (("NI", "1"), "operation NI: node info query failed"),
])
def test_smpquery_from_the_firewalled_host(lab: LabHandle, args: tuple[str, ...],
                                           message: str) -> None:
    # docs/sources.md §11.3
    r = lab.run("node1", "smpquery", *args)
    assert r.returncode == 255
    assert r.stdout == f"smpquery: iberror: failed: {message}\n"
    assert masked(r.stderr) == "ibwarn: [PID] mad_rpc: _do_madrpc failed; dport (Lid 1)\n"


def test_ibnetdiscover_from_and_of_the_firewalled_host(lab: LabHandle) -> None:
    node1 = lid(lab, "node1")
    # node1's host cannot even learn its own HCA: the zero-hop NodeInfo is dropped too
    r = lab.run("node1", "ibnetdiscover")
    assert r.returncode == 255
    assert r.stdout == "ibnetdiscover: iberror: failed: discover failed\n\n"
    assert masked(r.stderr) == ("ibwarn: [PID] mad_rpc: _do_madrpc failed; dport (DR path "
                                "slid 0; dlid 0; 0)\n./libibnetdisc/ibnetdisc.c:811; Failed to "
                                "resolve self\n")
    # from node2 the whole lab, node1 included: its firmware answers for it
    r = ok(lab.run("node2", "ibnetdiscover"))
    assert f'"H-0002c90300a1b220"[1](2c90300a1b221) \t\t# "node1 HCA-1" lid {node1} 4xQDR' \
        in r.stdout
    for host in ("sm", "node2", "node3", "crypto1"):
        assert f'"{host} HCA-1"' in r.stdout


#: What libibmad prints for a zero-hop directed-route SMP that got no answer.
DR0 = "ibwarn: [PID] mad_rpc: _do_madrpc failed; dport (DR path slid 65535; dlid 65535; 0)\n"


@pytest.mark.parametrize(("args", "message"), [
    (("smpquery", "-D", "portinfo", "0", "1"),
     "smpquery: iberror: failed: operation portinfo: port info query failed"),
    (("smpquery", "-D", "nodeinfo", "0"),
     "smpquery: iberror: failed: operation nodeinfo: node info query failed"),
    (("ibportstate", "-D", "0", "1", "lid", "77"),
     "ibportstate: iberror: failed: smp query nodeinfo failed"),
])
def test_zero_hop_smps_from_the_firewalled_host_are_dropped(
        lab: LabHandle, args: tuple[str, ...], message: str) -> None:
    # issue 9 item 1: the port itself is no exception (docs/fabric.md §2)
    before = driver(lab, "node1")["port"]
    r = lab.run("node1", *args)
    assert (r.returncode, r.stdout, masked(r.stderr)) == (255, message + "\n", DR0)
    assert driver(lab, "node1")["port"] == before
    assert ok(lab.run("node1", "ibstat")).stdout.count(f"Base lid: {before['lid']}\n") == 1


def test_local_queries_and_qp1_keep_working(lab: LabHandle) -> None:
    node1 = lid(lab, "node1")
    r = ok(lab.run("node1", "saquery", "-s"))  # SA: QP1
    assert "EndPortLid..............1\n" in r.stdout
    r = ok(lab.run("node1", "perfquery"))  # PerfMgt: QP1
    assert r.stdout.startswith(f"# Port counters: Lid {node1} port 1")
    r = ok(lab.run("node1", "perfquery", "1", "1"))
    assert r.stdout.startswith("# Port counters: Lid 1 port 1")
    r = ok(lab.run("node1", "ibstat"))  # libumad2sim's sysfs, from the firmware
    assert f"Base lid: {node1}\n" in r.stdout and "SM lid: 1\n" in r.stdout


# -- M_Key and GUID0 ------------------------------------------------------------------------------


def _mkey(text: str) -> int:
    match = re.search(r"^Mkey:\.+(0x[0-9a-f]+)$", text, re.M)
    assert match, text
    return int(match.group(1), 16)


def test_m_key_protection_level_1_and_hidden_from_the_host(lab: LabHandle) -> None:
    node1 = str(lid(lab, "node1"))
    key = f"{M_KEY:#x}"
    # OpenSM set the M_Key; at level 1 a Get without it reads M_Key 0 (IBTA 14.2.4.1)
    assert _mkey(ok(lab.run("node2", "smpquery", "-K", "portinfo", node1)).stdout) == 0
    assert _mkey(ok(lab.run("node2", "smpquery", "-K", "-y", key, "portinfo", node1))
                 .stdout) == M_KEY
    assert _mkey(ok(lab.run("node2", "smpquery", "-K", "-D", "portinfo", "0")).stdout) == 0
    # node1's own host never sees it, even with the key: its SMPs are dropped
    r = lab.run("node1", "smpquery", "-K", "-D", "-y", key, "portinfo", "0")
    assert (r.returncode, masked(r.stderr)) == (255, DR0)
    # nor in what libumad2sim reads for its fake sysfs (GET_PORTINFO on the control channel)
    with SimClient(lab.home, "node1") as host, SimClient(lab.home, "node2") as other:
        assert host.call(SimCtlType.GET_PORTINFO, bytes(1)).data[:8] == bytes(8)
        assert other.call(SimCtlType.GET_PORTINFO, bytes(1)).data[:8] == M_KEY.to_bytes(8, "big")
    # a host without the key cannot Set: dropped, MkeyViolations counted
    before = ok(lab.run("node2", "smpquery", "-y", key, "portinfo", node1)).stdout
    r = lab.run("node2", "ibportstate", "-t", "200", node1, "1", "speed", "1")
    assert r.returncode == 255
    assert r.stdout.endswith("ibportstate: iberror: failed: smp set portinfo failed\n")
    after = ok(lab.run("node2", "smpquery", "-y", key, "portinfo", node1)).stdout
    count = re.compile(r"^MkeyViolations:\.+(\d+)$", re.M)
    assert int(count.findall(after)[0]) == int(count.findall(before)[0]) + 1
    assert re.findall(r"^LinkSpeedEnabled:.*$", after, re.M) == re.findall(
        r"^LinkSpeedEnabled:.*$", before, re.M)


def test_guid0_set_is_refused(lab: LabHandle) -> None:
    node1 = str(lid(lab, "node1"))
    change = smp_attrs.GuidInfo((0x0002C903DEADBEEF, 0x0002C903000000AA) + (0,) * 6).encode()
    with SimClient(lab.home, "node1") as host:
        # from the host itself the firewall drops it, zero hops or LID-routed
        for dlid in (None, int(node1)):
            smp = build.smp(mad.ATTR_GUID_INFO, 0, method=mad.METHOD_SET, m_key=M_KEY,
                            data=change, path=() if dlid is None else None)
            bounced = host.mad(smp, dlid)
            assert bounced is not None and bounced.status == 110
    with SimClient(lab.home, "node2") as other:
        # from the wire, even with the M_Key, GUID0 stays (status 0x001C, IBTA 14.2.5.5)
        smp = build.smp(mad.ATTR_GUID_INFO, 0, method=mad.METHOD_SET, m_key=M_KEY, data=change)
        reply = other.mad(smp, int(node1))
        assert reply is not None and reply.status == 0
        assert int.from_bytes(reply.mad[4:6], "big") == mad.STATUS_INVALID_FIELD
    r = ok(lab.run("node2", "smpquery", "guidinfo", node1))
    assert "   0: 0x0002c90300a1b221 0x0000000000000000\n" in r.stdout


def test_the_host_cannot_set_its_own_m_key(lab: LabHandle) -> None:
    # issue 9 item 1: a zero-hop PortInfo Set with the right M_Key would have changed it
    node1 = str(lid(lab, "node1"))
    data = bytearray(64)
    data[0:8] = (0x6666666666666666).to_bytes(8, "big")
    with SimClient(lab.home, "node1") as host:
        smp = build.smp(mad.ATTR_PORT_INFO, 1, method=mad.METHOD_SET, path=(), m_key=M_KEY,
                        data=bytes(data))
        bounced = host.mad(smp)
        assert bounced is not None and bounced.status == 110
    assert _mkey(ok(lab.run("node2", "smpquery", "-K", "-y", f"{M_KEY:#x}", "portinfo", node1))
                 .stdout) == M_KEY


# -- in-band CR-space access: locked --------------------------------------------------------------


def test_mstmcra_on_a_locked_device(lab: LabHandle) -> None:
    node1 = lid(lab, "node1")
    r = ok(lab.run("node2", "mstmcra", f"lid-{node1}", "0xf0014"))
    assert r.stdout == "0xbad0cafe\n"
    assert ok(lab.run("node2", "mstmcra", f"lid-{lid(lab, 'node2')}", "0xf0014")).stdout \
        == "0x00a001f5\n"


#: What mstflint 4.21's v adds when the device cannot be opened (it then looks for FS4).
VERIFY_FS4 = ("-E- FW image verification failed: No valid FS4 image found.Check the flash "
              "parameters, if specified..AN HCA DEVICE CAN NOT BOOT FROM THIS IMAGE")


def _locked(dev: str, family: str) -> str:
    head = f"Cannot open Device: {dev}." if family == "q" else "Failed to open Device:"
    return (f"-E- {head} HW access is disabled on the device. \n"
            f'-E- Run "flint -d {dev} hw_access enable [key]" in order to enable HW access.\n')


def test_mstflint_in_band_on_a_locked_device(lab: LabHandle, tmp_path: Path) -> None:
    dev = f"lid-{lid(lab, 'node1')}"
    image = tmp_path / "new.bin"
    ini = tmp_path / "secure.ini"
    ini.write_text("[HCA]\ncr_protection_en = true\n")
    ok(lab.hcasim("fw", "build", "--ini", str(ini), "--fw-version", "2.42.5100",
                  "--guid", "0002c90300a1b220", "-o", str(image)))
    writes = (lab.home / "daemon.log").read_text().count("flash of node1/mt4099 written")
    for args, expected in [
        (("q",), _locked(dev, "q")),
        (("v",), _locked(dev, "q") + VERIFY_FS4),
        (("-i", str(image), "-y", "b"), _locked(dev, "q")),
        (("set_key", NEW_KEY), _locked(dev, "access")),
        (("hw_access", "enable", "1234"),
         "-E- Failed to execute command hw_access. Enable HW access failed: The given key is "
         "incorrect\n"),
    ]:
        r = lab.run("node2", "mstflint", "-d", dev, *args)
        assert (r.returncode, r.stdout) == (1, expected), args
    assert ok(lab.run("node2", "mstflint", "-d", dev, "hw_access", "disable")).stdout == \
        "-I- HW access already disabled\n"
    # nothing was written
    assert (lab.home / "daemon.log").read_text().count(
        "flash of node1/mt4099 written") == writes
    state = lab.device_state("node1")
    assert (state["cr_space_locked"], state["key_active"], state["key_on_flash"]) == (
        True, True, True)


# -- in-band: unlocked ----------------------------------------------------------------------------


def test_hw_access_enable_in_band_keeps_the_firewall(lab: LabHandle) -> None:
    dev = f"lid-{lid(lab, 'node1')}"
    r = ok(lab.run("node2", "mstflint", "-d", dev, "hw_access", "enable", KEY))
    assert r.stdout == "-I- The Secure Host was disabled successfully on the device.\n"
    assert ok(lab.run("node2", "mstflint", "-d", dev, "hw_access", "enable", KEY)).stdout \
        == "-I- HW access already enabled\n"
    assert ok(lab.run("node2", "mstmcra", dev, "0xf0014")).stdout == "0x00a001f5\n"
    state = lab.device_state("node1")
    assert (state["cr_space_locked"], state["smp_firewall"]) == (False, True)
    assert lab.run("node1", "sminfo").returncode == 255  # the seed: the firewall stays on


def test_query_and_verify_in_band_match_flint(lab: LabHandle) -> None:
    dev = f"lid-{lid(lab, 'node1')}"
    local = {}
    for command in ("q", "v"):
        local[command] = ok(lab.flint("node1", "-d", CX3, command)).stdout
        assert ok(lab.run("node2", "mstflint", "-d", dev, command)).stdout == local[command]
    assert "HW Access Key:         Enabled\n" in local["q"]
    assert local["v"].endswith("-I- FW image verification succeeded. Image is bootable.\n\n")


def test_burn_and_set_key_in_band(lab: LabHandle, tmp_path: Path) -> None:
    dev = f"lid-{lid(lab, 'node1')}"
    image = tmp_path / "new.bin"
    ini = tmp_path / "secure.ini"
    ini.write_text("[HCA]\ncr_protection_en = true\n")
    ok(lab.hcasim("fw", "build", "--ini", str(ini), "--fw-version", "2.42.5100",
                  "--guid", "0002c90300a1b220", "-o", str(image)))
    log = lab.home / "daemon.log"
    writes = log.read_text().count("flash of node1/mt4099 written")
    r = ok(lab.run("node2", "mstflint", "-d", dev, "-i", str(image), "-y", "b"))
    assert "    Current FW version on flash:  2.42.5000\n" in r.stdout
    assert "    New FW version:               2.42.5100\n" in r.stdout
    assert r.stdout.endswith("\rBurning FS2 FW image without signatures - OK  \n"
                             "\rRestoring signature                     - OK\n")
    # the tool released the flash semaphore: one durable write of the whole image
    assert log.read_text().count("flash of node1/mt4099 written") == writes + 1
    assert "released: their owner detached" not in log.read_text()
    q = ok(lab.flint("node1", "-d", CX3, "q")).stdout
    assert "FW Version:            2.42.5100\nFW Version(Running):   2.42.5000\n" in q
    assert "HW Access Key:         Disabled\n" in q  # the new image carries no key
    # set_key in-band stores the key raw (as on hardware); the firmware accepts it
    r = ok(lab.run("node2", "mstflint", "-d", dev, "set_key", NEW_KEY))
    assert r.stdout.endswith("-I- New key was updated successfully in the flash. In order to "
                             "activate the new key you should reboot or restart the driver.\n")
    ok(lab.hcasim("host", "reboot", "node1"))
    dev_state = driver(lab, "node1")
    assert dev_state["secure_host"] is True and dev_state["log"] == [SECURE_LINE]
    assert ok(lab.run("node2", "mstmcra", dev, "0xf0014")).stdout == "0xbad0cafe\n"
    r = ok(lab.flint("node1", "-d", CX3, "hw_access", "enable", NEW_KEY))
    assert r.stdout == "-I- The Secure Host was disabled successfully on the device.\n"
    assert "FW Version:            2.42.5100\n" in ok(lab.flint("node1", "-d", CX3, "q")).stdout
    assert ok(lab.run("node2", "mstflint", "-d", dev, "hw_access", "disable")).stdout == ""
    assert lab.device_state("node1")["cr_space_locked"] is True
    assert NEW_KEY not in log.read_text()


def test_semaphores_are_released_when_their_client_detaches(lab: LabHandle) -> None:
    node1 = lid(lab, "node1")
    ok(lab.flint("node1", "-d", CX3, "hw_access", "enable", NEW_KEY))
    # a ConfigSpaceAccess Get of 0xf03a0, as mstmcra sends it (docs/sources.md §4.2)
    get = bytes.fromhex("010a010100000000000000035f978201005000000f0103a0") + bytes(232)
    release = get[:3] + b"\x02" + get[4:]  # Set 0xf03a0 = 0
    log = lab.home / "daemon.log"
    with SimClient(lab.home, "node2") as first, SimClient(lab.home, "node3") as second:
        reply = first.mad(get, node1)  # reading takes the flash semaphore
        assert reply is not None and reply.mad[32:36] == b"\0\0\0\0"
        reply = second.mad(get, node1)
        assert reply is not None and reply.mad[32:36] == b"\0\0\0\1"  # busy
        first.close()  # exits without releasing it
        assert "node1: semaphores 0xf03a0 released: their owner detached" in log.read_text()
        reply = second.mad(get, node1)
        assert reply is not None and reply.mad[32:36] == b"\0\0\0\0"
        reply = second.mad(release, node1)
        assert reply is not None and reply.mad[4:6] == b"\0\0"
    assert log.read_text().count("released: their owner detached") == 1
    ok(lab.run("node2", "mstflint", "-d", f"lid-{node1}", "hw_access", "disable"))


def test_vendor_mads_never_reach_the_sm(lab: LabHandle) -> None:
    # the switch has no ConnectX-3 firmware: nobody answers, and OpenSM (on the SM host,
    # the first client there) is never handed the vendor MAD (docs/sources.md §2.10)
    r = lab.run("node2", "mstmcra", "lid-2", "0xf0014")
    assert (r.returncode, r.stdout) == (1, "-E- ibvsmad : cr access read to Lid 2 failed\n")
    assert ok(lab.hcasim("sm", "status")).stdout.startswith("opensm on sm (pid ")
    assert ok(lab.run("node2", "sminfo")).stdout.endswith("state 3 SMINFO_MASTER\n")


def test_lab_start_loads_the_drivers(lab: LabHandle) -> None:
    # last in the module: a daemon restart powers every host on (the SM is gone after it)
    ok(lab.hcasim("down"))
    ok(lab.hcasim("up"))
    dev = driver(lab, "node1")
    assert dev["secure_host"] is True and dev["log"] == [SECURE_LINE]
    assert driver(lab, "node2")["secure_host"] is False
    assert lab.device_state("node1")["cr_space_locked"] is True
