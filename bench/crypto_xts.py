"""Benchmark: 64 MiB through a crypto MKey at each data unit size, beside two peers.

For every ``MLX5DV_BLOCK_SIZE_*`` the same 64 MiB buffer is encrypted three ways:

* **mkey**   - the model: ``Mlx5Mkey.send`` on a crypto MKey (encrypt_on_tx) of a
  multi-block engine (ConnectX-7 profile; a ConnectX-6 Dx takes one data unit per MKey),
  through the in-process transport, engine and batched XTS;
* **loop**   - a per-data-unit loop over ``cryptography``'s AES-XTS (one cipher per unit),
  the straightforward way to get the device's semantics;
* **large**  - ``cryptography``'s AES-XTS over 1 MiB units (DPDK's largest data unit), one
  call each: what OpenSSL's XTS costs with almost no per-unit overhead.

All three outputs are compared for equality. Ratios are loop/mkey (the speed-up the model
must deliver: >= 1 everywhere, >= 4 at 512-byte units) and mkey/large (distance from the
large-unit ceiling). Times are the best of ``REPEATS`` runs. Exits 1 if a target is missed.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hcasim import mlx5dv as dv
from hcasim.api.crypto_lab import InProcessCryptoLab
from hcasim.devices.mlx5 import CONNECTX7
from hcasim.devices.mlx5.xts import tweak_add

SIZE = 64 * 1024 * 1024
LARGE_UNIT = 1024 * 1024
REPEATS = 3
KEY = hashlib.sha512(b"hcasim bench key").digest()[:32]  # two distinct 128-bit halves
TWEAK = (0x1234_5678).to_bytes(16, "little")


def best_of(
    fn: Callable[[], bytes | bytearray | memoryview],
) -> tuple[float, bytes | bytearray | memoryview]:
    """Best wall time of REPEATS runs, and the last result."""
    best = float("inf")
    result: bytes | bytearray | memoryview = b""
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def per_unit_loop(data: memoryview, unit: int) -> bytearray:
    """cryptography XTS, one cipher context per data unit (tail as its own unit)."""
    out = bytearray()
    base = int.from_bytes(TWEAK, "little")
    for k, start in enumerate(range(0, len(data), unit)):
        tweak = ((base + k) % (1 << 128)).to_bytes(16, "little")
        enc = Cipher(algorithms.AES(KEY), modes.XTS(tweak)).encryptor()
        out += enc.update(data[start : start + unit])
        out += enc.finalize()
    return out


def large_units(data: memoryview) -> bytearray:
    """cryptography XTS over 1 MiB units."""
    out = bytearray()
    for k, start in enumerate(range(0, len(data), LARGE_UNIT)):
        enc = Cipher(algorithms.AES(KEY), modes.XTS(tweak_add(TWEAK, k))).encryptor()
        out += enc.update(data[start : start + LARGE_UNIT])
        out += enc.finalize()
    return out


def main() -> int:
    """Run the benchmark and print one line per data unit size; 1 if a target is missed."""
    lab = InProcessCryptoLab(CONNECTX7)
    lab.commission()
    data = memoryview((hashlib.sha256(b"payload").digest() * (SIZE // 32))[:SIZE])
    large_time, large_out = best_of(lambda: large_units(data))
    mib = SIZE / (1024 * 1024)
    print(f"crypto_xts: {mib:.0f} MiB, AES-128-XTS (2x128-bit DEK), best of {REPEATS}")
    print(
        f"  large-unit peer (1 MiB units): {large_time * 1000:7.1f} ms"
        f"  {mib / large_time:7.0f} MiB/s"
    )
    print(
        f"  {'unit':>5} {'mkey ms':>9} {'loop ms':>9} {'MiB/s mkey':>11} {'MiB/s loop':>11}"
        f" {'loop/mkey':>10} {'mkey/large':>11}"
    )
    missed: list[str] = []
    with dv.Mlx5Context(lab.device_name, transport=lab.transport) as ctx:
        dv.Mlx5Context.crypto_login(ctx, dv.Mlx5CryptoLoginAttr(lab.wrapped_credential()))
        pd = dv.PD(ctx)
        dek = dv.Mlx5DEK(
            ctx,
            dv.Mlx5DEKInitAttr(
                pd, dv.MLX5DV_CRYPTO_KEY_SIZE_128, key=lab.admin_keys().wrap_dek(KEY)
            ),
        )
        for enum_value in range(5):
            unit = dv.data_unit_bytes(enum_value)
            mkey = dv.Mlx5Mkey(
                pd,
                dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO | dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT,
                1,
            )
            attr = dv.Mlx5CryptoAttr(
                encrypt_on_tx=True, data_unit_size=enum_value, initial_tweak=TWEAK, dek=dek
            )
            mkey.configure(SIZE, attr)
            mkey_time, mkey_out = best_of(lambda mk=mkey: mk.send(data))
            loop_time, loop_out = best_of(lambda u=unit: per_unit_loop(data, u))
            if mkey_out != loop_out:
                print(f"  {unit}: MKey output differs from the per-unit loop", file=sys.stderr)
                return 1
            if mkey_out[:LARGE_UNIT] == large_out[:LARGE_UNIT]:
                print(f"  {unit}: data units were not applied", file=sys.stderr)
                return 1
            speedup = loop_time / mkey_time
            print(
                f"  {unit:>5} {mkey_time * 1000:9.1f} {loop_time * 1000:9.1f}"
                f" {mib / mkey_time:11.0f} {mib / loop_time:11.0f}"
                f" {speedup:9.2f}x {mkey_time / large_time:10.2f}x"
            )
            if speedup < 1.0 or (unit == 512 and speedup < 4.0):
                missed.append(f"{unit}-byte units: {speedup:.2f}x the per-unit loop")
            mkey.close()
        dek.close()
    if missed:
        print("targets missed: " + "; ".join(missed))
        return 1
    print("targets met: never slower than the per-unit loop, >= 4x at 512-byte units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
