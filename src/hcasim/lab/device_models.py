"""Every kind of device a lab definition may name, and how to make one.

One registry, :data:`DEVICE_MODELS`, built from :data:`hcasim.lab.spec.DEVICE_KINDS`: a
model for each kind a lab file accepts, whatever was imported before. A model says what the
device's flash holds when it leaves the factory and how to build its firmware model over
that flash and its stored non-volatile objects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from hcasim.devices import fs2
from hcasim.devices.cx3 import KINDS, Cx3Firmware
from hcasim.devices.flash import Flash
from hcasim.devices.mlx5.firmware import MST_NAME as MLX5_CRYPTO
from hcasim.devices.mlx5.firmware import Mlx5CryptoFirmware
from hcasim.lab.spec import (
    DEFAULT_FW_VERSION,
    DEFAULT_PSID,
    DEFAULT_RELEASE_DATE,
    DEVICE_KINDS,
    HostSpec,
)

__all__ = ["DEVICE_MODELS", "DeviceModel", "Firmware", "cx3_factory_image"]


class Firmware(Protocol):
    """What the lab needs from any device's firmware model."""

    @property
    def mst_name(self) -> str:
        """The mst device-name stem (``mt4099``)."""
        ...

    def cold_boot(self) -> None:
        """Host reboot / power cycle."""

    def driver_restart(self) -> None:
        """The host's driver for this device unloads and loads."""

    def release(self, owner: object) -> None:
        """A session ended: drop what it held."""

    def status(self) -> dict[str, object]:
        """Describe the device for ``hcasim status`` (never a secret)."""
        ...


@dataclass(frozen=True)
class DeviceModel:
    """How to make one kind of device: its factory flash and its firmware model.

    ``make`` gets the host spec, the device's flash (already loaded from the store) and a
    function that durably stores a named non-volatile object for this device.
    """

    factory_image: Callable[[HostSpec], bytes]
    make: Callable[[HostSpec, Flash, Callable[[str, Any], None], dict[str, Any]], Firmware]


def cx3_factory_image(spec: HostSpec) -> bytes:
    """Build the image a ConnectX-3 leaves the factory with.

    Factory images of one device kind and ini differ only in their GUID section, so one
    image is built per (kind, cr_protection_en) and each host's copy gets its GUIDs
    patched in (the GUID section and image CRCs recomputed): byte for byte what
    ``fs2.build_image`` gives for the host, in a fraction of the time (20,000 hosts).
    """
    if not 0 <= spec.guid <= 0xFFFFFFFFFFFFFFFF - 3:
        raise ValueError(f"GUID base {spec.guid:#x} leaves no room for 4 GUIDs in 64 bits")
    guids = (spec.guid, spec.guid + 1, spec.guid + 2, spec.guid + 3)
    macs = (fs2.derive_mac(guids[1]), fs2.derive_mac(guids[2]))
    return _factory_patcher(spec.device, spec.cr_protection_en)(guids, macs)


@functools.cache
def _factory_patcher(device: str, cr_protection_en: bool) -> Callable[..., bytes]:
    kind = KINDS[device]
    template = fs2.build_image(
        device_id=kind.device_id,
        fw_version=DEFAULT_FW_VERSION,
        psid=DEFAULT_PSID[device],
        release_date=DEFAULT_RELEASE_DATE,
        guid_base=0,
        cr_protection_en=cr_protection_en,
    )
    return fs2.guid_patcher(template)


def _make_cx3(
    spec: HostSpec, flash: Flash, _persist: Callable[[str, Any], None], _nv: dict[str, Any]
) -> Firmware:
    return Cx3Firmware(KINDS[spec.device], flash, name=f"{spec.name}/{spec.device}")


def _mlx5_factory_image(spec: HostSpec) -> bytes:
    """The mlx5 flash is not modelled: an empty (erased) flash."""
    return b""


def _make_mlx5(
    spec: HostSpec, flash: Flash, nv_write: Callable[[str, Any], None], stored: dict[str, Any]
) -> Firmware:
    return Mlx5CryptoFirmware(f"{spec.name}/{spec.device}", nv_write, stored)


def _model(kind: str) -> DeviceModel:
    if kind in KINDS:
        return DeviceModel(cx3_factory_image, _make_cx3)
    if kind == MLX5_CRYPTO:
        return DeviceModel(_mlx5_factory_image, _make_mlx5)
    raise LookupError(f"no device model for {kind!r}")  # a kind added to spec alone


#: The model of each device kind, by mst name.
DEVICE_MODELS: Mapping[str, DeviceModel] = MappingProxyType(
    {kind: _model(kind) for kind in DEVICE_KINDS}
)
