"""Benchmark: what a brute force of a flash key digest costs (guesses per second, one core).

A stolen flash image or lab store holds each ConnectX-3 key as a salted digest
(``hcasim.devices.hw_key.key_digest``). This times the digest hcasim writes (version 3,
scrypt salted with the node GUID and random bytes; version 2, still read, costs the same)
and the oldest form labs stored (version 1, PBKDF2), one guess after another
on one core, and prints guesses per second and how long a key of 16, 32 and 64 random bits
takes to exhaust at that rate. The numbers are for docs/security-model.md §4.

Run: ``.venv/bin/python bench/key_digest.py [--seconds 3]``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

from hcasim.devices.hw_key import key_digest


def rate(version: int, seconds: float) -> float:
    """Guesses per second of digest ``version`` on one core."""
    salt = (0x0002C90300A1B010).to_bytes(8, "big") + (b"rand" if version == 3 else b"")
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key_digest(done + 1, salt, version)
        done += 1
    return done / (time.perf_counter() - start)


def _duration(seconds: float) -> str:
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("hours", 3600),
                       ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    for version, name in ((3, "v3 scrypt N=2^14 r=8 p=1"), (1, "v1 PBKDF2-SHA256 20000")):
        per_second = rate(version, args.seconds)
        spans = ", ".join(f"{bits}-bit key {_duration(2 ** bits / per_second)}"
                          for bits in (16, 32, 64))
        print(f"{name}: {per_second:,.1f} guesses/s on one core; exhausting a {spans}")


if __name__ == "__main__":
    main()
