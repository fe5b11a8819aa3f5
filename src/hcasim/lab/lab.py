"""The lab's device world: hosts, their HCAs and firmware, built from a definition.

Everything here runs on the daemon's single event-loop thread, so device state changes are
serialised without locks, as commands to one firmware are.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field
from typing import Any

from hcasim.devices import fs2
from hcasim.devices.cx3 import KINDS, Cx3Firmware, FirmwareError
from hcasim.devices.flash import Flash
from hcasim.lab.spec import (
    DEFAULT_FW_VERSION,
    DEFAULT_PSID,
    DEFAULT_RELEASE_DATE,
    HostSpec,
)
from hcasim.lab.store import LabStore

log = logging.getLogger("hcasim.lab")


@dataclass
class Device:
    """One HCA: its identity in the lab and its firmware."""

    ident: str
    host: str
    firmware: Cx3Firmware

    @property
    def mst_paths(self) -> tuple[str, str]:
        """The mst device files through which a host reaches this device."""
        name = self.firmware.kind.mst_name
        return (f"/dev/mst/{name}_pci_cr0", f"/dev/mst/{name}_pciconf0")


@dataclass
class Host:
    """A host: a name and the devices plugged into it."""

    name: str
    devices: list[Device] = field(default_factory=list)

    def device_at(self, path: str) -> Device | None:
        """Return the device an mst path names on this host, if any."""
        for device in self.devices:
            if path in device.mst_paths:
                return device
        return None


def factory_image(spec: HostSpec) -> bytes:
    """Build the image a device leaves the factory with."""
    kind = KINDS[spec.device]
    return fs2.build_image(
        device_id=kind.device_id,
        fw_version=DEFAULT_FW_VERSION,
        psid=DEFAULT_PSID[spec.device],
        release_date=DEFAULT_RELEASE_DATE,
        guid_base=spec.guid,
        cr_protection_en=spec.cr_protection_en,
    )


class Lab:
    """All hosts and devices of one lab, backed by its store."""

    def __init__(self, store: LabStore, definition: dict[str, Any]) -> None:
        self.store = store
        self.definition = definition
        self.hosts: dict[str, Host] = {}
        self.devices: dict[str, Device] = {}
        for raw in definition["hosts"]:
            spec = HostSpec.from_json(raw)
            host = self.hosts.setdefault(spec.name, Host(spec.name))
            ident = f"{spec.name}/{spec.device}"
            flash = Flash(contents=store.flash_image(ident), persist=self._persister(ident))
            device = Device(ident, spec.name, Cx3Firmware(KINDS[spec.device], flash))
            device.firmware.cold_boot()
            host.devices.append(device)
            self.devices[ident] = device

    @staticmethod
    def create(store: LabStore, definition: dict[str, Any]) -> Lab:
        """Record a new lab with factory flashes in the store and bring it up."""
        flashes = {}
        for raw in definition["hosts"]:
            spec = HostSpec.from_json(raw)
            flashes[f"{spec.name}/{spec.device}"] = factory_image(spec)
        store.create_lab(definition, flashes)
        return Lab(store, definition)

    def _persister(self, ident: str) -> Any:
        def persist(image: bytes) -> None:
            self.store.write_flash(ident, image)
            log.info("flash of %s written (%d bytes)", ident, len(image))

        return persist

    def host(self, name: str) -> Host:
        """Return a host by name or raise ENOENT."""
        try:
            return self.hosts[name]
        except KeyError:
            raise FirmwareError(errno.ENOENT, f"unknown host {name!r}") from None

    def reboot_host(self, name: str) -> None:
        """Host reboot: every device on it cold-boots from its flash."""
        for device in self.host(name).devices:
            device.firmware.cold_boot()
        log.info("host %s rebooted", name)

    def restart_driver(self, name: str) -> None:
        """Driver restart on a host: the flash key comes into force, firmware keeps running."""
        for device in self.host(name).devices:
            device.firmware.driver_restart()
        log.info("driver restarted on host %s", name)

    def device_status(self, device: Device) -> dict[str, Any]:
        """Describe a device's secure-host state without any key material."""
        fw = device.firmware
        return {
            "device": device.mst_paths[0],
            "model": fw.kind.description,
            "secure_host_capable": fw.supports_secure_host,
            "key_on_flash": fw.key_on_flash,
            "key_active": fw.secure.active_key is not None,
            "cr_space_locked": fw.secure.cr_locked,
            "smp_firewall": fw.secure.smp_firewall,
            "fw_version": ".".join(map(str, fw.running_version)),
        }

    def status(self) -> dict[str, Any]:
        """Describe every host and device."""
        return {
            "hosts": [
                {"name": h.name, "devices": [self.device_status(d) for d in h.devices]}
                for h in self.hosts.values()
            ]
        }
