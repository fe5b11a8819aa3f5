"""RC traffic through crypto MKeys from a real libibverbs / libmlx5 program on crypto1.

tests/support/crypto_traffic.c is compiled against the Debian rdma-core headers and linked
against the real libraries; under ``hcasim exec`` the verbs preload carries its CQs, MRs, QPs,
UMRs and MKeys, and the bytes cross the MKeys in the lab's device model. The ciphertext is
checked against ``cryptography``'s AES-XTS. Between two hosts (tests/support/crypto_peer.c, one
process on each) the QPs meet through the daemon's relay.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.testing import HCASIM, LabHandle
from tests.support.crypto_helpers import (
    ADMIN,
    HOST,
    CryptoLab,
    crypto_lab,
    two_crypto_hosts,
    write_hex,
)
from tests.support.verbs_clients import build_preload, compile_program
from tests.support.xts import xts_reference

XTS_KEY = bytes(range(64, 96))
KEYTAG = bytes(range(1, 9))
# ibv_wc_status and ibv_wc_opcode values (infiniband/verbs.h)
WC_SUCCESS, WC_LOC_LEN_ERR, WC_LOC_PROT_ERR = 0, 1, 4
WC_RETRY_EXC_ERR, WC_RNR_RETRY_EXC_ERR = 12, 13
WC_RDMA_WRITE = 1


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build_preload()
    out = tmp_path_factory.mktemp("verbs-traffic") / "crypto_traffic"
    return compile_program(Path(__file__).parent / "support" / "crypto_traffic.c", out)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CryptoLab]:
    yield from crypto_lab(tmp_path_factory.mktemp("verbs-traffic-lab"))


def test_crypto_mkeys_encrypt_and_decrypt_rc_traffic(lab: CryptoLab, program: Path) -> None:
    keys = lab.add_user()
    args = [
        str(keys.credential_id),
        str(keys.import_kek_id),
        write_hex(lab.files / "t-cred.hex", keys.wrapped_credential()),
        write_hex(lab.files / "t-dek.hex", keys.wrap_dek(XTS_KEY)),
        write_hex(lab.files / "t-dek-tag.hex", keys.wrap_dek(XTS_KEY, KEYTAG)),
    ]
    result = lab.lab.run(HOST, str(program), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    out = dict(line.split(": ", 1) if ": " in line else (line, "") for line in
               result.stdout.splitlines())
    expected = xts_reference(XTS_KEY, 0, b"c" * 512)
    assert out["configure wire_enc"] == "0"
    assert out["configure mem_enc"] == "0"
    assert out["send wire_enc"] == str(WC_SUCCESS)
    assert out["received"] == expected.hex()
    assert out["send mem_enc"] == str(WC_SUCCESS)
    assert out["decrypted"] == "same"
    assert out["rdma_write complete"] == "0"
    assert out["rdma_write status"] == f"{WC_SUCCESS} opcode {WC_RDMA_WRITE}"
    assert out["written"] == "same"
    # the man pages' error completions, from the engine
    assert out["job size 47"] == str(WC_LOC_LEN_ERR)
    assert out["keytag match"] == str(WC_SUCCESS)
    assert out["keytag mismatch"] == str(WC_LOC_PROT_ERR)
    assert out["bad data unit size"] == "22"  # EINVAL at ibv_wr_complete
    assert out["dek destroyed"] == str(WC_LOC_PROT_ERR)
    # the rest of the surface
    assert out["inline"] == f"{WC_SUCCESS} same"
    assert out["no receive posted"] == str(WC_RNR_RETRY_EXC_ERR)
    assert out["aborted"] == "0"
    assert out["interleaved layout"] == str(errno.EOPNOTSUPP)
    assert out["plain qp"] == "state 0 type 2"  # IBV_QPS_RESET, IBV_QPT_RC
    assert out["unknown peer"] == str(WC_RETRY_EXC_ERR)
    assert out["iova mr"] == "0"
    assert "ok" in out
    assert keys.wrapped_credential().hex() not in result.stdout



class Peer:
    """``crypto_peer`` on a lab host, driven one line at a time."""

    def __init__(self, lab: LabHandle, host: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*HCASIM, "--home", str(lab.home), "exec", "--host", host, "--", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=lab.env(),
        )

    def read(self) -> list[str]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.communicate(timeout=30)
        return line.split()

    def write(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self) -> int:
        return self.proc.wait(timeout=30)


def test_an_rc_connection_between_two_hosts_carries_ciphertext(
    tmp_path: Path, program: Path
) -> None:
    peer = compile_program(Path(__file__).parent / "support" / "crypto_peer.c",
                           tmp_path / "crypto_peer")
    with two_crypto_hosts(tmp_path) as lab:
        cred = write_hex(tmp_path / "officer-cred.hex", ADMIN.credential)
        kek = write_hex(tmp_path / "officer-kek.hex", ADMIN.kek)
        r = lab.hcasim("crypto", "commission", "--host", "vault2", "--credential-file", cred,
                       "--kek-file", kek)
        assert r.returncode == 0, r.stderr
        server = Peer(lab, "vault1", str(peer), "server")
        client = Peer(lab, "vault2", str(peer), "client", "0", "0",
                      write_hex(tmp_path / "c.hex", ADMIN.wrapped_credential()),
                      write_hex(tmp_path / "d.hex", ADMIN.wrap_dek(XTS_KEY)))
        _, server_qpn, _, rkey, _, addr = server.read()
        _, client_qpn = client.read()
        assert server_qpn != client_qpn  # QP numbers are lab-wide
        server.write(f"peer {client_qpn}")
        assert server.read() == ["ready"]
        client.write(f"peer {server_qpn} rkey {rkey} addr {addr}")
        assert client.read() == ["send", str(WC_SUCCESS)]
        assert client.read() == ["write", str(WC_SUCCESS)]
        assert client.wait() == 0
        server.write("post")  # the SEND came before the receive: it waits for one
        expected = xts_reference(XTS_KEY, 0, b"c" * 512).hex()
        assert server.read() == ["recv", str(WC_SUCCESS), "512"]
        assert server.read() == ["data", expected]  # vault2's device encrypted on TX
        server.write("check")
        assert server.read() == ["write", expected]
        assert server.wait() == 0
