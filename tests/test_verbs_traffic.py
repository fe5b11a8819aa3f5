"""RC traffic through crypto MKeys from a real libibverbs / libmlx5 program on crypto1.

tests/support/crypto_traffic.c is compiled against the Debian rdma-core headers and linked
against the real libraries; under ``hcasim exec`` the verbs preload carries its CQs, MRs, QPs,
UMRs and MKeys, and the bytes cross the MKeys in the lab's device model. The ciphertext is
checked against ``cryptography``'s AES-XTS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.crypto_helpers import HOST, CryptoLab, crypto_lab, write_hex
from tests.support.verbs_clients import build_preload, compile_program
from tests.support.xts import xts_reference

XTS_KEY = bytes(range(64, 96))
KEYTAG = bytes(range(1, 9))
# ibv_wc_status and ibv_wc_opcode values (infiniband/verbs.h)
WC_SUCCESS, WC_LOC_LEN_ERR, WC_LOC_PROT_ERR = 0, 1, 4
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
    assert "ok" in out
    assert keys.wrapped_credential().hex() not in result.stdout
