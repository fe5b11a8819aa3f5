"""The lab's ibsim endpoint over its real sockets: more clients than ibsim's 10, and bad
input refused one case at a time (issue 3, items 1 and 5; the fuzz test does it in bulk).

The default lab, no SM: sw1 (LID 0) with sm, node1, node2, node3 and crypto1 on ports 1-5.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hcasim.api.ibsim_client import IbsimClient, IbsimRefused, abstract_name
from hcasim.ib import build, mad, smp_attrs
from hcasim.ib.simproto import (
    SIM_MAGIC,
    SIM_MAX_CLIENTS,
    SIM_STATUS_TIMEOUT,
    SimClientInfo,
    SimCtl,
    SimCtlType,
)
from hcasim.lab.home import LabHome
from hcasim.testing import LabHandle, running_lab

HOSTS = ("sm", "node1", "node2", "node3", "crypto1")
GUIDS = {"sm": 0x0002C90300A1B210, "node1": 0x0002C90300A1B220, "node2": 0x0002C90300A1B230,
         "node3": 0x0002C90300A1B240, "crypto1": 0x0002C90300A1B250}
SW_GUID = 0x0002C90200A1B000
QUIET = 0.3  # seconds to wait for a reply that must not come


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("endpoint") / "home") as handle:
        yield handle


@pytest.fixture
def sockname(lab: LabHandle) -> str:
    return LabHome(lab.home).ibsim_sockname


def node_info_of(reply: object) -> smp_attrs.NodeInfo:
    assert reply is not None
    return smp_attrs.NodeInfo.decode(reply.mad[64:128])  # type: ignore[attr-defined]


# -- many clients ----------------------------------------------------------------------------


def test_thirty_clients_at_once(sockname: str) -> None:
    clients = [IbsimClient(sockname, HOSTS[i % len(HOSTS)]) for i in range(3 * SIM_MAX_CLIENTS)]
    try:
        assert len({c.index for c in clients}) == len(clients)
        for i, client in enumerate(clients):
            host = HOSTS[i % len(HOSTS)]
            assert client.node == host
            assert smp_attrs.NodeInfo.decode(client.node_info()).node_guid == GUIDS[host]
        for client in clients:  # every client is answered on its own socket
            client.send(build.sim_request(build.smp(mad.ATTR_NODE_INFO, path=(1,))).encode())
        for client in clients:
            reply = client.recv()
            assert reply is not None
            assert smp_attrs.NodeInfo.decode(reply[96:160]).node_guid == SW_GUID
    finally:
        for client in clients:
            client.close()


def test_twenty_real_tools_at_once(lab: LabHandle, tmp_path: Path) -> None:
    env = LabHome(lab.home).fabric_environment(dict(os.environ), "node2")
    procs = [subprocess.Popen(["smpquery", "-D", "nodeinfo", "0,1"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(20)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert b"Guid:............................0x0002c90200a1b000\n" in out


# -- the data channel ------------------------------------------------------------------------


def test_wrong_sizes_get_no_reply_and_break_nothing(sockname: str) -> None:
    good = build.sim_request(build.smp(mad.ATTR_NODE_INFO, path=())).encode()
    with IbsimClient(sockname, "node3") as client:
        for datagram in (b"", good[:1], good[:287], good + b"\0", good + bytes(300)):
            client.send(datagram)
            assert client.recv(QUIET) is None
        assert node_info_of(client.request(build.smp(mad.ATTR_NODE_INFO, path=()))) \
            .node_guid == GUIDS["node3"]


def test_out_of_range_lids_bounce(sockname: str) -> None:
    with IbsimClient(sockname, "node3") as client:
        for dlid in (0, 999, 0xBFFF, 0xC000, 0xFFFE):
            reply = client.request(build.smp(mad.ATTR_NODE_INFO), dlid)
            assert reply is not None and reply.status == SIM_STATUS_TIMEOUT, dlid


def test_out_of_range_values_are_refused(sockname: str) -> None:
    with IbsimClient(sockname, "node3") as client:
        # an LFT block past the table (ibsim writes past its own here, docs/sources.md §2.7)
        for block in (3072, 0xFFFF, 0xFFFFFFFF):
            for method in (mad.METHOD_GET, mad.METHOD_SET):
                reply = client.request(build.smp(mad.ATTR_LINEAR_FDB, block, method=method,
                                                 path=(1,), data=bytes(64)))
                assert reply is not None
                assert int.from_bytes(reply.mad[4:6], "big") == 0x8000 | mad.STATUS_INVALID_FIELD
        # a LID past the unicast range (ibsim accepts LID 49151 into its lids[] table)
        current = client.request(build.smp(mad.ATTR_PORT_INFO, path=()))
        assert current is not None
        info = smp_attrs.PortInfo.decode(current.mad[64:128])
        for lid in (0xC000, 0xFFFF):
            bad = replace(info, lid=lid, port_state=0, port_phys_state=0)
            reply = client.request(build.smp(mad.ATTR_PORT_INFO, method=mad.METHOD_SET,
                                             path=(), data=bad.encode()))
            assert reply is not None
            assert int.from_bytes(reply.mad[4:6], "big") == 0x8000 | mad.STATUS_INVALID_FIELD
            assert smp_attrs.PortInfo.decode(reply.mad[64:128]).lid == info.lid
        # port numbers and table blocks past the node
        for attr, mod in ((mad.ATTR_PORT_INFO, 37), (mad.ATTR_PKEY_TABLE, 40 << 16),
                          (mad.ATTR_PKEY_TABLE, 2), (mad.ATTR_GUID_INFO, 1),
                          (mad.ATTR_VL_ARB_TABLE, 5 << 16 | 1), (mad.ATTR_SL2VL_TABLE, 0x2501),
                          (mad.ATTR_MULTICAST_FDB, 0x1FF)):
            reply = client.request(build.smp(attr, mod, path=(1,)))
            assert reply is not None
            assert int.from_bytes(reply.mad[4:6], "big") == 0x8000 | mad.STATUS_INVALID_FIELD, \
                (hex(attr), hex(mod))


def test_hop_counts_past_63_are_dropped(sockname: str) -> None:
    with IbsimClient(sockname, "node3") as client:
        for hops in (64, 100, 255):
            smp = bytearray(build.smp(mad.ATTR_NODE_INFO, path=(1,)))
            smp[7] = hops
            client.send(build.sim_request(bytes(smp)).encode())
            assert client.recv(QUIET) is None
        smp = bytearray(build.smp(mad.ATTR_NODE_INFO, path=(1,) * 63))
        reply = client.request(bytes(smp))  # 63 hops through a CA: unroutable, bounced
        assert reply is not None and reply.status == SIM_STATUS_TIMEOUT


def test_another_clients_data_socket_cannot_be_used(sockname: str) -> None:
    with IbsimClient(sockname, "node3") as client:
        stranger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            stranger.bind(abstract_name(f"{sockname}:in{client.ident + 1}"))
            datagram = build.sim_request(build.smp(mad.ATTR_NODE_INFO, path=())).encode()
            with pytest.raises(OSError):  # EPERM: the lab's socket is connected to the client
                stranger.sendto(datagram, abstract_name(f"{sockname}:out{client.index}"))
        finally:
            stranger.close()


# -- the control channel ---------------------------------------------------------------------


def test_bad_control_messages_get_no_reply(sockname: str) -> None:
    with IbsimClient(sockname, "node3") as client:
        good = SimCtl(SIM_MAGIC, client.index, SimCtlType.GET_NODEINFO, 0).encode()
        assert client.control_raw(good) is not None
        for bad in (good[:79], good + b"\0", b"",
                    SimCtl(0x12345678, client.index, SimCtlType.GET_NODEINFO, 0).encode(),
                    SimCtl(SIM_MAGIC, 4000, SimCtlType.GET_NODEINFO, 0).encode(),
                    SimCtl(SIM_MAGIC, 0xFFFFFFFF, SimCtlType.DISCONNECT, 0).encode()):
            assert client.control_raw(bad, timeout=QUIET) is None
        unknown = SimCtl(SIM_MAGIC, client.index, 77, 0, b"echo").encode()
        assert client.control_raw(unknown) == unknown  # as ibsim: echoed, not refused


def test_a_client_cannot_be_detached_by_another_socket(sockname: str) -> None:
    with IbsimClient(sockname, "node3") as victim, IbsimClient(sockname, "node2") as other:
        for kind in (SimCtlType.DISCONNECT, SimCtlType.SET_ISSM):
            message = SimCtl(SIM_MAGIC, victim.index, kind, 4, b"\1\0\0\0").encode()
            assert other.control_raw(message, timeout=QUIET) is None
        assert node_info_of(victim.request(build.smp(mad.ATTR_NODE_INFO, path=()))) \
            .node_guid == GUIDS["node3"]
        victim_port = smp_attrs.PortInfo.decode(victim.port_info())
        assert not victim_port.capability_mask & smp_attrs.CAP_IS_SM


def test_connect_refusals(sockname: str) -> None:
    with pytest.raises(IbsimRefused):
        IbsimClient(sockname, "no-such-host")
    # a CONNECT whose data socket does not exist: ibsim exits (IBPANIC); the lab refuses
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        ctl.bind(abstract_name(f"{sockname}:ctl{os.getpid() + 7_000_000}"))
        ctl.connect(abstract_name(f"{sockname}:ctl"))
        ctl.settimeout(5)
        info = SimClientInfo(id=os.getpid() + 7_000_000, nodeid="node3").encode()
        ctl.send(SimCtl(SIM_MAGIC, 0, SimCtlType.CONNECT, len(info), info).encode())
        assert SimCtl.decode(ctl.recv(80)).type == SimCtlType.ERROR
    finally:
        ctl.close()
    with IbsimClient(sockname, "node3", issm=True) as sm_client:  # still serving
        with pytest.raises(IbsimRefused):  # one SM client per node (ibsim.c:224-230)
            IbsimClient(sockname, "node3", issm=True)
        assert sm_client.index >= 0


def test_is_sm_is_cleared_when_the_sm_client_goes(sockname: str) -> None:
    with IbsimClient(sockname, "node1") as watcher:
        with IbsimClient(sockname, "node3", issm=True):
            reply = watcher.request(build.smp(mad.ATTR_PORT_INFO, 1, path=(1, 4)))
            assert reply is not None
            port = smp_attrs.PortInfo.decode(reply.mad[64:128])
            assert port.capability_mask & smp_attrs.CAP_IS_SM
        # closed with DISCONNECT; ibsim keeps the bit (ibsim.c:254-274), the lab clears it
        reply = watcher.request(build.smp(mad.ATTR_PORT_INFO, 1, path=(1, 4)))
        assert reply is not None and reply.mad[4:6] == b"\x80\x00"
        mask = smp_attrs.PortInfo.decode(reply.mad[64:128]).capability_mask
        assert mask and not mask & smp_attrs.CAP_IS_SM
