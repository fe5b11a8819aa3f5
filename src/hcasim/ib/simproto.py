"""The ibsim socket protocol between libumad2sim.so and the simulator (ibsim 0.10).

Structures from ibsim ``include/ibsim.h`` (tag ibsim-0.10) as summarised in the project
docs/sources.md §1.2-1.3.  Control messages (``sim_ctl`` and its payloads) are in the
host's byte order, because both ends share one machine; ``sim_request`` carries
big-endian fields except the LID containers (see :class:`SimRequest`).  Layouts are those
of x86-64 (checked there with ``sizeof``/``offsetof``).
"""

from __future__ import annotations

import enum
from typing import ClassVar, Final

from hcasim.ib.layout import Layout, host_uint, raw, text, uint

SIM_MAGIC: Final = 0xDEADBEEF  # ibsim.h:61
SIM_CTL_MAX_DATA: Final = 64  # ibsim.h:62
SIM_CTL_SIZE: Final = 80
SIM_REQUEST_SIZE: Final = 288
SIM_MAX_CLIENTS: Final = 10  # IBSIM_MAX_CLIENTS, ibsim.h:56
SIM_MAD_SIZE: Final = 256
SIM_STATUS_TIMEOUT: Final = 110  # ETIMEDOUT: the server bounces an unroutable MAD (sim_mad.c:1911)
DEFAULT_SOCKNAME = "sim"  # ibsim.h:59; overridden by IBSIM_SOCKNAME


class SimCtlType(enum.IntEnum):
    """``enum SIM_CTL_TYPES`` (ibsim.h:74-88)."""

    ERROR = 0
    CONNECT = 1
    DISCONNECT = 2
    GET_PORT = 3
    GET_VENDOR = 4
    GET_GID = 5
    GET_GUID = 6
    GET_NODEINFO = 7
    GET_PORTINFO = 8
    SET_ISSM = 9
    GET_PKEYS = 10


class SimCtl(Layout):
    """``struct sim_ctl`` (ibsim.h:90-96), 80 bytes, host byte order."""

    SIZE: ClassVar[int] = SIM_CTL_SIZE
    magic: int = host_uint(0, 4)
    clientid: int = host_uint(4, 4)
    type: int = host_uint(8, 4)
    len: int = host_uint(12, 4)
    data: bytes = raw(16, SIM_CTL_MAX_DATA)


class SimClientInfo(Layout):
    """``struct sim_client_info`` (ibsim.h:98-103), the CONNECT payload, 44 bytes.

    Request: ``id`` = client pid (local mode) or data UDP port (inet mode), ``nodeid`` =
    ``SIM_HOST``; reply: ``id`` = client index, ``nodeid`` = the attach node's id.
    """

    SIZE: ClassVar[int] = 44
    id: int = host_uint(0, 4)
    qp: int = host_uint(4, 4)
    issm: int = host_uint(8, 4)
    nodeid: str = text(12, 32)


class SimVendor(Layout):
    """``struct sim_vendor`` (ibsim.h:44-49), the GET_VENDOR reply, 24 bytes (4 pad)."""

    SIZE: ClassVar[int] = 24
    vendor_id: int = host_uint(0, 4)
    vendor_part_id: int = host_uint(4, 4)
    hw_ver: int = host_uint(8, 4)
    fw_ver: int = host_uint(16, 8)


class SimPort(Layout):
    """``struct sim_port`` (ibsim.h:51-54), the GET_PORT reply, 4 bytes (1 pad)."""

    SIZE: ClassVar[int] = 4
    lid: int = host_uint(0, 2)
    state: int = host_uint(2, 1)


class SimGuid(Layout):
    """The GET_GUID reply: the node GUID, a u64 in host order (docs/sources.md §1.2)."""

    SIZE: ClassVar[int] = 8
    guid: int = host_uint(0, 8)


class SimGid(Layout):
    """The GET_GID reply: GidPrefix in network order, then the node GUID in host order
    (docs/sources.md §1.2)."""

    SIZE: ClassVar[int] = 16
    prefix: int = uint(0, 64)
    guid: int = host_uint(8, 8)


class SimIssm(Layout):
    """The SET_ISSM argument: an int in host order, non-zero to become an SM client."""

    SIZE: ClassVar[int] = 4
    issm: int = host_uint(0, 4)


class SimRequest(Layout):
    """``struct sim_request`` (ibsim.h:64-72), one per data datagram, 288 bytes.

    ``dlid``/``slid`` are u32 containers whose low 16 bits hold the LID in network
    order, so on x86-64 the big-endian LID is in the first two bytes (docs/sources.md §1.3);
    bytes 2-3 are zero.  ``dqp``, ``sqp`` and ``status`` are big-endian u32, 4 bytes of
    padding follow (garbage from umad2sim, ignored), ``length`` is a big-endian u64 of
    valid MAD bytes (at most 256) and ``mad`` the MAD as on the wire.
    """

    SIZE: ClassVar[int] = SIM_REQUEST_SIZE
    dlid: int = uint(0, 16)
    slid: int = uint(32, 16)
    dqp: int = uint(64, 32)
    sqp: int = uint(96, 32)
    status: int = uint(128, 32)
    length: int = uint(192, 64)
    mad: bytes = raw(32, SIM_MAD_SIZE)
