"""Build request MADs the way the diagnostic tools do (client side, pure).

``smp()`` builds an SMP as libibmad's ``smp_query_via``/``smp_set_via`` do (IBTA 14.2.1):
LID-routed (class 0x01) when ``path`` is ``None``, else directed route (class 0x81) with
``InitialPath[1..n] = path`` and the permissive DR SLID/DLID.  ``sim_request()`` wraps a MAD
into the 288-byte ibsim datagram as umad2sim does (docs/sources.md §1.3): DLID 0xFFFF and SLID
0xFFFF for directed route, SLID 0 ("fill in for me") otherwise, length 256.
"""

from __future__ import annotations

from hcasim.ib import mad
from hcasim.ib.simproto import SIM_MAD_SIZE, SimRequest

SMP_QP = 0
GSI_QP = 1


def smp(attr_id: int, attr_mod: int = 0, *, method: int = mad.METHOD_GET,
        path: list[int] | tuple[int, ...] | None = None, tid: int = 0x1234,
        m_key: int = 0, data: bytes = b"") -> bytes:
    """A 256-byte SMP; ``path`` lists the egress ports of a directed route (``[]`` = the
    local port, hop count 0)."""
    if len(data) > mad.SMP_DATA_SIZE:
        raise ValueError("SMP data is at most 64 bytes")
    if path is None:
        return mad.Smp(base_version=mad.BASE_VERSION, mgmt_class=mad.CLASS_SUBN_LID_ROUTED,
                       class_version=1, method=method, tid=tid, attr_id=attr_id,
                       attr_mod=attr_mod, m_key=m_key, data=data).encode()
    if len(path) > mad.MAX_DR_HOPS:
        raise ValueError(f"at most {mad.MAX_DR_HOPS} hops")
    initial = bytes([0, *path])
    return mad.DrSmp(base_version=mad.BASE_VERSION, mgmt_class=mad.CLASS_SUBN_DIRECTED_ROUTE,
                     class_version=1, method=method, hop_count=len(path), tid=tid,
                     attr_id=attr_id, attr_mod=attr_mod, m_key=m_key,
                     dr_slid=mad.PERMISSIVE_LID, dr_dlid=mad.PERMISSIVE_LID, data=data,
                     initial_path=initial).encode()


def perf(attr_id: int, data: bytes = b"", *, method: int = mad.METHOD_GET,
         tid: int = 0x5678) -> bytes:
    """A 256-byte PerfMgt (class 0x04) MAD with ``data`` at byte 64."""
    return mad.PerfMgtMad(base_version=mad.BASE_VERSION, mgmt_class=mad.CLASS_PERF_MGT,
                          class_version=1, method=method, tid=tid, attr_id=attr_id,
                          data=data).encode()


def sim_request(mad_bytes: bytes, dlid: int | None = None, *, dqp: int | None = None,
                sqp: int = 0) -> SimRequest:
    """Wrap a MAD into a ``sim_request``: ``dlid=None`` means directed route (0xFFFF)."""
    if dlid is None:
        dlid, slid = mad.PERMISSIVE_LID, mad.PERMISSIVE_LID
    else:
        slid = 0
    if dqp is None:
        dqp = SMP_QP if mad_bytes[1] in (mad.CLASS_SUBN_LID_ROUTED,
                                         mad.CLASS_SUBN_DIRECTED_ROUTE) else GSI_QP
    return SimRequest(dlid=dlid, slid=slid, dqp=dqp, sqp=sqp, status=0, length=SIM_MAD_SIZE,
                      mad=mad_bytes)
