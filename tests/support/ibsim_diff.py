"""How the lab's SMP data may differ from the real ibsim 0.10's: only where hcasim.fabric
chose to (shared by ``tests/test_fabric_vs_ibsim.py`` and ``tests/test_fabric_parity.py``)."""

from __future__ import annotations

from hcasim.ib import mad

# Fields that differ on purpose (each a documented choice of hcasim.fabric):
# * PortInfo LinkWidth/Speed/SpeedExtSupported come from the net file's link tags (the
#   node's hardware, on every port, in IBTA's encodings) where ibsim reports fixed masks
#   1x-12x, SDR-QDR, FDR-HDR;
# * PortInfo GidPrefix reads as the IBTA default fe80:: until an SM sets it (ibsim: 0);
# * SwitchInfo LinearFDBCap is 48K, every unicast LID (ibsim 0.10: 30720);
# * PortInfo of a port with no cable: ibsim's "down" templates (sim_net.c:96-129) read
#   LocalPhyErrors 4 on switches and drop IsCapabilityMaskNoticeSupported on CAs.
PORTINFO_ALWAYS = {"link_width_supported", "link_speed_supported", "link_speed_ext_supported"}
PORTINFO_DOWN = {"capability_mask", "local_phy_errors"}
SWITCHINFO_BYTES = (0, 2)


def assert_same_data(attr: int, theirs: bytes, ours: bytes, *, down_port: bool = False,
                     gid_prefix_unset: bool = True, where: object = None) -> None:
    """Compare two 64-byte SMP data blocks, allowing only the documented differences."""
    if attr == mad.ATTR_PORT_INFO:
        from hcasim.ib.smp_attrs import PortInfo

        a, b = PortInfo.decode(theirs), PortInfo.decode(ours)
        ignore = set(PORTINFO_ALWAYS)
        if gid_prefix_unset:
            ignore.add("gid_prefix")
        if down_port:
            ignore |= PORTINFO_DOWN
        for spec in PortInfo.field_specs():
            if spec.name not in ignore:
                assert getattr(a, spec.name) == getattr(b, spec.name), (where, spec.name)
        return
    if attr == mad.ATTR_SWITCH_INFO:
        lo, hi = SWITCHINFO_BYTES
        theirs, ours = theirs[:lo] + theirs[hi:], ours[:lo] + ours[hi:]
    assert theirs == ours, (where, hex(attr), theirs.hex(), ours.hex())
