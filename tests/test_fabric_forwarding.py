"""Datagrams the lab forwards between two clients (a request to an SM client, its answer
back) over the endpoint's real sockets, while the endpoint busy-polls every client with
recent traffic (issue 14, item 2; docs/fabric.md §8): each request and answer arrives,
in order, and a client that floods the lab does not starve the others. (osmtest's flows
through OpenSM, which forward SA queries and answers by the thousand: tests/test_osmtest.py.)

The default lab, no OpenSM unless a test starts it: sw1 with sm, node1, node2, node3 and
crypto1 on ports 1-5, so the directed route from node1 (or node2) to sm is (1, 1).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from hcasim.api.ibsim_client import IbsimClient
from hcasim.ib import build, mad, smp_attrs
from hcasim.ib.simproto import SimRequest
from hcasim.lab.home import LabHome
from hcasim.testing import LabHandle, running_lab

TO_SM = (1, 1)  # node1 or node2 -> sw1 port 1 -> sm
SM_GUID = 0x0002C90300A1B210
SW_GUID = 0x0002C90200A1B000


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    with running_lab(tmp_path_factory.mktemp("forwarding") / "home") as handle:
        yield handle


@pytest.fixture
def sockname(lab: LabHandle) -> str:
    return LabHome(lab.home).ibsim_sockname


def answer_sm_info(sm: IbsimClient, act_count: int) -> int:
    """Take the SMInfo Get the lab forwarded to the SM client ``sm`` and answer it with
    SMInfo ActCount ``act_count``; return the request's TID."""
    datagram = sm.recv()
    assert datagram is not None, "the forwarded request did not arrive"
    request = mad.DrSmp.decode(SimRequest.decode(datagram).mad)
    assert (request.attr_id, request.method) == (mad.ATTR_SM_INFO, mad.METHOD_GET)
    info = smp_attrs.SmInfo(guid=SM_GUID, sm_key=0, act_count=act_count, priority=1,
                            sm_state=3)
    request.method, request.direction = mad.METHOD_GET_RESP, 1
    request.data = info.encode().ljust(len(request.data), b"\0")
    sm.send(build.sim_request(request.encode()).encode())
    return request.tid


def sm_info_round_trip(requester: IbsimClient, sm: IbsimClient, tid: int) -> None:
    """One SMInfo Get from ``requester`` to the SM client and its answer back."""
    requester.send(build.sim_request(build.smp(mad.ATTR_SM_INFO, path=TO_SM,
                                               tid=tid)).encode())
    forwarded_tid = answer_sm_info(sm, tid)
    assert forwarded_tid & 0xFFFFFFFF == tid  # the lab tags only bits 63-48
    datagram = requester.recv()
    assert datagram is not None, f"the answer to {tid:#x} did not come back"
    reply = mad.DrSmp.decode(SimRequest.decode(datagram).mad)
    assert (reply.method, reply.tid & 0xFFFFFFFF) == (mad.METHOD_GET_RESP, tid)
    assert smp_attrs.SmInfo.decode(reply.data[:smp_attrs.SmInfo.SIZE]).act_count == tid


def test_forwarded_requests_and_answers_one_after_another(sockname: str) -> None:
    with IbsimClient(sockname, "sm", issm=True) as sm, IbsimClient(sockname, "node1") as node1:
        for tid in range(1, 501):
            sm_info_round_trip(node1, sm, tid)


def test_forwarded_requests_in_flight_together_all_arrive(sockname: str) -> None:
    # four requests outstanding at once, as OpenSM keeps SMPs in flight: none is lost
    with IbsimClient(sockname, "sm", issm=True) as sm, IbsimClient(sockname, "node2") as node2:
        for base in range(0, 200, 4):
            tids = range(base + 1, base + 5)
            for tid in tids:
                node2.send(build.sim_request(build.smp(mad.ATTR_SM_INFO, path=TO_SM,
                                                       tid=tid)).encode())
            assert sorted(answer_sm_info(sm, 0) & 0xFFFFFFFF for _ in tids) == list(tids)
            answers = []
            for _ in tids:
                datagram = node2.recv()
                assert datagram is not None
                answers.append(mad.DrSmp.decode(SimRequest.decode(datagram).mad).tid
                               & 0xFFFFFFFF)
            assert sorted(answers) == list(tids)


class Flood(threading.Thread):
    """A client that sends NodeInfo requests in bursts of 32 as fast as it is answered."""

    def __init__(self, sockname: str, host: str) -> None:
        super().__init__(daemon=True)
        self.client = IbsimClient(sockname, host)
        self.stop = threading.Event()
        self.answered = 0

    def run(self) -> None:
        request = build.sim_request(build.smp(mad.ATTR_NODE_INFO, path=(1,))).encode()
        while not self.stop.is_set():
            for _ in range(32):
                self.client.send(request)
            for _ in range(32):
                if self.client.recv(2.0) is None:
                    break  # answers the lab dropped as this client fell behind
                self.answered += 1


def test_a_flooding_client_starves_neither_forwarding_nor_answers(sockname: str) -> None:
    flood = Flood(sockname, "node3")
    try:
        flood.start()
        with IbsimClient(sockname, "sm", issm=True) as sm, \
                IbsimClient(sockname, "node1") as node1, \
                IbsimClient(sockname, "node2") as node2:
            for tid in range(1, 201):
                sm_info_round_trip(node1, sm, tid)
                reply = node2.request(build.smp(mad.ATTR_NODE_INFO, path=(1,)))
                assert reply is not None
                assert smp_attrs.NodeInfo.decode(reply.mad[64:128]).node_guid == SW_GUID
        assert flood.is_alive() and flood.answered > 0
    finally:
        flood.stop.set()
        flood.join(30)
        flood.client.close()
