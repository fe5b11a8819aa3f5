"""Differential test: the same SMPs sent to the real ibsim 0.10 and to MadEngine.

Starts Debian's ``/usr/bin/ibsim -s -n`` on a net file written by our own writer, under a
unique ``IBSIM_SOCKNAME`` (abstract unix sockets), speaks its protocol with the layouts of
:mod:`hcasim.ib.simproto`, and compares every reply byte for byte with what the engine
answers for the same datagram.  The differences that remain are deliberate and listed in
:mod:`tests.support.ibsim_diff`.  Skipped when ibsim is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.fabric.engine import DeliveryKind, MadEngine
from hcasim.fabric.fattree import fat_tree
from hcasim.fabric.netfile import format_netfile, parse_netfile
from hcasim.fabric.subnet import Subnet
from hcasim.fabric.topology import NodeKind, PortRef
from hcasim.ib import build, mad
from hcasim.ib.simproto import SIM_MAGIC, SimClientInfo, SimCtl, SimCtlType, SimRequest
from tests.support.ibsim_diff import assert_same_data

IBSIM = shutil.which("ibsim")
pytestmark = pytest.mark.skipif(IBSIM is None, reason="needs the ibsim binary")

TWO_PORT_NET = """\
Switch 8 "sw1" # "MF0;sw1:SX6036/U1" enhanced port 0
[1] "hca1"[1] # "hca1" lid 0 4xQDR
[2] "hca2"[2] # "hca2" lid 0 4xQDR
[3] "sw2"[3]
[5] "sw2"[5]

Switch 8 "sw2"
[1] "hca3"[1] w=1
[3] "sw1"[3]
[5] "sw1"[5]

vendid=0x2c9
devid=0x1003
Hca 2 "hca1" # "hca1 HCA-1"
[1] "sw1"[1] # lid 0 lmc 0 "sw1" lid 0 4xQDR

devid=0x1007
Hca 2 "hca2"
[2] "sw1"[2] # lid 0 lmc 0 "sw1" lid 0 4xQDR

