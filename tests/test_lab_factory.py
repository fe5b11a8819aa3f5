"""Factory flashes of many hosts: one image per (device kind, ini), GUIDs patched in, and
what each device reads back is what ``fs2.build_image`` gives for it (issue 3, item 6)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hcasim.devices import fs2
from hcasim.devices.cx3 import KINDS
from hcasim.fabric.fattree import fat_tree
from hcasim.fabric.netfile import format_netfile
from hcasim.lab.device_models import cx3_factory_image
from hcasim.lab.lab import Lab
from hcasim.lab.spec import (
    DEFAULT_FW_VERSION,
    DEFAULT_PSID,
    DEFAULT_RELEASE_DATE,
    HostSpec,
    lab_from_files,
)
from hcasim.lab.store import LabStore

_rng = random.Random(3)
GUIDS = [0, 1, 0x0002C90300A1B210, 0xFFFFFFFFFFFFFFFC, *(_rng.getrandbits(64) for _ in range(40))]


@pytest.mark.parametrize("device", sorted(KINDS))
@pytest.mark.parametrize("secure", [False, True])
def test_patched_images_are_built_images(device: str, secure: bool) -> None:
    for guid in GUIDS:
        guid = min(guid, 0xFFFFFFFFFFFFFFFC)
        built = fs2.build_image(device_id=KINDS[device].device_id, fw_version=DEFAULT_FW_VERSION,
                                psid=DEFAULT_PSID[device], release_date=DEFAULT_RELEASE_DATE,
                                guid_base=guid, cr_protection_en=secure)
        assert cx3_factory_image(HostSpec("h", device, secure, guid)) == built, hex(guid)


def test_guid_patcher_is_with_guids() -> None:
    image = cx3_factory_image(HostSpec("h", "mt4099", True, 0x1000))
    patch = fs2.guid_patcher(image)
    guids, macs = (5, 6, 7, 8), (9, 10)
    assert patch(guids, macs) == fs2.with_guids(image, guids, macs)
    info = fs2.parse_image(patch(guids, macs))
    assert (info.guids, info.macs) == (guids, macs)
    with pytest.raises(ValueError):
        patch((1, 2, 3), macs)
    with pytest.raises(ValueError):
        patch((1, 2, 3, 1 << 64), macs)


def test_a_generated_lab_reads_back_its_guids(tmp_path: Path) -> None:
    net = tmp_path / "ft.net"
    net.write_text(format_netfile(fat_tree(150, 12)))
    definition = lab_from_files(net, None)
    store = LabStore(tmp_path / "lab.db")
    try:
        Lab.create(store, definition)
        lab = Lab(store, definition)  # started again from the store
        assert len(lab.devices) == 150
        for raw in definition["hosts"]:
            firmware = lab.devices[f"{raw['name']}/mt4099"].firmware
            info = fs2.parse_image(firmware.flash.contents)  # type: ignore[attr-defined]
            base = raw["guid"]
            assert info.guids == (base, base + 1, base + 2, base + 3)
            assert info.macs == (fs2.derive_mac(base + 1), fs2.derive_mac(base + 2))
            assert firmware.status()["fw_version"] == "2.42.5000"
    finally:
        store.close()
