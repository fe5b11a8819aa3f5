"""Benchmark: crypto logins and DEK creations per second through the lab daemon, beside peers.

A default lab is started in a temporary home and crypto1 commissioned; this process then
opens ``mlx5_0`` through the daemon's control socket (the transport an application inside
``hcasim exec`` uses) and times, separately:

* **login**      - ``mlx5dv_crypto_login`` (the logout that follows each one is not timed);
* **DEK create** - ``mlx5dv_dek_create`` of a wrapped 2x128-bit DEK (destroy not timed).

Peers measured in the same run:

* the same calls on the **in-process transport** (same engine, no socket): the ratio is what
  the daemon round trip costs;
* a bare control-socket **ping** round trip (``ping`` op): the floor of any daemon call; the
  ratio says how many pings one operation costs.

Rates are the best of ``ROUNDS`` rounds of ``N`` operations. No target is asserted: the
numbers are printed for the record (docs/crypto.md).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

from hcasim import mlx5dv as dv
from hcasim.api.client import ControlClient, b64
from hcasim.api.crypto_lab import DPDK_EXAMPLE_CREDENTIAL, InProcessCryptoLab
from hcasim.api.officer import CryptoOfficer
from hcasim.devices.mlx5 import CONNECTX6DX_MULTI_BLOCK
from hcasim.devices.mlx5.keywrap import wrap_credential, wrap_dek
from hcasim.devices.mlx5.register_access import RegisterReply, RegStatus
from hcasim.mlx5dv import SocketCryptoTransport
from hcasim.testing import running_lab

N = 1000
ROUNDS = 3
KEK = bytes(16)
XTS_KEY = bytes(range(100, 132))


def best_rate(op: Callable[[], None], after: Callable[[], None] | None = None) -> float:
    """Operations per second of ``op`` (``after`` runs untimed after each call)."""
    best = float("inf")
    for _ in range(ROUNDS):
        spent = 0.0
        for _ in range(N):
            start = time.perf_counter()
            op()
            spent += time.perf_counter() - start
            if after is not None:
                after()
        best = min(best, spent)
    return N / best


def crypto_rates(ctx: dv.Mlx5Context) -> tuple[float, float]:
    """(logins/s, DEK creations/s) on an open context."""
    attr = dv.Mlx5CryptoLoginAttr(wrap_credential(KEK, DPDK_EXAMPLE_CREDENTIAL))

    def login() -> None:
        if dv.mlx5dv_crypto_login(ctx, attr):
            raise RuntimeError("login failed")

    def logout() -> None:
        dv.mlx5dv_crypto_logout(ctx)

    logins = best_rate(login, logout)
    login()
    dek_attr = dv.Mlx5DEKInitAttr(
        dv.PD(ctx), dv.MLX5DV_CRYPTO_KEY_SIZE_128, key=wrap_dek(KEK, XTS_KEY), opaque=b"bench"
    )
    made: list[dv.Mlx5DEK] = []
    creates = best_rate(lambda: made.append(dv.Mlx5DEK(ctx, dek_attr)), lambda: made.pop().close())
    logout()
    return logins, creates


def commission(socket_path: str) -> None:
    """CRYPTO_OPERATIONAL through the daemon's register path, as the officer CLI does."""
    client = ControlClient(socket_path, host="crypto1")

    def access(register_id: int, method: int, data: bytes) -> RegisterReply:
        reply = client.call(
            "mlx5_reg", device="mlx5_0", register_id=register_id, method=method, data=b64(data)
        )
        return RegisterReply(
            RegStatus(reply["status"]), base64.b64decode(reply["data"]), reply["message"]
        )

    CryptoOfficer(access).commission(DPDK_EXAMPLE_CREDENTIAL, KEK)
    client.close()


def ping_rate(socket_path: str) -> float:
    """Bare control round trips per second."""
    with ControlClient(socket_path) as client:

        def ping() -> None:
            client.call("ping")

        return best_rate(ping)


def row(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    """One table line."""
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def rate_text(rate: float) -> str:
    """``12345/s (81 us)``."""
    return f"{rate:6.0f}/s ({1e6 / rate:4.0f} us)"


def main() -> int:
    """Run the benchmark and print the table."""
    with running_lab() as lab:
        socket_path = str(Path(lab.home) / "hcasim.sock")
        commission(socket_path)
        transport = SocketCryptoTransport(socket_path, "crypto1")
        with dv.Mlx5Context("mlx5_0", transport=transport) as ctx:
            daemon_login, daemon_dek = crypto_rates(ctx)
        ping = ping_rate(socket_path)
    local = InProcessCryptoLab(CONNECTX6DX_MULTI_BLOCK)
    local.commission(DPDK_EXAMPLE_CREDENTIAL, KEK)
    with dv.Mlx5Context(local.device_name, transport=local.transport) as ctx:
        local_login, local_dek = crypto_rates(ctx)

    widths = (10, 20, 20, 20, 14)
    print(f"crypto operations per second through the lab daemon, best of {ROUNDS} x {N}")
    print(row(("operation", "through the daemon", "in-process", "in-process/daemon",
               "time in pings"), widths))
    for name, daemon, local_rate in (
        ("login", daemon_login, local_login),
        ("DEK create", daemon_dek, local_dek),
    ):
        print(row((name, rate_text(daemon), rate_text(local_rate),
                   f"{local_rate / daemon:.1f}x", f"{ping / daemon:.2f}"), widths))
    print(row(("ping", rate_text(ping), "-", "-", "1.00"), widths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
