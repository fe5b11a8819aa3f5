"""The ConnectX-6 Dx as a lab device: its crypto engine, access registers and NV snapshot.

The engine (:mod:`.crypto_engine`) is the firmware state machine; this class is what the lab
holds per device: it builds the engine from the stored NV snapshot once the device has its
storage key, hands each new snapshot to the lab's store before the change takes effect, and
maps host events (reboot, driver restart) onto firmware resets. No sockets, no files: the lab
daemon (:mod:`hcasim.lab.crypto_service`) gives it its key and its store callback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from hcasim.devices.mlx5.constants import CryptoEnginesCaps
from hcasim.devices.mlx5.crypto_engine import CONNECTX6DX_MULTI_BLOCK, CryptoEngine, DeviceProfile
from hcasim.devices.mlx5.errors import CryptoError
from hcasim.devices.mlx5.register_access import CryptoRegisters

__all__ = ["FW_VERSION", "MST_NAME", "NV_OBJECT", "Mlx5CryptoFirmware"]

log = logging.getLogger("hcasim.crypto")

#: mst device-name stem of the ConnectX-6 Dx (PCI device id 0x101d = 4125).
MST_NAME: Final = "mt4125"
#: The running firmware version the lab reports (ConnectX-6 Dx firmware is 22.x; any fixed
#: value will do, the crypto model does not depend on it).
FW_VERSION: Final = "22.36.1010"
#: Name of the engine's NV snapshot in the store's nv_object table.
NV_OBJECT: Final = "mlx5_crypto"

class Mlx5CryptoFirmware:
    """The lab's view of one ConnectX-6 Dx: its crypto engine, registers and NV snapshot.

    The engine exists once :meth:`bind` gave it its storage key (at daemon start); until then,
    or if binding failed, the device is *failed* and refuses every crypto operation with EIO.
    """

    def __init__(
        self,
        ident: str,
        nv_write: Callable[[str, Any], None],
        stored: Mapping[str, Any],
        profile: DeviceProfile = CONNECTX6DX_MULTI_BLOCK,
    ) -> None:
        """``stored`` are the device's NV objects from the store; ``nv_write`` persists one."""
        self.ident = ident
        self.profile = profile
        self.verbs_name = "mlx5_0"
        self.engine: CryptoEngine | None = None
        self.registers: CryptoRegisters | None = None
        self.failure: str | None = "not started"
        self._nv_write = nv_write
        snapshot = stored.get(NV_OBJECT)
        self._stored = snapshot if isinstance(snapshot, dict) else None

    def __repr__(self) -> str:
        return f"Mlx5CryptoFirmware({self.ident}, {self.engine!r})"

    @property
    def mst_name(self) -> str:
        """The mst device-name stem."""
        return MST_NAME

    @property
    def has_nv_state(self) -> bool:
        """Whether the store holds crypto objects for this device (it then needs its key)."""
        return self._stored is not None

    def bind(self, storage_key: bytes) -> None:
        """Build the engine from the stored NV snapshot under ``storage_key``; power it on."""
        try:
            engine = CryptoEngine(
                storage_key, profile=self.profile, nv=self._stored, nv_sink=self._sink
            )
        except (ValueError, KeyError, TypeError) as exc:
            self.fail(f"the stored crypto objects do not open: {exc}")
            return
        self.engine = engine
        self.registers = CryptoRegisters(engine)
        self.failure = None
        self.cold_boot()  # the daemon start is a power cycle

    def fail(self, reason: str) -> None:
        """Leave the device failed: every crypto operation gets EIO."""
        self.engine = self.registers = None
        self.failure = reason
        log.error("crypto engine of %s failed: %s", self.ident, reason)

    def _sink(self, snapshot: dict[str, Any]) -> None:
        self._nv_write(NV_OBJECT, snapshot)
        self._stored = snapshot
        log.info("crypto NV state of %s written", self.ident)

    def cold_boot(self) -> None:
        """Power cycle: a firmware reset (pending return to commissioning takes effect)."""
        if self.engine is None:
            return
        try:
            self.engine.firmware_reset()
        except CryptoError as exc:
            log.error("firmware reset of %s: %s", self.ident, exc.message)

    def driver_restart(self) -> None:
        """The mlx5 driver reloads: every device context is disassociated (EIO from then on);
        the firmware, its NV state and a pending return to commissioning are untouched."""
        if self.engine is not None:
            for ctx in self.engine.context_ids():
                self.engine.close_context(ctx)

    def release(self, owner: object) -> None:
        """Nothing is held through mst files; contexts end through ``session.on_close``."""

    def status(self) -> dict[str, object]:
        """Mode, object counts and live sessions (never a secret)."""
        out: dict[str, object] = {
            "model": self.profile.name,
            "fw_version": FW_VERSION,
            "verbs_device": self.verbs_name,
        }
        engine = self.engine
        if engine is None:
            out["crypto"] = {"mode": "failed", "reason": self.failure}
            return out
        with engine.locked():
            state = engine.query_crypto_operational()
            multi = self.profile.engines & CryptoEnginesCaps.AES_XTS_MULTI_BLOCK
            out["crypto"] = {
                "mode": "operational" if state.operational else "commissioning",
                "going_to_commissioning": state.going_to_commissioning,
                "import_method": "wrapped" if self.profile.wrapped_import else "plaintext",
                "aes_xts": "multi-block" if multi else "single-block",
                "credentials": len(engine.credential_ids()),
                "import_keks": len(engine.import_kek_ids()),
                "max_credentials": 1 << self.profile.log_max_num_creds,
                "max_import_keks": 1 << self.profile.log_max_num_import_keks,
                **engine.volatile_counts(),
            }
        return out
