"""Bad input never takes the lab down (issue 3, item 5): mutated MADs and control messages
through the real sockets of a running lab daemon.

Two labs, each over its ibsim endpoint with :class:`hcasim.api.ibsim_client.IbsimClient`:

* **no SM** (40,000 MADs): every SMA attribute Get and Set, LID-routed and directed route,
  PerfMgt, vendor, SA, traps and responses, each mutated (bit flips, edge values in the
  header, attribute modifiers past every table, hop counts past 63, LIDs out of range,
  wrong sizes, garbage), so Sets reach every validation path; afterwards the lab still
  answers NodeInfo and PortInfo as it should.
* **OpenSM MASTER** (60,000 MADs, 5,000 control messages, a flood): OpenSM (``hcasim sm
  start``) manages the lab with an M_Key at protection level 1, so the mutated Sets are M_Key
  violations (the SMA drops them and raises trap 256); control messages carry random types,
  client indexes (OpenSM's among them), sizes and magics; one client floods the endpoint
  without reading.  Afterwards ``sminfo`` from another host still reports the same OpenSM
  as MASTER, a new client attaches and reads NodeInfo, and the daemon logged no internal
  error.

SMInfo Sets are not sent to the SM's port while OpenSM runs: with the right SM_Key they are
how a real SM hands over or is told to stand by (IBTA 14.4), so they are not bad input.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.api.ibsim_client import IbsimClient, abstract_name
from hcasim.ib import build, mad, smp_attrs
from hcasim.ib.simproto import SIM_MAGIC, SimCtl, SimCtlType
from hcasim.lab.home import LabHome
from hcasim.testing import LabHandle, running_lab
from tests.support.mad_fuzz import corpus, mutate

M_KEY = 0x0BADC0DE5EED1234
SEED = 20261121
SW_GUID = 0x0002C90200A1B000
NODE3_GUID = 0x0002C90300A1B240
NO_SM_MADS = 40_000
SM_MADS = 60_000
CONTROL_MESSAGES = 5_000
FLOOD = 20_000


def blast(client: IbsimClient, datagrams: Iterator[bytes], window: int = 48) -> tuple[int, int]:
    """Send every datagram, reading whatever comes back between bursts; (sent, received)."""
    sent = received = 0
    client.data.setblocking(False)
    try:
        burst: list[bytes] = []
        for datagram in datagrams:
            burst.append(datagram)
            if len(burst) == window:
                sent += _send_burst(client.data, burst)
                received += _drain(client.data, 0.002)
                burst.clear()
        sent += _send_burst(client.data, burst)
        received += _drain(client.data, 0.2)
    finally:
        client.data.settimeout(client.timeout)
    return sent, received


def _send_burst(sock: socket.socket, burst: list[bytes]) -> int:
    for datagram in burst:
        while True:
            try:
                sock.send(datagram)
                break
            except BlockingIOError:
                _drain(sock, 0.001)
    return len(burst)


def _drain(sock: socket.socket, quiet: float) -> int:
    """Read datagrams until none arrives for ``quiet`` seconds."""
    count = 0
    deadline = time.monotonic() + quiet
    while time.monotonic() < deadline:
        try:
            sock.recv(1024)
            count += 1
            deadline = time.monotonic() + quiet
        except BlockingIOError:
            time.sleep(0.0002)
    return count


def lab_answers(home: Path, host: str = "node3") -> None:
    """A new client attaches, and the lab answers it as it should."""
    with IbsimClient(LabHome(home).ibsim_sockname, host) as client:
        assert smp_attrs.NodeInfo.decode(client.node_info()).node_guid == NODE3_GUID
        local = client.request(build.smp(mad.ATTR_NODE_INFO, path=()))
        assert local is not None and local.status == 0
        info = smp_attrs.NodeInfo.decode(local.mad[64:128])
        assert (info.node_guid, info.local_port_num) == (NODE3_GUID, 1)
        switch = client.request(build.smp(mad.ATTR_NODE_INFO, path=(1,)))
        assert switch is not None and switch.status == 0
        assert smp_attrs.NodeInfo.decode(switch.mad[64:128]).node_guid == SW_GUID
        port = client.request(build.smp(mad.ATTR_PORT_INFO, 4, path=(1,)))
        assert port is not None
        assert smp_attrs.PortInfo.decode(port.mad[64:128]).local_port_num == 4


def no_internal_errors(home: Path) -> None:
    log = LabHome(home).log.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 300:][:3000]


@pytest.fixture(scope="module")
def rng() -> random.Random:
    return random.Random(SEED)


def test_mutated_mads_without_an_sm(tmp_path: Path, rng: random.Random) -> None:
    with running_lab(tmp_path / "home") as lab:
        base = corpus(with_sets=True)
        started = time.monotonic()
        with IbsimClient(LabHome(lab.home).ibsim_sockname, "node2") as client:
            datagrams = (mutate(rng, *rng.choice(base), allowed=lambda b: True)
                         for _ in range(NO_SM_MADS))
            sent, received = blast(client, datagrams)
        elapsed = time.monotonic() - started
        print(f"no SM: {sent} mutated MADs in {elapsed:.1f} s, {received} datagrams back")
        assert sent == NO_SM_MADS and received > NO_SM_MADS // 4
        lab_answers(lab.home)
        assert lab.hcasim("status").returncode == 0
        no_internal_errors(lab.home)


@pytest.fixture(scope="module")
def sm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    tmp = tmp_path_factory.mktemp("fuzz-sm")
    conf = tmp / "opensm.conf"
    # the M_Key settings come from OpenSM's config file only (opensm.8); force_log_flush
    # lets hcasim see SUBNET UP
    conf.write_text(f"force_log_flush TRUE\nm_key {M_KEY:#018x}\n"
                    "m_key_protection_level 1\nm_key_lease_period 0\n")
    with running_lab(tmp / "home") as lab:
        r = lab.hcasim("sm", "start", "--", "-F", str(conf))
        assert r.returncode == 0, r.stderr
        yield lab


def _not_sminfo_set(datagram: bytes) -> bool:
    return not (len(datagram) >= 52 and datagram[33] in (0x01, 0x81)
                and datagram[48:50] == b"\x00\x20" and datagram[35] == mad.METHOD_SET)


def test_mutated_mads_and_control_messages_with_opensm(sm_lab: LabHandle,
                                                       rng: random.Random) -> None:
    lab = sm_lab
    status = lab.hcasim("sm", "status")
    assert status.returncode == 0 and status.stdout.startswith("opensm on sm (pid ")
    base_name = LabHome(lab.home).ibsim_sockname
    started = time.monotonic()
    items = corpus(with_sets=True)
    with IbsimClient(base_name, "node2") as client:
        datagrams = (mutate(rng, *rng.choice(items), allowed=_not_sminfo_set)
                     for _ in range(SM_MADS))
        sent, received = blast(client, datagrams)
    assert sent == SM_MADS and received > SM_MADS // 4
    controls = _fuzz_control(base_name, rng)
    flood_sent = _flood(base_name)
    elapsed = time.monotonic() - started
    print(f"OpenSM: {sent} mutated MADs, {controls} control messages and a flood of "
          f"{flood_sent} in {elapsed:.1f} s, {received} datagrams back")

    r = lab.run("node2", "sminfo")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sminfo: sm lid 1 sm guid 0x2c90300a1b211, activity count ")
    assert r.stdout.endswith("state 3 SMINFO_MASTER\n")
    assert lab.hcasim("sm", "status").stdout == status.stdout  # the same OpenSM process
    r = lab.run("node2", "smpquery", "-D", "nodeinfo", "0,1")
    assert r.returncode == 0 and "Guid:............................0x0002c90200a1b000" in \
        r.stdout
    lab_answers(lab.home)
    no_internal_errors(lab.home)


def _fuzz_control(base_name: str, rng: random.Random) -> int:
    """Mutated ``sim_ctl`` messages from a socket of their own; returns how many."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(abstract_name(f"{base_name}:ctl{rng.randrange(1 << 22, 1 << 31)}"))
    sock.connect(abstract_name(f"{base_name}:ctl"))
    sock.setblocking(False)
    hosts = ("sm", "node1", "node2", "", "nosuch", "sw1", "x" * 40)
    for count in range(CONTROL_MESSAGES):
        kind = rng.randrange(16)
        clientid = rng.choice((0, 1, 2, 3, 9, 10, 11, 4095, 4096, rng.randrange(1 << 32)))
        if kind == SimCtlType.CONNECT:
            payload = struct.pack("=III32s", rng.randrange(1 << 32), 0, rng.randrange(3),
                                  rng.choice(hosts).encode()[:32])
        else:
            payload = rng.randbytes(rng.randrange(65))
        message = bytearray(SimCtl(SIM_MAGIC, clientid, kind, len(payload), payload).encode())
        roll = rng.random()
        if roll < 0.1:
            message[0:4] = rng.randbytes(4)  # wrong magic
        elif roll < 0.2:
            message = message[:rng.randrange(80)] if rng.random() < 0.5 else \
                message + rng.randbytes(rng.randrange(1, 64))
        _send_burst(sock, [bytes(message)])
        if count % 32 == 0:
            _drain(sock, 0.001)
    _drain(sock, 0.1)
    sock.close()
    return CONTROL_MESSAGES


def _flood(base_name: str) -> int:
    """One client sends as fast as the lab takes datagrams and never reads; another one's
    requests are still answered meanwhile.  Returns how many the flooder sent."""
    with IbsimClient(base_name, "node1") as flooder, IbsimClient(base_name, "node3") as other:
        get = build.sim_request(build.smp(mad.ATTR_NODE_INFO, path=(1,))).encode()
        sent = 0
        stop = threading.Event()

        def flood() -> None:
            nonlocal sent
            flooder.data.settimeout(5)
            while sent < FLOOD and not stop.is_set():
                flooder.data.send(get)
                sent += 1

        thread = threading.Thread(target=flood)
        thread.start()
        try:
            deadline = time.monotonic() + 5
            while sent < FLOOD // 4 and time.monotonic() < deadline:
                time.sleep(0.01)  # the flood is on
            for _ in range(20):
                reply = other.request(build.smp(mad.ATTR_NODE_INFO, path=(1,)), timeout=10)
                assert reply is not None and reply.status == 0
            assert sent < FLOOD  # answered while the flood went on: no starvation
            thread.join(30)
        finally:
            stop.set()
            thread.join()
        assert sent == FLOOD
        return sent
