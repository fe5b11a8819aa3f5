"""Fault injection (``hcasim fault``) seen through the real tools: ibqueryerrors reports
the injected errors at the port where they happen and exits 1, iblinkinfo shows a failed
link, a silent node times out, and OpenSM drops and re-adds the node behind a link that
fails and comes back."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.testing import LabHandle, running_lab


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    """A lab whose OpenSM does not sweep after bringing the subnet up (``-s 0``): the SA
    answers, and every MAD that moves is one a test sent."""
    with running_lab(tmp_path_factory.mktemp("faults") / "home") as lab:
        r = lab.hcasim("sm", "start", "--", "-s", "0")
        assert r.returncode == 0, r.stderr
        yield lab


def _fields(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):\.+(.*)$", text, re.M))


def _counters(lab: LabHandle, lid: int, port: int, *options: str) -> dict[str, str]:
    r = lab.run("node2", "perfquery", *options, str(lid), str(port))
    assert r.returncode == 0, r.stderr
    return _fields(r.stdout)


def test_symbol_and_receive_errors_reach_ibqueryerrors(quiet: LabHandle) -> None:
    r = quiet.hcasim("fault", "port", "node1", "1", "--symbol", "100")
    assert (r.returncode, r.stdout) == (
        0, "hcasim: node1 port 1: symbol errors 100%, receive errors 0%, drops 0%\n")
    # ClassPortInfo and PortCounters entered node1's port: two symbol errors, both answered
    assert _counters(quiet, 3, 1)["SymbolErrorCounter"] == "2"
    r = quiet.run("node2", "ibqueryerrors")
    assert r.returncode == 1, r.stderr
    # (a CA's errors are listed by port GUID; 8 = the MADs ibqueryerrors' own discovery
    # and queries sent into the port)
    assert r.stdout == (
        'Errors for "node1 HCA-1"\n'
        "   GUID 0x2c90300a1b221 port 1: [SymbolErrorCounter == 8]\n\n"
        "## Summary: 6 nodes checked, 1 bad nodes found\n"
        "##          41 ports checked, 1 ports have errors beyond threshold\n"
        "## Thresholds: \n## Suppressed:\n")
    # every MAD into the port corrupted: discarded, counted, the query times out
    assert quiet.hcasim("fault", "port", "node1", "1", "--rcv-errors", "100").returncode == 0
    r = quiet.run("node2", "smpquery", "nodeinfo", "3")
    assert r.returncode == 255 and "_do_madrpc failed; dport (Lid 3)" in r.stderr
    assert quiet.hcasim("fault", "port", "node1", "1").returncode == 0  # healthy again
    assert quiet.hcasim("fault", "show").stdout == "no faults\n"
    counters = _counters(quiet, 3, 1)
    details = _counters(quiet, 3, 1, "-E")
    assert int(counters["PortRcvErrors"]) >= 1
    assert details["PortLocalPhysicalErrors"] == counters["PortRcvErrors"]
    # ibqueryerrors -k clears the error counters it reports
    assert quiet.run("node2", "ibqueryerrors", "-k").returncode == 1
    assert quiet.run("node2", "ibqueryerrors").returncode == 0


def test_dropped_mads_count_nothing(quiet: LabHandle) -> None:
    # (through the fixture's helpers, as a user's own tests would)
    before = _counters(quiet, 3, 1)
    quiet.port_errors("node1", 1, drop=100)
    r = quiet.run("node2", "smpquery", "nodeinfo", "3")
    assert r.returncode == 255
    quiet.port_errors("node1", 1)
    after = _counters(quiet, 3, 1)
    errors = [k for k in after if k.endswith(("Errors", "ErrorCounter", "Discards"))]
    assert [after[k] for k in errors] == [before[k] for k in errors]


def test_failed_link_in_iblinkinfo_and_ibqueryerrors(quiet: LabHandle) -> None:
    r = quiet.hcasim("fault", "link", "sw1", "4", "down")
    assert (r.returncode, r.stdout) == (0, "hcasim: sw1 port 4: link down\n")
    r = quiet.run("node2", "iblinkinfo")
    assert r.returncode == 0
    down = '           2    4[  ] ==(                Down/ Polling)==>             [  ] "" ( )\n'
    assert down in r.stdout
    assert "node3 HCA-1" not in r.stdout
    assert quiet.hcasim("fault", "show").stdout == (
        "sw1 port 4: link failed\nnode3 port 1: link failed\n")
    # disabling and enabling the port (as an SM could) does not bring it back
    assert quiet.run("node2", "ibportstate", "2", "4", "disable").returncode == 0
    assert quiet.run("node2", "ibportstate", "2", "4", "enable").returncode == 0
    r = quiet.run("node2", "iblinkinfo")
    assert "node3 HCA-1" not in r.stdout
    r = quiet.run("node2", "ibqueryerrors")
    assert (r.returncode, r.stdout) == (1, (
        'Errors for 0x2c90200a1b000 "sw1 36-port switch"\n'
        "   GUID 0x2c90200a1b000 port ALL: [LinkDownedCounter == 1]\n"
        "   GUID 0x2c90200a1b000 port 4: [LinkDownedCounter == 1]\n"
        "\n## Summary: 5 nodes checked, 1 bad nodes found\n"
        "##          41 ports checked, 1 ports have errors beyond threshold\n"
        "## Thresholds: \n## Suppressed:\n")), r.stderr
    # back up: trained (Init), and Active once OpenSM, told by trap 128, swept
    r = quiet.hcasim("fault", "link", "sw1", "4", "up")
    assert (r.returncode, r.stdout) == (0, "hcasim: sw1 port 4: link up\n")
    r = quiet.run("node2", "iblinkinfo")
    assert re.search(r'           2    4\[  \] ==\( 4X\s+10.0 Gbps (Initialize|Active)/'
                     r'  LinkUp\)==>\s+5    1\[  \] "node3 HCA-1"', r.stdout), r.stdout
    assert quiet.run("node2", "ibqueryerrors", "-k").returncode == 1


def test_silent_node_times_out(quiet: LabHandle) -> None:
    r = quiet.hcasim("fault", "node", "node1", "silent")
    assert (r.returncode, r.stdout) == (0, "hcasim: node1: not answering\n")
    assert quiet.hcasim("fault", "show").stdout == "node1: not answering\n"
    r = quiet.run("node2", "smpquery", "nodeinfo", "3")
    assert (r.returncode, r.stdout) == (
        255, "smpquery: iberror: failed: operation nodeinfo: node info query failed\n")
    assert r.stderr.endswith("_do_madrpc failed; dport (Lid 3)\n")
    assert quiet.run("node2", "perfquery", "3").returncode == 255
    quiet.node_answers("node1", True)
    assert quiet.run("node2", "smpquery", "nodeinfo", "3").returncode == 0
    quiet.node_answers("node1", False)
    assert quiet.run("node2", "smpquery", "nodeinfo", "3").returncode == 255
    quiet.node_answers("node1", True)


def test_bad_fault_requests(quiet: LabHandle) -> None:
    r = quiet.hcasim("fault", "link", "nosuch", "1", "down")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "hcasim: no port 1 on node 'nosuch'\n"
    r = quiet.hcasim("fault", "link", "sw1", "0", "down")
    assert (r.returncode, r.stderr) == (1, "hcasim: switch port 0 has no link\n")
    r = quiet.hcasim("fault", "port", "sw1", "2", "--drop", "101")
    assert r.returncode == 2 and "a rate is 0 to 100 percent, not 101" in r.stderr
    r = quiet.hcasim("fault", "node", "nosuch", "silent")
    assert (r.returncode, r.stderr) == (1, "hcasim: no node 'nosuch'\n")


def _log_has(log: Path, pattern: str, after: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if re.search(pattern, log.read_text()[after:]):
            return True
        time.sleep(0.2)
    return False


def test_opensm_drops_and_readds_the_node_behind_a_failed_link(tmp_path: Path) -> None:
    with running_lab(tmp_path / "home") as lab:
        r = lab.hcasim("sm", "start")
        assert r.returncode == 0, r.stderr
        log = Path(r.stdout.rsplit("log ", 1)[1].strip())
        mark = len(log.read_text())
        lab.fail_link("sw1", 4)
        assert _log_has(log, r"Received Generic Notice type:1 num:128 \(Link state change\)",
                        mark)
        assert _log_has(log, r"drop_mgr_remove_port: Removed port with GUID:0x0002c90300a1b241 "
                        r".* of node:node3 HCA-1", mark)
        mark = len(log.read_text())
        lab.restore_link("sw1", 4)
        assert _log_has(log, r"Discovered new port with GUID:0x0002c90300a1b241 .* of node: "
                        r"node3 HCA-1", mark)
        assert _log_has(log, r"SUBNET UP", mark)
        r = lab.run("node2", "iblinkinfo")
        assert re.search(r'           2    4\[  \] ==\( 4X\s+10.0 Gbps Active/  LinkUp\)==>\s+'
                         r'5    1\[  \] "node3 HCA-1"', r.stdout), r.stdout
