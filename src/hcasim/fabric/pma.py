"""The performance management agent (PMA): PerfMgt class 0x04, ClassPortInfo and
PortCounters (IBTA 16.1; behaviour as ibsim ``sim_mad.c:292-309,937-985``).

Counters move as MADs cross links (:meth:`hcasim.fabric.subnet.Subnet.count_hop`) and
saturate at their maximum (IBTA 16.1.3.5).  PortSelect 0xFF on a switch sums all ports;
on a CA PortSelect must be the port the MAD arrived on.  A Set clears the counters whose
CounterSelect bit is set (CounterSelect2, any bit: PortXmitWait) and returns the result.
"""

from __future__ import annotations

from hcasim.fabric.sma import NOT_HANDLED, Outcome, Reply
from hcasim.fabric.subnet import COUNTER_FIELDS, COUNTER_LIMITS, PortState
from hcasim.ib import mad, perf

DATA_SIZE = mad.MAD_SIZE - mad.GMP_PERF_DATA_OFFSET
RESP_TIME_VALUE = 0x12  # ClassPortInfo.RespTimeValue as ibsim reports it (do_cpi)
_XMIT_WAIT_BIT = perf.COUNTER_SELECT_BITS["port_xmit_wait"]


def _pad(data: bytes) -> bytes:
    return data + bytes(DATA_SIZE - len(data))


def class_port_info(port: PortState) -> perf.ClassPortInfo:
    """PerfMgt ClassPortInfo of ``port``'s node."""
    caps = perf.PERF_CAP_EXTENDED_WIDTH | perf.PERF_CAP_PORT_XMIT_WAIT
    if port.node.is_switch:
        caps |= perf.PERF_CAP_ALL_PORT_SELECT
    return perf.ClassPortInfo(base_version=mad.BASE_VERSION, class_version=1,
                              capability_mask=caps, resp_time_value=RESP_TIME_VALUE)


def counters_of(ports: list[PortState]) -> list[int]:
    """The counters of ``ports`` summed, each saturating at its limit."""
    totals = [0] * len(COUNTER_FIELDS)
    for port in ports:
        if port.counters is not None:
            for i, value in enumerate(port.counters):
                totals[i] += value
    return [min(v, limit) for v, limit in zip(totals, COUNTER_LIMITS, strict=True)]


def handle_perf(port: PortState, request: mad.PerfMgtMad) -> Outcome:
    """Answer a PerfMgt MAD that arrived at ``port``; ``NOT_HANDLED`` for attributes the
    PMA does not serve (PortSamplesControl/Result, ...), which go on to a client."""
    method = request.method
    if request.attr_id == mad.ATTR_CLASS_PORT_INFO:
        status = mad.STATUS_OK if method == mad.METHOD_GET else mad.STATUS_METHOD_UNSUPPORTED
        return Reply(status, _pad(class_port_info(port).encode()))
    if request.attr_id != perf.ATTR_PORT_COUNTERS:
        return NOT_HANDLED
    if method not in (mad.METHOD_GET, mad.METHOD_SET):
        return Reply(mad.STATUS_METHOD_UNSUPPORTED, request.data)
    asked = perf.PortCounters.decode(request.data)
    node = port.node
    select = asked.port_select
    if node.is_switch and select == perf.ALL_PORTS:
        ports = list(node.ports)
    else:
        target = node.port(select)
        if target is None or (not node.is_switch and target is not port):
            return Reply(mad.STATUS_INVALID_FIELD, request.data)
        ports = [target]
    if method == mad.METHOD_SET:
        mask = asked.counter_select | (_XMIT_WAIT_BIT if asked.counter_select2 else 0)
        for p in ports:
            if p.counters is not None:
                for i, name in enumerate(COUNTER_FIELDS):
                    if mask & perf.COUNTER_SELECT_BITS[name]:
                        p.counters[i] = 0
    values = dict(zip(COUNTER_FIELDS, counters_of(ports), strict=True))
    reply = perf.PortCounters(port_select=select, counter_select=asked.counter_select,
                              counter_select2=asked.counter_select2, **values)
    return Reply(mad.STATUS_OK, _pad(reply.encode()))
