"""rdma-core's own mlx5 crypto tests, unmodified, with the real pyverbs, against crypto1.

``make rdma-core`` (part of ``make test``) takes the PyPI ``pyverbs`` sdist, which carries the
rdma-core tree of the same version, and builds its libraries and pyverbs; its
``tests/test_mlx5_crypto.py`` runs here under ``hcasim exec --host crypto1`` with the
matching libibverbs and libmlx5 and the verbs preload. The secrets file the tests read
(``MLX5_CRYPTO_TEST_INFO``) is generated here: credential 0 of the officer who commissioned
crypto1 wrapped under import KEK 0 (the tests log in with ids 0), a DEK wrapped under that KEK
and the expected ciphertexts of ``b"c" * 512`` and ``* 1024`` from ``cryptography``'s XTS.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.crypto_helpers import ADMIN, HOST, CryptoLab, crypto_lab
from tests.support.verbs_clients import build_preload, rdma_core
from tests.support.xts import xts_reference

XTS_KEY = bytes(range(32, 64))
API = "Mlx5CryptoAPITest.test_mlx5_dek_management"
WRAPPED = (
    "Mlx5CryptoTrafficTest.test_mlx5_crypto_mkey_old_api",
    "Mlx5CryptoTrafficTest.test_mlx5_crypto_wrapped_dek",
    "Mlx5CryptoTrafficTest.test_mlx5_wrapped_dek_multi_block",
)
PLAINTEXT = (
    "Mlx5CryptoTrafficTest.test_mlx5_crypto_plaintext_dek",
    "Mlx5CryptoTrafficTest.test_mlx5_plaintext_dek_multi_block",
)
SIGNATURE = "Mlx5CryptoTrafficTest.test_mlx5_crypto_signature_mkey"
_RESULT = re.compile(r"^(test_\w+) \(tests\.test_mlx5_crypto\.(\w+)\.\w+\) \.\.\. (.*)$")


@pytest.fixture(scope="module")
def built() -> Path:
    build_preload()
    return rdma_core()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CryptoLab]:
    yield from crypto_lab(tmp_path_factory.mktemp("rdma-core-lab"))


def secrets_file(path: Path, credential: bytes) -> Path:
    """The tests' JSON input (rdma-core tests/test_mlx5_crypto.py, docs/sources.md §16.1)."""
    info = {
        "credential": list(struct.unpack("!6Q", credential)),
        "wrapped_key": list(struct.unpack("!5Q", ADMIN.wrap_dek(XTS_KEY))),
        "encrypted_data_for_512_c": list(
            struct.unpack("!64Q", xts_reference(XTS_KEY, 0, b"c" * 512))
        ),
        "encrypted_data_for_1024_c": list(
            struct.unpack("!128Q", xts_reference(XTS_KEY, 0, b"c" * 1024))
        ),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump([info], f)
    return path


def run_suite(clab: CryptoLab, build: Path, info: Path, *names: str) -> tuple[dict[str, str], str]:
    """run_tests.py on crypto1; each test's outcome line and the whole output."""
    result = clab.lab.run(
        HOST, "env", f"LD_LIBRARY_PATH={build / 'lib'}", f"MLX5_CRYPTO_TEST_INFO={info}",
        str(build / "bin" / "run_tests.py"), "--dev", "mlx5_0", "-v",
        *(f"tests.test_mlx5_crypto.{name}" for name in names),
        timeout=600,
    )
    outcomes = {}
    for line in result.stderr.splitlines():
        m = _RESULT.match(line)
        if m:
            outcomes[f"{m.group(2)}.{m.group(1)}"] = m.group(3)
    return outcomes, result.stdout + result.stderr


def test_the_api_and_wrapped_traffic_tests_pass(lab: CryptoLab, built: Path) -> None:
    info = secrets_file(lab.files / "mlx5_crypto_test.json", ADMIN.wrapped_credential())
    outcomes, output = run_suite(lab, built, info, "Mlx5CryptoAPITest", "Mlx5CryptoTrafficTest")
    assert outcomes[API] == "ok", output
    for name in WRAPPED:  # data checked against the expected ciphertext
        assert outcomes[name] == "ok", output
    for name in PLAINTEXT:  # rdma-core's own reason: the device is in wrapped mode
        assert outcomes[name] == "skipped 'The device does not support plaintext DEK'", output
    # T10-DIF / CRC signatures are not modelled (docs/crypto.md §11): the one known gap
    assert outcomes[SIGNATURE] == "ERROR", output
    assert ADMIN.wrapped_credential().hex() not in output


def test_a_flipped_credential_word_fails_with_errno_22(lab: CryptoLab, built: Path) -> None:
    wrapped = bytearray(ADMIN.wrapped_credential())
    wrapped[16:24] = bytes(b ^ 0x5A for b in wrapped[16:24])
    info = secrets_file(lab.files / "mlx5_crypto_bad.json", bytes(wrapped))
    outcomes, output = run_suite(lab, built, info, "Mlx5CryptoAPITest")
    assert outcomes[API] == "ERROR", output
    assert "Errno: 22" in output or "errno 22" in output.lower(), output
