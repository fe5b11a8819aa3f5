"""Datagrams captured from the real tools, for the tests that decode them or answer them.

The captures were taken with strace from Debian ibsim 0.10 and infiniband-diags 44
(``smpquery`` under libumad2sim.so, SIM_HOST=hca1); ``tests/test_ib_wire.py`` has the
net file and what smpquery printed for them.
"""

from __future__ import annotations


def blob(*parts: str | int) -> bytes:
    """Bytes from hex strings and runs of zero bytes (ints)."""
    return b"".join(bytes(p) if isinstance(p, int) else bytes.fromhex(p) for p in parts)


# smpquery -D nodeinfo 0: the sim_request written and the one read back.
NODEINFO_REQUEST = blob("ffff0000ffff", 14, "207f", 8,
                        "01000181010100000000000000015edd1fa50011", 14, "ffffffff", 220)
NODEINFO_REPLY = blob(
    "ffff0000ffff", 14, "207f", 8, "01000181018180000000000000015edd1fa50011", 14, "ffffffff",
    28, "0101010200000000001000000000000000100000000000000010000100400000000000a101", 91,
    "01", 63)
# smpquery -D portinfo 0,1: one hop out of hca1 port 1, to sw1.
PORTINFO_REQUEST = blob("ffff0000ffff", 14, "fd7f", 8,
                        "01000181010100000001000000015aab2f540015", 14, "ffffffff", 93, "01",
                        126)
PORTINFO_REPLY = blob(
    "ffff0000ffff", 14, "fd7f", 8, "01000181018180000001000000015aab2f540015", 14, "ffffffff",
    50, "c04800000ff901021f02745200111040000808030040000000000000011f08", 8, "3000000001", 62,
    "0101", 62)
# umad2sim's CONNECT for SIM_HOST=hca1 from pid 0x5097, and ibsim's reply (client 0).
CONNECT_REQUEST = bytes.fromhex(
    "efbeadde00000000010000002c0000009750000000000000000000006863613100" + "00" * 47)
CONNECT_REPLY = bytes.fromhex(
    "efbeadde00000000010000002c0000000000000000000000000000006863613100" + "00" * 47)
GET_VENDOR_REPLY = bytes.fromhex(
    "efbeadde0000000004000000180000000000000000000000a10000000000000001" + "00" * 47)
