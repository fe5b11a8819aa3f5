"""Well-formed MADs and their mutations: the inputs of the fuzz test and of the compiled
path's differential test (``tests/test_fabric_fuzz.py``, ``tests/test_native.py``).

:func:`corpus` covers every SMA attribute Get and Set, LID-routed and directed route, PerfMgt,
vendor, SA, traps and responses; :func:`mutate` damages one of them the ways a broken or
hostile client would. Without ``with_sets`` the corpus has no SMInfo Set: with the right
SM_Key such a Set is how a real SM hands over or is told to stand by (IBTA 14.4), so it is
not bad input to send while OpenSM runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hcasim.ib import build, mad

#: SMA attributes and useful modifiers (IBTA 14.2.5; docs/sources.md §2.4).
ATTRIBUTES = (
    (mad.ATTR_NODE_DESC, 0), (mad.ATTR_NODE_INFO, 0), (mad.ATTR_SWITCH_INFO, 0),
    (mad.ATTR_GUID_INFO, 0), (mad.ATTR_PORT_INFO, 0), (mad.ATTR_PORT_INFO, 3),
    (mad.ATTR_PKEY_TABLE, 0), (mad.ATTR_PKEY_TABLE, 2 << 16), (mad.ATTR_SL2VL_TABLE, 0x0102),
    (mad.ATTR_VL_ARB_TABLE, 1 << 16 | 2), (mad.ATTR_LINEAR_FDB, 0), (mad.ATTR_LINEAR_FDB, 767),
    (mad.ATTR_MULTICAST_FDB, 0), (mad.ATTR_SM_INFO, 0), (mad.ATTR_MLNX_EXT_PORT_INFO, 1),
    (mad.ATTR_NOTICE, 0), (0x0033, 0),
)
PATHS = ((), (1,), (1, 0), (1, 3), (1, 2, 1), (1, 36), (1, 3, 1, 1))
EDGE_MODIFIERS = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000, 479, 480, 767, 768,
                  1 << 28, 0x1FF, 0x3F << 16, 255, 256)
EDGE_LIDS = (0, 1, 2, 3, 6, 7, 999, 0xBFFF, 0xC000, 0xFFFE, 0xFFFF)
EDGE_BYTES = (0, 1, 2, 0x3F, 0x40, 0x7F, 0x80, 0x81, 0xFE, 0xFF)


def corpus(with_sets: bool) -> list[tuple[bytes, int | None]]:
    """Well-formed MADs to mutate: (MAD, DLID or None for directed route)."""
    items: list[tuple[bytes, int | None]] = []
    data = bytes(range(64))
    for attr, mod in ATTRIBUTES:
        methods = [mad.METHOD_GET]
        if with_sets or attr == mad.ATTR_NOTICE:
            methods.append(mad.METHOD_SET)
        for method in methods:
            if method == mad.METHOD_SET and attr == mad.ATTR_SM_INFO and not with_sets:
                continue  # see the module docstring
            for path in PATHS:
                items.append((build.smp(attr, mod, method=method, path=path, data=data), None))
            for dlid in (1, 2, 3, 4, 5, 6):
                items.append((build.smp(attr, mod, method=method, data=data), dlid))
    items.append((build.smp(mad.ATTR_NOTICE, method=mad.METHOD_TRAP, data=data), 1))
    items.append((build.smp(mad.ATTR_NOTICE, method=mad.METHOD_TRAP_REPRESS, path=()), None))
    counters = bytes([0, 1]) + bytes(62)
    for method in (mad.METHOD_GET, mad.METHOD_SET):
        items.append((build.perf(0x0012, counters, method=method), 2))
    items.append((build.perf(mad.ATTR_CLASS_PORT_INFO), 3))
    sa_get = bytearray(build.perf(0x0011, bytes(64), method=mad.METHOD_GET_TABLE))
    sa_get[1], sa_get[2] = mad.CLASS_SUBN_ADM, 2
    items.append((bytes(sa_get), 1))
    vendor = bytearray(build.perf(0x0050, bytes(64)))
    vendor[1] = 0x0A
    vendor[20:24] = (0xF0014 >> 2 | 1 << 24).to_bytes(4, "big")
    items.append((bytes(vendor), 3))
    response = bytearray(build.smp(mad.ATTR_NODE_INFO, path=(1,)))
    response[3], response[4] = mad.METHOD_GET_RESP, 0x80
    items.append((bytes(response), None))
    return items


def mutate(rng: random.Random, base: bytes, dlid: int | None,
           allowed: Callable[[bytes], bool]) -> bytes:
    """One mutated 288-byte datagram (or a datagram of the wrong size)."""
    datagram = bytearray(build.sim_request(base, dlid).encode())
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(12)
        if kind == 0:  # flip a bit in the header or the DR part
            at = 32 + rng.choice((rng.randrange(64), rng.randrange(128, 160)))
            datagram[at] ^= 1 << rng.randrange(8)
        elif kind == 1:  # an edge value in a header byte
            datagram[32 + rng.randrange(40)] = rng.choice(EDGE_BYTES)
        elif kind == 2:  # attribute modifier
            datagram[52:56] = rng.choice(EDGE_MODIFIERS).to_bytes(4, "big")
        elif kind == 3:  # hop count, hop pointer
            datagram[32 + rng.choice((6, 7))] = rng.randrange(256)
        elif kind == 4:  # DLID / SLID in the sim_request
            at = rng.choice((0, 4))
            datagram[at:at + 2] = rng.choice(EDGE_LIDS).to_bytes(2, "big")
        elif kind == 5:  # dqp, sqp, status, padding, length
            at = rng.randrange(8, 32)
            datagram[at] = rng.randrange(256)
        elif kind == 6:  # attribute id
            datagram[48:50] = rng.randrange(0x10000).to_bytes(2, "big")
        elif kind == 7:  # management class, method
            datagram[32 + rng.choice((1, 3))] = rng.randrange(256)
        elif kind == 8:  # SMP data
            at = 96 + rng.randrange(64)
            datagram[at] = rng.randrange(256)
        elif kind == 9:  # DR SLID/DLID, initial path
            at = 32 + rng.choice((32, 33, 34, 35)) if rng.random() < 0.5 else \
                160 + rng.randrange(64)
            datagram[at] = rng.randrange(256)
        elif kind == 10:  # wrong size (last: the other mutations keep the size)
            size = rng.choice((0, 1, 32, 287, 289, 512, rng.randrange(600)))
            datagram = (datagram + bytes(size))[:size]
            break
        else:  # garbage
            datagram = bytearray(rng.randbytes(288))
            break
    blob = bytes(datagram)
    return blob if allowed(blob) else bytes(build.sim_request(base, dlid).encode())
