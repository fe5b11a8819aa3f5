"""Benchmark: the mlx5 crypto API through the verbs preload, beside ``hcasim.mlx5dv``.

A default lab is started in a temporary home and crypto1 commissioned. ``bench/verbs_crypto.c``
is compiled against the rdma-core headers, linked against the real libibverbs and libmlx5,
and run on crypto1 (``hcasim exec``, so through libhcaverbs); in the same run this process
times the same calls with ``hcasim.mlx5dv`` over the daemon's socket. Printed:

* logins per second and DEK creations per second, preload and ``hcasim.mlx5dv``, and their
  ratio (each is one daemon round trip; the difference is the client's own cost);
* MiB/s written by RDMA WRITE through a crypto MKey (1 MiB per WRITE; the device model encrypts
  in the daemon) at 512-byte and 4-KiB data units, beside ``cryptography`` encrypting the same
  MiB one data unit at a time (a new XTS context per unit, as the per-unit reference does).

Rates are the best of ``ROUNDS`` rounds. No target is asserted (docs/crypto.md §11).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hcasim import mlx5dv as dv
from hcasim.devices.mlx5.keywrap import wrap_credential, wrap_dek
from hcasim.mlx5dv import SocketCryptoTransport
from hcasim.testing import running_lab

N = 300
ROUNDS = 3
KEK = bytes(16)
CREDENTIAL = bytes.fromhex("1000000010000000") + bytes(32)
XTS_KEY = bytes(range(100, 132))
ROOT = Path(__file__).resolve().parents[1]


def python_rates(ctx: dv.Mlx5Context) -> tuple[float, float]:
    """(logins/s, DEK creations/s) with hcasim.mlx5dv, timed as the C program times them."""
    attr = dv.Mlx5CryptoLoginAttr(wrap_credential(KEK, CREDENTIAL))
    best_login = best_dek = float("inf")
    for _ in range(ROUNDS):
        spent = 0.0
        for _ in range(N):
            start = time.perf_counter()
            if dv.mlx5dv_crypto_login(ctx, attr):
                raise RuntimeError("login failed")
            spent += time.perf_counter() - start
            dv.mlx5dv_crypto_logout(ctx)
        best_login = min(best_login, spent)
    dv.mlx5dv_crypto_login(ctx, attr)
    dek_attr = dv.Mlx5DEKInitAttr(dv.PD(ctx), dv.MLX5DV_CRYPTO_KEY_SIZE_128,
                                  key=wrap_dek(KEK, XTS_KEY), opaque=b"bench")
    for _ in range(ROUNDS):
        spent = 0.0
        for _ in range(N):
            start = time.perf_counter()
            dek = dv.Mlx5DEK(ctx, dek_attr)
            spent += time.perf_counter() - start
            dek.close()
        best_dek = min(best_dek, spent)
    dv.mlx5dv_crypto_logout(ctx)
    return N / best_login, N / best_dek


def cryptography_rate(unit: int) -> float:
    """MiB/s of ``cryptography`` XTS over one MiB, one data unit (and context) at a time."""
    data = b"c" * (1024 * 1024)
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for k, at in enumerate(range(0, len(data), unit)):
            enc = Cipher(algorithms.AES(XTS_KEY), modes.XTS(k.to_bytes(16, "little"))).encryptor()
            enc.update(data[at : at + unit])
            enc.finalize()
        best = min(best, time.perf_counter() - start)
    return 1.0 / best


def main() -> int:
    """Build and run the C side, time the Python side, print the table."""
    subprocess.run(["make", "-s", "-C", str(ROOT), "preload"], check=True)
    with tempfile.TemporaryDirectory() as tmp, running_lab() as lab:
        work = Path(tmp)
        program = work / "verbs_crypto"
        subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-o", str(program),
                        str(ROOT / "bench" / "verbs_crypto.c"), "-libverbs", "-lmlx5"],
                       check=True)
        files = []
        for name, secret in (("cred", wrap_credential(KEK, CREDENTIAL)),
                             ("dek", wrap_dek(KEK, XTS_KEY))):
            path = work / f"{name}.hex"
            path.write_text(secret.hex() + "\n")
            path.chmod(0o600)
            files.append(str(path))
        (work / "kek.hex").write_text(KEK.hex() + "\n")
        (work / "officer.hex").write_text(CREDENTIAL.hex() + "\n")
        lab.hcasim("crypto", "commission", "--host", "crypto1",
                   "--credential-file", str(work / "officer.hex"),
                   "--kek-file", str(work / "kek.hex"))
        result = lab.run("crypto1", str(program), "0", "0", *files, str(N), str(ROUNDS),
                         timeout=600)
        if result.returncode != 0:
            raise SystemExit(f"verbs_crypto failed: {result.stderr}")
        c_side = {k: float(v) for k, v in (line.split() for line in result.stdout.splitlines())}
        transport = SocketCryptoTransport(str(lab.home / "hcasim.sock"), "crypto1")
        with dv.Mlx5Context("mlx5_0", transport=transport) as ctx:
            py_login, py_dek = python_rates(ctx)

    print(f"crypto calls per second, best of {ROUNDS} x {N}")
    print(f"{'operation':12}{'preload (C)':>14}{'hcasim.mlx5dv':>16}{'preload/mlx5dv':>16}")
    for name, c_rate, py_rate in (("login", c_side["login"], py_login),
                                  ("DEK create", c_side["dek_create"], py_dek)):
        print(f"{name:12}{c_rate:>12.0f}/s{py_rate:>14.0f}/s{c_rate / py_rate:>15.2f}x")
    print(f"RDMA WRITE through a crypto MKey (1 MiB per WRITE), best of {ROUNDS} x 8, MiB/s")
    print(f"{'data unit':12}{'preload (C)':>14}{'cryptography per unit':>24}")
    for unit in (512, 4096):
        print(f"{unit:<12}{c_side[f'write_{unit}']:>14.1f}{cryptography_rate(unit):>24.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
