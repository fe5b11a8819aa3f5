"""The daemon's side of the verbs preload: the host's device list, lab-wide QP numbers and
the relay between QPs of different processes (docs/crypto.md §9, §11), over the control
socket as the preload speaks it; and what ``hcasim exec`` gives a program.
"""

from __future__ import annotations

import errno
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.api.client import ControlClient, LabError, b64
from hcasim.testing import HCASIM
from tests.support.crypto_helpers import HOST, CryptoLab, crypto_lab, write_hex
from tests.support.verbs_clients import PRELOAD, build_preload, compile_program


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CryptoLab]:
    yield from crypto_lab(tmp_path_factory.mktemp("verbs-relay"))


def context(clab: CryptoLab, host: str = HOST) -> ControlClient:
    client = ControlClient(str(clab.lab.home / "hcasim.sock"), host=host)
    client.call("mlx5_open", device="mlx5_0")
    return client


def test_the_device_list_is_the_hosts(lab: CryptoLab) -> None:
    with ControlClient(str(lab.lab.home / "hcasim.sock"), host=HOST) as client:
        devices = client.call("mlx5_devices")["devices"]
    assert [d["name"] for d in devices] == ["mlx5_0"]
    assert isinstance(devices[0]["node_guid"], int) and devices[0]["node_guid"]
    with ControlClient(str(lab.lab.home / "hcasim.sock"), host="node1") as client:
        assert client.call("mlx5_devices")["devices"] == []
    with ControlClient(str(lab.lab.home / "hcasim.sock")) as client, pytest.raises(LabError) as e:
        client.call("mlx5_devices")
    assert e.value.errno == errno.ENOENT


def test_the_relay_carries_sends_and_writes_between_contexts(lab: CryptoLab) -> None:
    a, b = context(lab), context(lab)
    try:
        qa = a.call("mlx5_qp_create")["qpn"]
        qb = b.call("mlx5_qp_create")["qpn"]
        assert qa != qb
        a.call("mlx5_qp_send", qpn=qa, dest_qpn=qb, opcode="send", data=b64(b"hello"),
               rkey=0, remote_addr=0)
        a.call("mlx5_qp_send", qpn=qa, dest_qpn=qb, opcode="write", data=b64(b"x"),
               rkey=7, remote_addr=4096)
        got = b.call("mlx5_qp_fetch", qpn=qb)["messages"]
        assert [(m["src_qpn"], m["opcode"], m["data"], m["rkey"], m["remote_addr"])
                for m in got] == [(qa, "send", b64(b"hello"), 0, 0),
                                  (qa, "write", b64(b"x"), 7, 4096)]
        assert b.call("mlx5_qp_fetch", qpn=qb)["messages"] == []
        # another context's QP, an unknown destination, a bad opcode
        for op, args, code in (
            ("mlx5_qp_fetch", {"qpn": qa}, errno.EINVAL),
            ("mlx5_qp_destroy", {"qpn": qa}, errno.EINVAL),
            ("mlx5_qp_send", {"qpn": qb, "dest_qpn": 0xFFFFFF, "opcode": "send",
                              "data": "", "rkey": 0, "remote_addr": 0}, errno.ENOENT),
            ("mlx5_qp_send", {"qpn": qb, "dest_qpn": qa, "opcode": "read",
                              "data": "", "rkey": 0, "remote_addr": 0}, errno.EINVAL),
        ):
            with pytest.raises(LabError) as e:
                b.call(op, **args)
            assert e.value.errno == code, op
        # a context's QPs end with it
        a.call("mlx5_close_context")
        with pytest.raises(LabError) as e:
            b.call("mlx5_qp_send", qpn=qb, dest_qpn=qa, opcode="send", data="", rkey=0,
                   remote_addr=0)
        assert e.value.errno == errno.ENOENT
        b.call("mlx5_qp_destroy", qpn=qb)
    finally:
        a.close()
        b.close()
    with ControlClient(str(lab.lab.home / "hcasim.sock"), host=HOST) as c, \
            pytest.raises(LabError) as e:
        c.call("mlx5_qp_create")
    assert e.value.errno == errno.EBADF


def test_exec_preloads_the_verbs_library_beside_the_umad_preload(lab: CryptoLab) -> None:
    build_preload()
    result = lab.lab.run(HOST, "sh", "-c", 'echo "$LD_PRELOAD"; command -v rdma')
    preload, rdma = result.stdout.splitlines()
    # the umad preload (libumad2sim's place), then the verbs preload, then the PCI preload
    # (the real mstflint's local path)
    assert preload.split() == [str(PRELOAD.parent / "libhcaumad.so"), str(PRELOAD),
                               str(PRELOAD.parent / "libhcapci.so")]
    assert rdma == str(PRELOAD.parent / "bin" / "rdma")


def test_a_killed_program_loses_its_session_and_deks(lab: CryptoLab, tmp_path: Path) -> None:
    """kill -9 a C program that logged in and made a DEK: the daemon ends them."""
    build_preload()
    peer = compile_program(Path(__file__).parent / "support" / "crypto_peer.c",
                           tmp_path / "crypto_peer")
    keys = lab.add_user()
    proc = subprocess.Popen(
        [*HCASIM, "--home", str(lab.lab.home), "exec", "--host", HOST, "--", str(peer),
         "client", str(keys.credential_id), str(keys.import_kek_id),
         write_hex(tmp_path / "c.hex", keys.wrapped_credential()),
         write_hex(tmp_path / "d.hex", keys.wrap_dek(bytes(range(32))))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=lab.lab.env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("qpn ")  # logged in, DEK and MKey made
    state = lab.state()
    assert state["sessions_valid"] >= 1 and state["deks"] >= 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    lab.wait_for(contexts=0, sessions_valid=0, deks=0, mkeys=0)
