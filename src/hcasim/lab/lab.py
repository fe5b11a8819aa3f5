"""The lab's device world: hosts, their HCAs and firmware, built from a definition.

Everything here runs on the daemon's single event-loop thread, so device state changes are
serialised without locks, as commands to one firmware are.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hcasim.devices.cx3 import Cx3Firmware
from hcasim.devices.flash import Flash
from hcasim.lab.device_models import DEVICE_MODELS, Firmware
from hcasim.lab.protocol import ControlError
from hcasim.lab.spec import HostSpec
from hcasim.lab.store import LabStore

log = logging.getLogger("hcasim.lab")

#: Where Linux lists PCI devices; mstflint opens ``<this>/<address>/config``.
PCI_SYSFS = "/sys/bus/pci/devices"


@dataclass
class Device:
    """One HCA: its identity in the lab and its firmware."""

    ident: str
    host: str
    firmware: Firmware
    #: The PCI address (domain:bus:device.function) of a ConnectX-3 on its host, whose
    #: config space the real mstflint opens in sysfs (docs/secure-host.md, "The real
    #: mstflint on the local path"); None for devices without that path.
    pci_address: str | None = None

    @property
    def mst_paths(self) -> tuple[str, ...]:
        """The device files through which a host reaches this device: the mst names, then
        the sysfs config-space file of its PCI address, if it has one."""
        name = self.firmware.mst_name
        paths: tuple[str, ...] = (f"/dev/mst/{name}_pci_cr0", f"/dev/mst/{name}_pciconf0")
        if self.pci_address is not None:
            paths += (f"{PCI_SYSFS}/{self.pci_address}/config",)
        return paths


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


class Lab:
    """All hosts and devices of one lab, backed by its store."""

    def __init__(self, store: LabStore, definition: dict[str, Any]) -> None:
        self.store = store
        self.definition = definition
        self.hosts: dict[str, Host] = {}
        self.devices: dict[str, Device] = {}
        #: Called as ``listener(host, event)`` after a ``"reboot"`` or ``"driver_restart"``
        #: (the host's driver models load again; hcasim.hosts.cx3_wire).
        self.host_listeners: list[Callable[[str, str], None]] = []
        #: Called as ``listener(host)`` after a device's flash was written (a new image, a
        #: key set or cleared), once the write is durable.
        self.flash_listeners: list[Callable[[str], None]] = []
        flashes = store.flash_images()
        nv_objects = store.all_nv_objects()
        for raw in definition["hosts"]:
            spec = HostSpec.from_json(raw)
            host = self.hosts.setdefault(spec.name, Host(spec.name))
            ident = f"{spec.name}/{spec.device}"
            if ident not in flashes:
                flashes[ident] = store.flash_image(ident)  # raises StoreError
            flash = Flash(contents=flashes.pop(ident), persist=self._persister(ident))
            model = DEVICE_MODELS[spec.device]
            firmware = model.make(spec, flash, self._nv_writer(ident), nv_objects.get(ident, {}))
            device = Device(ident, spec.name, firmware)
            if isinstance(firmware, Cx3Firmware):
                # bus 1 for the host's first ConnectX-3 (the address its mlx4 driver logs),
                # the next bus for each further one
                taken = sum(d.pci_address is not None for d in host.devices)
                device.pci_address = f"0000:{taken + 1:02x}:00.0"
            firmware.cold_boot()
            host.devices.append(device)
            self.devices[ident] = device

    @staticmethod
    def create(store: LabStore, definition: dict[str, Any]) -> Lab:
        """Record a new lab with factory flashes in the store and bring it up."""
        flashes = {}
        for raw in definition["hosts"]:
            spec = HostSpec.from_json(raw)
            flashes[f"{spec.name}/{spec.device}"] = DEVICE_MODELS[spec.device].factory_image(spec)
        store.create_lab(definition, flashes)
        return Lab(store, definition)

    def _persister(self, ident: str) -> Any:
        def persist(image: bytes) -> None:
            self.store.write_flash(ident, image)
            log.info("flash of %s written (%d bytes)", ident, len(image))
            for listener in self.flash_listeners:
                listener(ident.split("/", 1)[0])

        return persist

    def _nv_writer(self, ident: str) -> Callable[[str, Any], None]:
        def write(name: str, value: Any) -> None:
            self.store.write_nv_object(ident, name, value)

        return write

    def host(self, name: str) -> Host:
        """Return a host by name or raise ENOENT."""
        try:
            return self.hosts[name]
        except KeyError:
            raise ControlError(errno.ENOENT, f"unknown host {name!r}") from None

    def reboot_host(self, name: str) -> None:
        """Host reboot: every device on it cold-boots from its flash."""
        for device in self.host(name).devices:
            device.firmware.cold_boot()
        log.info("host %s rebooted", name)
        for listener in self.host_listeners:
            listener(name, "reboot")

    def restart_driver(self, name: str) -> None:
        """Driver restart on a host: the flash key comes into force, firmware keeps running."""
        for device in self.host(name).devices:
            device.firmware.driver_restart()
        log.info("driver restarted on host %s", name)
        for listener in self.host_listeners:
            listener(name, "driver_restart")

    def device_status(self, device: Device) -> dict[str, Any]:
        """Describe one device without any key material."""
        return {"device": device.mst_paths[0], **device.firmware.status()}

    def host_status(self, host: Host) -> dict[str, Any]:
        """Describe one host and its devices, without any key material."""
        return {"name": host.name, "devices": [self.device_status(d) for d in host.devices]}

    def status(self) -> dict[str, Any]:
        """Describe every host and device."""
        return {"hosts": [self.host_status(h) for h in self.hosts.values()]}