Hca 1 "hca3"
[1] "sw2"[1] w=1
"""


def _abstract(name: str) -> bytes:
    return b"\0" + name.encode() + b"\0"  # ibsim includes the trailing NUL (docs/sources.md §1.1)


class IbsimClient:
    """Just enough of libumad2sim.so: CONNECT, then 288-byte MAD datagrams."""

    def __init__(self, base: str, host: str, ident: int) -> None:
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.ctl.bind(_abstract(f"{base}:ctl{ident}"))
        self.ctl.settimeout(5)
        self.data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.data.bind(_abstract(f"{base}:in{ident}"))
        self.data.settimeout(5)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.ctl.connect(_abstract(f"{base}:ctl"))
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        info = SimClientInfo(id=ident, nodeid=host).encode()
        reply = self.call(SimCtlType.CONNECT, info)
        assert reply.type == SimCtlType.CONNECT, "ibsim refused the client"
        self.clientid = SimClientInfo.decode(reply.data).id
        self.data.connect(_abstract(f"{base}:out{self.clientid}"))

    def call(self, kind: int, payload: bytes = b"") -> SimCtl:
        clientid = getattr(self, "clientid", 0)
        self.ctl.send(SimCtl(SIM_MAGIC, clientid, kind, len(payload), payload).encode())
        return SimCtl.decode(self.ctl.recv(80))

    def mad(self, request: SimRequest) -> SimRequest:
        self.data.send(request.encode())
        return SimRequest.decode(self.data.recv(512))

    def close(self) -> None:
        self.call(SimCtlType.DISCONNECT)
        self.ctl.close()
        self.data.close()


@pytest.fixture(scope="module", params=["fattree", "two-port"])
def lab(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    work = tmp_path_factory.mktemp("ibsim")
    netfile = work / "lab.net"
    if request.param == "fattree":
        netfile.write_text(format_netfile(fat_tree(12, 8)))  # 3 leaves, 4 spines
        host = "H00001"
    else:
        netfile.write_text(TWO_PORT_NET)
        host = "hca1"
    base = f"hcasimtest{os.getpid()}{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, IBSIM_SOCKNAME=base)
    assert IBSIM is not None
    proc = subprocess.Popen([IBSIM, "-s", "-n", str(netfile)], env=env, cwd=work,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        yield base, netfile, host
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _queries(subnet: Subnet, source: PortRef) -> Iterator[tuple[tuple[int, ...], int, int]]:
    """(DR path, attribute, modifier) for every node within 3 hops of ``source``."""
    start = subnet.port(source)
    seen = {start.node.id}
    frontier: list[tuple[tuple[int, ...], object]] = [((), start)]
    while frontier:
        path, port = frontier.pop(0)
        node = port.node  # type: ignore[attr-defined]
        yield path, mad.ATTR_NODE_INFO, 0
        yield path, mad.ATTR_NODE_DESC, 0
        yield path, mad.ATTR_GUID_INFO, 0
        yield path, mad.ATTR_SL2VL_TABLE, 0 if not node.is_switch else (1 << 8 | 2)
        for number in range(0 if node.is_switch else 1, node.num_ports + 1):
            yield path, mad.ATTR_PORT_INFO, number
        if node.is_switch:
            yield path, mad.ATTR_SWITCH_INFO, 0
            yield path, mad.ATTR_LINEAR_FDB, 0
            yield path, mad.ATTR_MULTICAST_FDB, 0
            yield path, mad.ATTR_PKEY_TABLE, 0
            yield path, mad.ATTR_PKEY_TABLE, 1 << 16
            yield path, mad.ATTR_VL_ARB_TABLE, 1 << 16 | 1
            yield path, mad.ATTR_VL_ARB_TABLE, 3 << 16 | 1
        else:
            yield path, mad.ATTR_PKEY_TABLE, 0
            yield path, mad.ATTR_VL_ARB_TABLE, 1 << 16
        if len(path) == 3 or (path and not node.is_switch):
            continue
        for p in node.ports:
            far = p.peer
            if far is not None and far.node.id not in seen:
                seen.add(far.node.id)
                frontier.append(((*path, p.number), far))


def test_replies_match_ibsim(lab: tuple[str, Path, str]) -> None:
    base, netfile, host = lab
    topology = parse_netfile(netfile)
    engine = MadEngine(Subnet(topology))
    source = topology.attach_port(host)
    client = IbsimClient(base, host, 900000 + os.getpid() % 90000)
    compared = 0
    try:
        for path, attr, mod in _queries(engine.subnet, source):
            request = build.sim_request(build.smp(attr, mod, path=path, tid=0x1000 + compared))
            theirs = client.mad(request)
            ours = engine.process(source, request, 0.0)
            assert ours and ours[0].kind is DeliveryKind.REPLY, (path, attr, mod, ours)
            mine = ours[0].request
            # ibsim writes the client index into TID bits 48-63 of requests (docs/sources.md §1.4)
            their_mad = bytearray(theirs.mad)
            their_mad[8:10] = mine.mad[8:10]
            assert (theirs.dlid, theirs.slid, theirs.status, theirs.length) == \
                (mine.dlid, mine.slid, mine.status, mine.length)
            assert their_mad[:64] == mine.mad[:64], (path, attr, mod)
            assert their_mad[128:] == mine.mad[128:], (path, attr, mod)
            target = _target_port(engine.subnet, source, path, attr, mod)
            down = bool(attr == mad.ATTR_PORT_INFO and target is not None
                        and target.peer is None and not target.is_management_port)
            assert_same_data(attr, bytes(their_mad[64:128]), mine.mad[64:128],
                             down_port=down, where=(path, mod))
            compared += 1
    finally:
        client.close()
    assert compared > 40


def _target_port(subnet: Subnet, source: PortRef, path: tuple[int, ...], attr: int,
                 mod: int) -> object:
    from hcasim.fabric.routing import route_dr_out

    route = route_dr_out(subnet, subnet.port(source), len(path), bytes([0, *path]))
    node = route.target.node
    if attr != mad.ATTR_PORT_INFO:
        return None
    number = mod or (0 if node.kind is NodeKind.SWITCH else route.target.number)
    return node.port(number)


def test_set_sequence_matches_ibsim(lab: tuple[str, Path, str]) -> None:
    """PortInfo, SwitchInfo, LFT and P_Key Sets as an SM sends them at bring-up, then
    LID-routed Gets over the configured routes."""
    from dataclasses import replace

    from hcasim.ib import smp_attrs

    base, netfile, host = lab
    topology = parse_netfile(netfile)
    engine = MadEngine(Subnet(topology))
    source = topology.attach_port(host)
    client = IbsimClient(base, host, 800000 + os.getpid() % 90000)
    tid = 0x2000

    def both(mad_bytes: bytes, dlid: int | None = None, gid_prefix_unset: bool = False) -> bytes:
        nonlocal tid
        tid += 1
        blob = bytearray(mad_bytes)
        blob[8:16] = tid.to_bytes(8, "big")
        request = build.sim_request(bytes(blob), dlid)
        theirs = client.mad(request)
        ours = engine.process(source, request, 0.0)
        assert ours and ours[0].kind is DeliveryKind.REPLY, ours
        their_mad = bytearray(theirs.mad)
        their_mad[8:10] = ours[0].request.mad[8:10]
        attr = int.from_bytes(mad_bytes[16:18], "big")
        mine = ours[0].request.mad
        assert their_mad[:64] == mine[:64] and their_mad[128:] == mine[128:]
        assert_same_data(attr, bytes(their_mad[64:128]), mine[64:128],
                         gid_prefix_unset=gid_prefix_unset, where=tid)
        assert (theirs.dlid, theirs.slid, theirs.status) == (
            ours[0].request.dlid, ours[0].request.slid, ours[0].request.status)
        return ours[0].request.mad[64:128]

    try:
        # the SM (on our attach port) takes LID 1; the switch behind it LID 2
        pi = smp_attrs.PortInfo.decode(both(build.smp(mad.ATTR_PORT_INFO, path=()),
                                     gid_prefix_unset=True))
        pi = replace(pi, lid=1, master_sm_lid=1, port_state=0, port_phys_state=0,
                     link_width_enabled=0, link_speed_enabled=0, link_speed_ext_enabled=0)
        both(build.smp(mad.ATTR_PORT_INFO, method=mad.METHOD_SET, path=(), data=pi.encode()))
        sw = smp_attrs.PortInfo.decode(both(build.smp(mad.ATTR_PORT_INFO, 0, path=(1,)),
                                     gid_prefix_unset=True))
        sw = replace(sw, lid=2, master_sm_lid=1, port_state=0, port_phys_state=0,
                     link_width_enabled=0, link_speed_enabled=0, link_speed_ext_enabled=0)
        both(build.smp(mad.ATTR_PORT_INFO, 0, method=mad.METHOD_SET, path=(1,),
                       data=sw.encode()))
        ingress = engine.subnet.port(source).peer
        assert ingress is not None
        lft = bytearray(b"\xff" * 64)
        lft[1], lft[2] = ingress.number, 0
        both(build.smp(mad.ATTR_LINEAR_FDB, 0, method=mad.METHOD_SET, path=(1,),
                       data=bytes(lft)))
        si = smp_attrs.SwitchInfo.decode(both(build.smp(mad.ATTR_SWITCH_INFO, path=(1,))))
        si_set = replace(si, linear_fdb_top=2, life_time_value=18, port_state_change=1,
                         linear_fdb_cap=0)  # LinearFDBCap is read-only
        both(build.smp(mad.ATTR_SWITCH_INFO, method=mad.METHOD_SET, path=(1,),
                       data=si_set.encode()))
        pkeys = smp_attrs.PKeyTable((0xFFFF, 0x8001) + (0,) * 30).encode()
        both(build.smp(mad.ATTR_PKEY_TABLE, method=mad.METHOD_SET, path=(), data=pkeys))
        # Armed then Active on both ends of the first link
        for step in (smp_attrs.PORT_STATE_ARMED, smp_attrs.PORT_STATE_ACTIVE):
            for path, mod in (((), 0), ((1,), ingress.number)):
                cur = smp_attrs.PortInfo.decode(both(build.smp(mad.ATTR_PORT_INFO, mod, path=path),
                                              gid_prefix_unset=bool(path)))
                new = replace(cur, port_state=step, port_phys_state=0, link_width_enabled=0,
                              link_speed_enabled=0, link_speed_ext_enabled=0)
                both(build.smp(mad.ATTR_PORT_INFO, mod, method=mad.METHOD_SET, path=path,
                               data=new.encode()))
        # LID-routed: our own LID (local) and the switch's
        both(build.smp(mad.ATTR_NODE_INFO), dlid=1)
        both(build.smp(mad.ATTR_NODE_INFO), dlid=2)
        both(build.smp(mad.ATTR_PORT_INFO, ingress.number), dlid=2)
    finally:
        client.close()
