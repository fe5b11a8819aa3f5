"""The performance management agent (PMA): PerfMgt class 0x04 (IBTA 16.1; behaviour of the
PortCounters part as ibsim ``sim_mad.c:292-309,937-985``).

Counters move as MADs cross links (:func:`hcasim.fabric.subnet.count_hop`) and saturate at
their maximum (IBTA 16.1.3.5).  PortSelect 0xFF on a switch sums all ports; on a CA
PortSelect must be the port the MAD arrived on.  A Set clears the counters whose
CounterSelect bit is set (PortCounters: CounterSelect2, any bit, clears PortXmitWait) and
returns the result.

Besides PortCounters the PMA serves the optional attributes perfquery and ibqueryerrors
ask for (IBTA 16.1.4): PortCountersExtended, PortXmitDataSL / PortRcvDataSL,
PortRcvErrorDetails, PortXmitDiscardDetails, PortOpRcvCounters, PortFlowCtlCounters,
PortVLOpPackets / PortVLOpData, PortVLXmitFlowCtlUpdateErrors and PortVLXmitWaitCounters.
Each reads the port's running totals (:data:`hcasim.fabric.subnet.TOTAL_XMIT_VL15` and
the rest) minus what the counter read when a Set last cleared it, so every attribute is
reset on its own, as on hardware.  What the lab carries: every MAD is one 288-byte packet
(72 words) on SL 0, on VL 15 if it is a subnet management packet and VL 0 otherwise, all
unicast, all UD Send-Only; there is no link-level flow control, so flow-control packets,
flow-control update errors and transmit waits stay 0.

The sampling attributes (IBTA 16.1.3.2-16.1.3.3, mandatory; docs/sources.md §22, the
choices docs/fabric.md §7.1): a Set of PortSamplesControl starts a sample on the port
PortSelect names, SampleStart ticks after the Set, for SampleInterval ticks, of the
quantities CounterSelect0-4 name (the five mandatory ones: data and packets sent and
received, and PortXmitWait, which stays 0); PortSamplesResult then holds what each
counted.  A tick is 1 us (Tick 250, the value Linux's software-timed PMAs report).
Time is the engine's clock, the ``now`` every MAD arrives with: the counters move only
while a MAD is processed, so :func:`advance_samples`, run before each MAD when a start or
end has come due, reads them exactly as they stood at that moment.  A Set while a sample
is pending or running changes nothing and is answered with the sample in progress, as
the Linux PMAs answer it; a CounterSelect the lab cannot count is refused (0x001C).

Any other attribute (PortSamplesResultExtended among them), and any method but Get and
Set, is answered with status 0x000C (IBTA 13.4.7: unsupported method/attribute
combination), never passed on or dropped, so a tool gets an error at once instead of a
timeout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from hcasim.fabric.sma import Outcome, Reply
from hcasim.fabric.subnet import (
    COUNTER_FIELDS,
    COUNTER_LIMITS,
    TOTAL_DLID_MAPPING_ERRORS,
    TOTAL_INACTIVE_DISCARDS,
    TOTAL_LOCAL_PHYSICAL_ERRORS,
    TOTAL_RCV_VL0,
    TOTAL_RCV_VL15,
    TOTAL_XMIT_VL0,
    TOTAL_XMIT_VL15,
    PortSamples,
    PortState,
    Subnet,
)
from hcasim.ib import mad, perf
from hcasim.ib.layout import Layout

DATA_SIZE: Final = mad.MAD_SIZE - mad.GMP_PERF_DATA_OFFSET
RESP_TIME_VALUE: Final = 0x12  # ClassPortInfo.RespTimeValue as ibsim reports it (do_cpi)
_XMIT_WAIT_BIT: Final = perf.COUNTER_SELECT_BITS["port_xmit_wait"]
WORDS_PER_MAD: Final = 72  # 288 bytes on the wire, counted in 4-byte words (IBTA 16.1.3.5)
MAD_SL: Final = 0  # the SL every MAD of the lab is sent on
GMP_VL: Final = 0  # the data VL general MADs use; SMPs use VL15


def _pad(data: bytes) -> bytes:
    return data + bytes(DATA_SIZE - len(data))


def class_port_info(port: PortState) -> perf.ClassPortInfo:
    """PerfMgt ClassPortInfo of ``port``'s node: what the PMA really implements (IBTA
    16.1.2): PortCountersExtended (IsExtendedWidthSupported), PortCounters.PortXmitWait
    (IsPortXmitWaitSupported) and, on switches, PortSelect 0xFF (IsAllPortSelect)."""
    caps = perf.PERF_CAP_EXTENDED_WIDTH | perf.PERF_CAP_PORT_XMIT_WAIT
    if port.node.is_switch:
        caps |= perf.PERF_CAP_ALL_PORT_SELECT
    return perf.ClassPortInfo(base_version=mad.BASE_VERSION, class_version=1,
                              capability_mask=caps, resp_time_value=RESP_TIME_VALUE)


def counters_of(ports: list[PortState]) -> list[int]:
    """The PortCounters counters of ``ports`` summed, each saturating at its limit."""
    count = len(COUNTER_FIELDS)
    totals = [0] * count
    for port in ports:
        counters = port.counters
        if counters is not None:
            for i in range(count):
                totals[i] += counters[i]
    return [min(v, limit) for v, limit in zip(totals, COUNTER_LIMITS, strict=True)]


def _total(port: PortState, index: int) -> int:
    counters = port.counters
    return 0 if counters is None else counters[index]


def _xmit_pkts(port: PortState) -> int:
    return _total(port, TOTAL_XMIT_VL15) + _total(port, TOTAL_XMIT_VL0)


def _rcv_pkts(port: PortState) -> int:
    return _total(port, TOTAL_RCV_VL15) + _total(port, TOTAL_RCV_VL0)


def _zero(port: PortState) -> int:
    return 0


def _on_sl(reader: Callable[[PortState], int], sl: int) -> Callable[[PortState], int]:
    return reader if sl == MAD_SL else _zero


def _rcv_on_vl(vl: int, unit: int) -> Callable[[PortState], int]:
    if vl == 15:
        return lambda p: _total(p, TOTAL_RCV_VL15) * unit
    if vl == GMP_VL:
        return lambda p: _total(p, TOTAL_RCV_VL0) * unit
    return _zero


_Counter = tuple[str, int, Callable[[PortState], int]]
"""One counter of an attribute: field name, array index (-1: a plain field), and the
running total it is read from."""

_SL_COUNT: Final = 16


def _attribute_counters() -> dict[int, tuple[type[Layout], tuple[_Counter, ...]]]:
    """Each optional attribute: its layout and its counters in CounterSelect bit order."""
    words = WORDS_PER_MAD
    table: dict[int, tuple[type[Layout], tuple[_Counter, ...]]] = {
        perf.ATTR_PORT_COUNTERS_EXTENDED: (perf.PortCountersExtended, (
            ("port_xmit_data", -1, lambda p: _xmit_pkts(p) * words),
            ("port_rcv_data", -1, lambda p: _rcv_pkts(p) * words),
            ("port_xmit_pkts", -1, _xmit_pkts),
            ("port_rcv_pkts", -1, _rcv_pkts),
            ("port_unicast_xmit_pkts", -1, _xmit_pkts),
            ("port_unicast_rcv_pkts", -1, _rcv_pkts),
            ("port_multicast_xmit_pkts", -1, _zero),
            ("port_multicast_rcv_pkts", -1, _zero))),
        perf.ATTR_PORT_XMIT_DATA_SL: (perf.PortXmitDataSL, tuple(
            ("data_sl", sl, _on_sl(lambda p: _xmit_pkts(p) * words, sl))
            for sl in range(_SL_COUNT))),
        perf.ATTR_PORT_RCV_DATA_SL: (perf.PortRcvDataSL, tuple(
            ("data_sl", sl, _on_sl(lambda p: _rcv_pkts(p) * words, sl))
            for sl in range(_SL_COUNT))),
        perf.ATTR_PORT_RCV_ERROR_DETAILS: (perf.PortRcvErrorDetails, (
            ("port_local_physical_errors", -1,
             lambda p: _total(p, TOTAL_LOCAL_PHYSICAL_ERRORS)),
            ("port_malformed_packet_errors", -1, _zero),
            ("port_buffer_overrun_errors", -1, _zero),
            ("port_dlid_mapping_errors", -1,
             lambda p: _total(p, TOTAL_DLID_MAPPING_ERRORS)),
            ("port_vl_mapping_errors", -1, _zero),
            ("port_looping_errors", -1, _zero))),
        perf.ATTR_PORT_XMIT_DISCARD_DETAILS: (perf.PortXmitDiscardDetails, (
            ("port_inactive_discards", -1, lambda p: _total(p, TOTAL_INACTIVE_DISCARDS)),
            ("port_neighbor_mtu_discards", -1, _zero),
            ("port_sw_lifetime_limit_discards", -1, _zero),
            ("port_sw_hoq_lifetime_limit_discards", -1, _zero))),
        perf.ATTR_PORT_OP_RCV_COUNTERS: (perf.PortOpRcvCounters, (
            ("port_op_rcv_pkts", -1, _rcv_pkts),
            ("port_op_rcv_data", -1, lambda p: _rcv_pkts(p) * words))),
        perf.ATTR_PORT_FLOW_CTL_COUNTERS: (perf.PortFlowCtlCounters, (
            ("port_xmit_flow_pkts", -1, _zero),
            ("port_rcv_flow_pkts", -1, _zero))),
        perf.ATTR_PORT_VL_OP_PACKETS: (perf.PortVLOpPackets, tuple(
            ("packets", vl, _rcv_on_vl(vl, 1)) for vl in range(_SL_COUNT))),
        perf.ATTR_PORT_VL_OP_DATA: (perf.PortVLOpData, tuple(
            ("data", vl, _rcv_on_vl(vl, words)) for vl in range(_SL_COUNT))),
        perf.ATTR_PORT_VL_XMIT_FLOW_CTL_UPDATE_ERRORS: (perf.PortVLXmitFlowCtlUpdateErrors,
            tuple(("errors", vl, _zero) for vl in range(_SL_COUNT))),
        perf.ATTR_PORT_VL_XMIT_WAIT_COUNTERS: (perf.PortVLXmitWaitCounters, tuple(
            ("wait", vl, _zero) for vl in range(_SL_COUNT))),
    }
    return table


ATTRIBUTES: Final = _attribute_counters()
"""The optional PerfMgt attributes the PMA serves, by attribute ID."""


def _widths(layout: type[Layout]) -> dict[str, int]:
    return {spec.name: spec.width for spec in layout.field_specs()}


def _read(port: PortState, attr_id: int, counter: _Counter) -> int:
    """A counter of ``port`` since its last reset (unbounded)."""
    name, index, reader = counter
    marks = port.perf_marks
    mark = 0 if marks is None else marks.get(f"{attr_id:x}.{name}.{index}", 0)
    return reader(port) - mark


def _clear(port: PortState, attr_id: int, counter: _Counter) -> None:
    name, index, reader = counter
    if port.perf_marks is None:
        port.perf_marks = {}
    port.perf_marks[f"{attr_id:x}.{name}.{index}"] = reader(port)


def _target_ports(port: PortState, select: int) -> list[PortState] | None:
    """The ports PortSelect names, or ``None`` if it names none this PMA may answer for."""
    node = port.node
    if node.is_switch and select == perf.ALL_PORTS:
        return list(node.ports)
    target = node.port(select)
    if target is None or (not node.is_switch and target is not port):
        return None
    return [target]


def _optional(port: PortState, request: mad.PerfMgtMad) -> Outcome:
    layout, counters = ATTRIBUTES[request.attr_id]
    header = perf.PortCounters.decode(request.data)  # PortSelect, CounterSelect: same bits
    select, counter_select = header.port_select, header.counter_select
    ports = _target_ports(port, select)
    if ports is None:
        return Reply(mad.STATUS_INVALID_FIELD, request.data)
    attr_id = request.attr_id
    if request.method == mad.METHOD_SET:
        for bit, counter in enumerate(counters):
            if counter_select & (1 << bit):
                for p in ports:
                    _clear(p, attr_id, counter)
    widths = _widths(layout)
    fields: dict[str, int | list[int]] = {}
    for counter in counters:
        name, index, _ = counter
        value = min(sum(_read(p, attr_id, counter) for p in ports), (1 << widths[name]) - 1)
        if index < 0:
            fields[name] = value
        else:
            values = fields.setdefault(name, [0] * _SL_COUNT)
            assert isinstance(values, list)
            values[index] = value
    args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in fields.items()}
    reply = layout(port_select=select, counter_select=counter_select, **args)  # type: ignore[call-arg]
    return Reply(mad.STATUS_OK, _pad(reply.encode()))


# -- sampling: PortSamplesControl and PortSamplesResult ------------------------------------

# Tick 250: 1 us per tick, what Linux's ipath and qib (6120) PMAs, whose sampling runs on a
# software timer as the lab's does, report (docs/sources.md §22.3); SampleStart and
# SampleInterval count these ticks.
SAMPLE_TICK: Final = 250
SAMPLE_TICK_SECONDS: Final = 1e-6
# Counters 0-4 each take any of the mandatory quantities (CounterMask 1, "only the
# mandatory quantities", as the Linux PMAs report it); counters 5-14 do not exist (0).
SAMPLED_COUNTERS: Final = 5
COUNTER_MASK_MANDATORY: Final = 1
SAMPLE_COUNTER_LIMIT: Final = 0xFFFFFFFF  # CounterWidth 32 bits; counters stop there
DEFAULT_COUNTER_SELECT: Final = perf.SAMPLE_MANDATORY + (0,) * (
    perf.SAMPLE_COUNTERS - SAMPLED_COUNTERS)


def _sample_reader(select: int) -> Callable[[PortState], int]:
    """The running total a mandatory CounterSelect code samples (never cleared by a
    PortCounters Set, so a reset during a sample does not disturb it)."""
    words = WORDS_PER_MAD
    if select == perf.SAMPLE_XMIT_DATA:
        return lambda p: _xmit_pkts(p) * words
    if select == perf.SAMPLE_RCV_DATA:
        return lambda p: _rcv_pkts(p) * words
    if select == perf.SAMPLE_XMIT_PKTS:
        return _xmit_pkts
    if select == perf.SAMPLE_RCV_PKTS:
        return _rcv_pkts
    return _zero  # PortXmitWait: nothing waits for credits in the lab


def _snapshot(samples: PortSamples) -> list[int]:
    """What each selected quantity reads now, summed over the sampled ports."""
    values = []
    for select in samples.counter_select[:SAMPLED_COUNTERS]:
        reader = _sample_reader(select)
        values.append(sum(reader(p) for p in samples.ports))
    return values


def _advance(samples: PortSamples, now: float) -> bool:
    """Move one sample on to ``now``: start it (read the base) when its start delay has
    passed, end it (the result) when its interval has; whether it is still pending or
    running afterwards."""
    if samples.status == perf.SAMPLE_STATUS_STARTED and now >= samples.starts_at:
        samples.base = _snapshot(samples)
        samples.status = perf.SAMPLE_STATUS_RUNNING
    if samples.status == perf.SAMPLE_STATUS_RUNNING and now >= samples.ends_at:
        counted = [min(end - base, SAMPLE_COUNTER_LIMIT)
                   for end, base in zip(_snapshot(samples), samples.base, strict=True)]
        samples.result = tuple(counted) + (0,) * (perf.SAMPLE_COUNTERS - SAMPLED_COUNTERS)
        samples.status = perf.SAMPLE_STATUS_DONE
    return samples.status != perf.SAMPLE_STATUS_DONE


def _next_due(samples: PortSamples) -> float:
    return (samples.starts_at if samples.status == perf.SAMPLE_STATUS_STARTED
            else samples.ends_at)


def advance_samples(subnet: Subnet, now: float) -> None:
    """Start and end the samples that came due by ``now`` (the engine calls this before a
    MAD moves any counter, once ``now`` reaches :attr:`Subnet.sample_due`)."""
    active: list[PortState] = []
    due = math.inf
    for port in subnet.sampling:
        samples = port.samples
        if samples is not None and _advance(samples, now):
            active.append(port)
            due = min(due, _next_due(samples))
    subnet.sampling = active
    subnet.sample_due = due


def _samples_of(port: PortState) -> PortSamples:
    samples = port.samples
    if samples is None:
        samples = PortSamples(port.number, DEFAULT_COUNTER_SELECT)
        port.samples = samples
    return samples


def samples_control(samples: PortSamples) -> perf.PortSamplesControl:
    """The PortSamplesControl a PMA reports for its sampling state (docs/fabric.md §7.1):
    Tick 250, 32-bit counters, counters 0-4 taking the mandatory quantities, no optional
    or vendor counter selects, one sample at a time."""
    masks = (COUNTER_MASK_MANDATORY,) * SAMPLED_COUNTERS
    return perf.PortSamplesControl(
        port_select=samples.port_select, tick=SAMPLE_TICK,
        counter_width=perf.COUNTER_WIDTH_32,
        counter_masks=masks + (0,) * (10 - SAMPLED_COUNTERS),
        sample_status=samples.status, sample_start=samples.sample_start,
        sample_interval=samples.sample_interval, tag=samples.tag,
        counter_select=samples.counter_select)


def _selects_countable(selects: tuple[int, ...]) -> bool:
    """Whether every CounterSelectN names what counter N can count: one of the mandatory
    codes for counters 0-4, 0 for the counters that do not exist."""
    for i, select in enumerate(selects):
        if i < SAMPLED_COUNTERS:
            if select not in perf.SAMPLE_MANDATORY:
                return False
        elif select != 0:
            return False
    return True


def _samples_control(subnet: Subnet | None, port: PortState, request: mad.PerfMgtMad,
                     now: float) -> Outcome:
    asked = perf.PortSamplesControl.decode(request.data)
    ports = _target_ports(port, asked.port_select)
    if ports is None:
        return Reply(mad.STATUS_INVALID_FIELD, request.data)
    samples = _samples_of(port)
    _advance(samples, now)
    if request.method == mad.METHOD_SET and samples.status == perf.SAMPLE_STATUS_DONE:
        if not _selects_countable(asked.counter_select):
            return Reply(mad.STATUS_INVALID_FIELD, request.data)
        samples.port_select = asked.port_select
        samples.ports = ports
        samples.sample_start = asked.sample_start
        samples.sample_interval = asked.sample_interval
        samples.tag = asked.tag
        samples.counter_select = asked.counter_select
        samples.result = (0,) * perf.SAMPLE_COUNTERS
        # no interval: done at once, nothing counted (qib's 6120, docs/sources.md §22.2)
        samples.status = (perf.SAMPLE_STATUS_STARTED if asked.sample_interval
                          else perf.SAMPLE_STATUS_DONE)
        samples.starts_at = now + asked.sample_start * SAMPLE_TICK_SECONDS
        samples.ends_at = samples.starts_at + asked.sample_interval * SAMPLE_TICK_SECONDS
        if _advance(samples, now) and subnet is not None:
            if port not in subnet.sampling:
                subnet.sampling.append(port)
            subnet.sample_due = min(subnet.sample_due, _next_due(samples))
    return Reply(mad.STATUS_OK, _pad(samples_control(samples).encode()))


def _samples_result(port: PortState, request: mad.PerfMgtMad, now: float) -> Outcome:
    if request.method != mad.METHOD_GET:  # the result is read-only
        return Reply(mad.STATUS_METHOD_ATTR_UNSUPPORTED, request.data)
    samples = _samples_of(port)
    _advance(samples, now)
    done = samples.status == perf.SAMPLE_STATUS_DONE
    reply = perf.PortSamplesResult(
        tag=samples.tag, sample_status=samples.status,
        counters=samples.result if done else (0,) * perf.SAMPLE_COUNTERS)
    return Reply(mad.STATUS_OK, _pad(reply.encode()))


def handle_perf(port: PortState, request: mad.PerfMgtMad, now: float = 0.0,
                subnet: Subnet | None = None) -> Outcome:
    """Answer a PerfMgt request that arrived at ``port`` at ``now`` (the engine's clock,
    seconds) in ``subnet`` (see the module docstring)."""
    method = request.method
    attr_id = request.attr_id
    if attr_id == mad.ATTR_CLASS_PORT_INFO:
        status = mad.STATUS_OK if method == mad.METHOD_GET else mad.STATUS_METHOD_UNSUPPORTED
        return Reply(status, _pad(class_port_info(port).encode()))
    if method not in (mad.METHOD_GET, mad.METHOD_SET):
        return Reply(mad.STATUS_METHOD_UNSUPPORTED, request.data)
    if attr_id in ATTRIBUTES:
        return _optional(port, request)
    if attr_id == perf.ATTR_PORT_SAMPLES_CONTROL:
        return _samples_control(subnet, port, request, now)
    if attr_id == perf.ATTR_PORT_SAMPLES_RESULT:
        return _samples_result(port, request, now)
    if attr_id != perf.ATTR_PORT_COUNTERS:
        return Reply(mad.STATUS_METHOD_ATTR_UNSUPPORTED, request.data)
    asked = perf.PortCounters.decode(request.data)
    select = asked.port_select
    ports = _target_ports(port, select)
    if ports is None:
        return Reply(mad.STATUS_INVALID_FIELD, request.data)
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
