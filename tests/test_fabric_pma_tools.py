"""The performance agent and unimplemented classes, through the real infiniband-diags
tools on the default lab: every counter attribute perfquery asks for is answered, resets
work per attribute, PortSamplesControl shows the sampling state (`perfquery -c`), and a
sample started through the lab shows there; ibqueryerrors finds the port where a relay
error happened, and a class no node implements gets status 0x000C at once instead of a
timeout."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from hcasim.api.ibsim_client import IbsimClient
from hcasim.ib import build, mad, perf
from hcasim.lab.home import LabHome
from hcasim.testing import LabHandle, running_lab


@pytest.fixture(scope="module")
def fabric(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("pma") / "home") as lab:
        # no periodic sweeps (-s 0): counters move only with what a test sends
        r = lab.hcasim("sm", "start", "--", "-s", "0")
        assert r.returncode == 0, r.stderr
        yield lab


def _fields(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):\.+(.*)$", text, re.M))


# (perfquery option, header name, counter fields in order)
_ATTRIBUTES = [
    ("-X", "PortXmitDataSL", [f"XmtDataSL{i}" for i in range(16)]),
    ("-S", "PortRcvDataSL", [f"RcvDataSL{i}" for i in range(16)]),
    ("-D", "PortXmitDiscardDetails", ["PortInactiveDiscards", "PortNeighborMTUDiscards",
                                      "PortSwLifetimeLimitDiscards",
                                      "PortSwHOQLifetimeLimitDiscards"]),
    ("-E", "PortRcvErrorDetails", ["PortLocalPhysicalErrors", "PortMalformedPktErrors",
                                   "PortBufferOverrunErrors", "PortDLIDMappingErrors",
                                   "PortVLMappingErrors", "PortLoopingErrors"]),
    ("--oprcvcounters", "PortOpRcvCounters", ["PortOpRcvPkts", "PortOpRcvData"]),
    ("--flowctlcounters", "PortFlowCtlCounters", ["PortXmitFlowPkts", "PortRcvFlowPkts"]),
    ("--vloppackets", "PortVLOpPackets", [f"PortVLOpPackets{i}" for i in range(16)]),
    ("--vlopdata", "PortVLOpData", [f"PortVLOpData{i}" for i in range(16)]),
    ("--vlxmitflowctlerrors", "PortVLXmitFlowCtlUpdateErrors",
     [f"PortVLXmitFlowCtlUpdateErrors{i}" for i in range(16)]),
    ("--vlxmitcounters", "PortVLXmitWaitCounters", [f"PortVLXmitWait{i}" for i in range(16)]),
]


@pytest.mark.parametrize(("option", "name", "fields"), _ATTRIBUTES,
                         ids=[a[1] for a in _ATTRIBUTES])
def test_perfquery_optional_attributes(fabric: LabHandle, option: str, name: str,
                                       fields: list[str]) -> None:
    # the switch (LID 2), port 1: the link to the sm host
    r = fabric.run("node2", "perfquery", option, "2", "1")
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition("\n")
    assert head == f"# {name} counters: Lid 2 port 1"
    got = _fields(body)
    assert list(got) == ["PortSelect", "CounterSelect", *fields]
    assert got["PortSelect"] == "1" and got["CounterSelect"] == "0x0000"
    assert all(v.isdigit() for k, v in got.items() if k in fields)


def test_per_sl_and_per_vl_counters_follow_the_wire(fabric: LabHandle) -> None:
    # every MAD of the lab is 72 words on SL 0; SMPs travel on VL15, other MADs on VL0
    xmit = _fields(fabric.run("node2", "perfquery", "-X").stdout)
    assert int(xmit["XmtDataSL0"]) > 0 and int(xmit["XmtDataSL0"]) % 72 == 0
    assert all(xmit[f"XmtDataSL{i}"] == "0" for i in range(1, 16))
    vl = _fields(fabric.run("node2", "perfquery", "--vloppackets").stdout)
    assert int(vl["PortVLOpPackets15"]) > 0  # OpenSM's sweep
    assert all(vl[f"PortVLOpPackets{i}"] == "0" for i in range(1, 15))
    # a PerfMgt query from node1 to node2 arrives on VL0
    before = int(vl["PortVLOpPackets0"])
    assert fabric.run("node1", "perfquery", "4", "1").returncode == 0
    after = _fields(fabric.run("node2", "perfquery", "--vloppackets").stdout)
    assert int(after["PortVLOpPackets0"]) >= before + 2  # ClassPortInfo and PortCounters


def test_extended_counters_and_their_reset(fabric: LabHandle) -> None:
    r = fabric.run("node2", "perfquery", "-x")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(
        "# Port extended counters: Lid 4 port 1 (CapMask: 0x1200 CapMask2: 0x0000000)\n")
    got = _fields(r.stdout)
    assert list(got)[2:] == ["PortXmitData", "PortRcvData", "PortXmitPkts", "PortRcvPkts",
                             "PortUnicastXmitPkts", "PortUnicastRcvPkts",
                             "PortMulticastXmitPkts", "PortMulticastRcvPkts"]
    assert int(got["PortXmitData"]) == 72 * int(got["PortXmitPkts"]) > 0
    assert got["PortUnicastXmitPkts"] == got["PortXmitPkts"]
    assert got["PortMulticastXmitPkts"] == got["PortMulticastRcvPkts"] == "0"
    # reset the extended counters only: the node's own port answers locally, so nothing
    # crosses the link between the reset and the next read
    assert fabric.run("node2", "perfquery", "-x", "-R").returncode == 0
    reset = _fields(fabric.run("node2", "perfquery", "-x").stdout)
    assert [reset[k] for k in list(got)[2:]] == ["0"] * 8
    # PortCounters were not cleared by it
    plain = _fields(fabric.run("node2", "perfquery").stdout)
    assert int(plain["PortXmitPkts"]) > 0


def test_class_port_info_is_honest_and_unknown_attributes_fail_at_once(
        fabric: LabHandle) -> None:
    r = fabric.run("node2", "perfquery", "-a", "2")
    assert r.returncode == 0 and r.stdout.startswith(
        "# Port counters: Lid 2 port 255 (CapMask: 0x1300)\n")
    # the congestion-control counters (PortXmitConCtrl) are not implemented: status
    # 0x000C, not a timeout
    r = fabric.run("node2", "perfquery", "--xmitcc", "-d")
    assert r.returncode == 255
    assert r.stderr.endswith("mad_rpc: MAD completed with error status 0xc; dport (Lid 4)\n")


def _samples_control(head: str, port_select: int, status: int = 0, interval: int = 0,
                     tag: str = "0x0000",
                     selects: tuple[str, ...] = ("0x0001", "0x0002", "0x0003", "0x0004",
                                                 "0x0005")) -> str:
    """What perfquery -c prints for a lab PMA (libibmad's dump of every field): Tick 250
    (1 us), 32-bit counters, counters 0-4 taking the mandatory quantities."""
    select_lines = "".join(f"CounterSelect{i}:{'.' * (19 - len(str(i)))}{v}\n"
                           for i, v in enumerate(selects + ("0x0000",) * 10))
    return (
        f"# PortSamplesControl: {head}\n"
        "OpCode:..........................0x00\n"
        f"PortSelect:......................{port_select}\n"
        "Tick:............................0xfa\n"
        "CounterWidth:....................4\n"
        "CounterMask0:....................0x01\n"
        "CounterMasks1to9:................0x01248000\n"
        "CounterMasks10to14:..............0x0000\n"
        "SampleMechanisms:................0\n"
        f"SampleStatus:....................{status}\n"
        "OptionMask:......................0x0000000000000000\n"
        "VendorMask:......................0x0000000000000000\n"
        "SampleStart:.....................0\n"
        f"SampleInterval:..................{interval}\n"
        f"Tag:.............................{tag}\n"
        f"{select_lines}"
        "SamplesOnlyOptionMask:...........0x0000000000000000\n")


@pytest.mark.parametrize(("args", "head", "port_select"), [
    ((), "Lid 4 port 1", 1),  # node2's own port
    (("4", "1"), "Lid 4 port 1", 1),
    (("2",), "Lid 2 port 0", 0),  # the switch's PMA: port 0 until a Set names another
    (("2", "1"), "Lid 2 port 1", 0),
], ids=["local", "lid-port", "switch", "switch-port"])
def test_perfquery_shows_samples_control(fabric: LabHandle, args: tuple[str, ...], head: str,
                                         port_select: int) -> None:
    r = fabric.run("node2", "perfquery", "-c", *args)
    assert (r.returncode, r.stdout, r.stderr) == (0, _samples_control(head, port_select), "")


def test_perfquery_samples_control_of_a_port_elsewhere_is_refused(fabric: LabHandle) -> None:
    # a CA's PMA samples only its own port: status 0x001C, not a timeout
    r = fabric.run("node2", "perfquery", "-c", "4", "2")
    assert (r.returncode, r.stdout, r.stderr) == (
        255, "perfquery: iberror: failed: sampctlquery\n", "")


def test_a_sample_started_through_the_lab_shows_in_perfquery(fabric: LabHandle) -> None:
    # node1's PMA, from a client attached at node1: a sample that starts at the Set and
    # runs for 2^32-1 ticks (71 minutes), of packets and data in a new order
    with IbsimClient(LabHome(fabric.home).ibsim_sockname, "node1") as client:
        lid, _ = client.port()
        selects = (perf.SAMPLE_XMIT_PKTS, perf.SAMPLE_RCV_PKTS, perf.SAMPLE_XMIT_DATA,
                   perf.SAMPLE_RCV_DATA, perf.SAMPLE_XMIT_WAIT) + (0,) * 10

        def set_control(tag: int) -> perf.PortSamplesControl:
            data = perf.PortSamplesControl(port_select=1, sample_interval=0xFFFFFFFF,
                                           tag=tag, counter_select=selects).encode()
            reply = client.request(build.perf(perf.ATTR_PORT_SAMPLES_CONTROL, data,
                                              method=mad.METHOD_SET), lid)
            assert reply is not None and reply.mad[4:6] == b"\0\0"
            return perf.PortSamplesControl.decode(reply.mad[64:])

        control = set_control(0xBEEF)
        assert (control.sample_status, control.tag) == (perf.SAMPLE_STATUS_RUNNING, 0xBEEF)
        # a second Set while it runs changes nothing
        assert set_control(0x0001).tag == 0xBEEF
        reply = client.request(build.perf(perf.ATTR_PORT_SAMPLES_RESULT), lid)
        assert reply is not None and reply.mad[4:6] == b"\0\0"
        result = perf.PortSamplesResult.decode(reply.mad[64:])
        assert (result.tag, result.sample_status, result.counters) == (
            0xBEEF, perf.SAMPLE_STATUS_RUNNING, (0,) * 15)  # nothing until it is done
    r = fabric.run("node2", "perfquery", "-c", str(lid), "1")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == _samples_control(
        f"Lid {lid} port 1", 1, status=2, interval=4294967295, tag="0xbeef",
        selects=("0x0003", "0x0004", "0x0001", "0x0002", "0x0005"))


@pytest.mark.parametrize("lid", [1, 2, 3])
def test_congestion_control_is_refused_with_a_status(fabric: LabHandle, lid: int) -> None:
    # no node of the lab implements class 0x21; an HCA, a switch and OpenSM's own port
    # (OpenSM registers the class but serves no requests) all answer 0x000C
    r = fabric.run("node2", "ibccquery", "-d", "CongestionInfo", str(lid))
    assert r.returncode == 255
    assert r.stderr.endswith(
        f"ibwarn: [{r.stderr.split('[')[2].split(']')[0]}] mad_rpc: MAD completed with error "
        f"status 0xc; dport (Lid {lid})\n")


def test_permissive_lid_is_answered_by_the_neighbour(fabric: LabHandle) -> None:
    r = fabric.run("node2", "smpdump", "0xffff", "0x11")
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[:2] == ["0101", "0224"]  # NodeInfo: base/class version, switch, 36 ports
    assert "".join(words[2:6]) == "0002c90200a1b000"  # the switch's system image GUID


def test_ibqueryerrors_reports_a_relay_error_where_it_happened(fabric: LabHandle) -> None:
    # the first hop names a port node2's HCA lacks: nothing is relayed, nothing counted
    r = fabric.run("node2", "smpquery", "-D", "nodeinfo", "0,2")
    assert r.returncode == 255
    r = fabric.run("node2", "ibqueryerrors")
    assert (r.returncode, r.stdout) == (0, (
        "\n## Summary: 6 nodes checked, 0 bad nodes found\n"
        "##          41 ports checked, 0 ports have errors beyond threshold\n"
        "## Thresholds: \n## Suppressed:\n")), r.stderr
    # the switch cannot relay to its port 40: counted at the port the SMP came in on
    r = fabric.run("node2", "smpquery", "-D", "nodeinfo", "0,1,40")
    assert r.returncode == 255
    r = fabric.run("node2", "ibqueryerrors")
    assert (r.returncode, r.stdout) == (1, (
        'Errors for 0x2c90200a1b000 "sw1 36-port switch"\n'
        "   GUID 0x2c90200a1b000 port ALL: [PortRcvSwitchRelayErrors == 3]\n"
        "   GUID 0x2c90200a1b000 port 3: [PortRcvSwitchRelayErrors == 3]\n"
        "\n## Summary: 6 nodes checked, 1 bad nodes found\n"
        "##          42 ports checked, 1 ports have errors beyond threshold\n"
        "## Thresholds: \n## Suppressed:\n")), r.stderr
    r = fabric.run("node2", "perfquery", "-E", "2", "3")
    assert _fields(r.stdout)["PortDLIDMappingErrors"] == "0"  # a DR relay error, no DLID
    # ibqueryerrors -k clears the error counters; the fabric is clean again
    assert fabric.run("node2", "ibqueryerrors", "-k").returncode == 1
    assert fabric.run("node2", "ibqueryerrors").returncode == 0


def test_ibqueryerrors_clears_data_counters(fabric: LabHandle) -> None:
    # -K: PortCounters' data counters and (ExtendedWidth advertised) PortCountersExtended;
    # switch port 1 leads to the sm host, which a query from node2 never crosses
    r = fabric.run("node2", "ibqueryerrors", "-K")
    assert r.returncode in (0, 1), r.stderr
    for options in (["-x"], []):
        got = _fields(fabric.run("node2", "perfquery", *options, "2", "1").stdout)
        assert [got[k] for k in ("PortXmitData", "PortRcvData", "PortXmitPkts",
                                 "PortRcvPkts")] == ["0"] * 4, options
