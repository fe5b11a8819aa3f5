"""The web view's pieces without a daemon: the layout at the sizes the issue names (the
default lab, 1,024 and 20,000 HCAs of a fat tree), the SVG naming every host at any size,
the state differences that become timeline events, and the bounded event log."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from hcasim.fabric.fattree import fat_tree
from hcasim.fabric.subnet import Subnet
from hcasim.lab.view import DETAILED_MAX_HOSTS, compute_layout, render_svg, topology
from hcasim.lab.web import BATCH_HOSTS, Batch, EventLog, diff_host


def fabric_layout(hcas: int) -> tuple[Subnet, Any, list[tuple[str, list[str]]]]:
    """A fat tree's subnet, its layout and its host groups."""
    subnet = Subnet(fat_tree(hcas, 36))
    _switches, groups, spines, _links = topology(subnet)
    return subnet, compute_layout(spines, groups), groups


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether two (x, y, w, h) boxes overlap."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("hcas", [1024, 20000])
def test_every_host_is_placed_under_its_switch(hcas: int) -> None:
    subnet, layout, groups = fabric_layout(hcas)
    assert not layout.detailed and hcas > DETAILED_MAX_HOSTS
    cas = [n.id for n in subnet.nodes if not n.is_switch]
    assert len(cas) == hcas and set(layout.hosts) == set(cas)
    boxes = {switch: (x, y, w, h) for switch, x, y, w, h in layout.groups}
    for switch, hosts in groups:
        gx, gy, gw, gh = boxes[switch]
        for name in hosts:  # each host sits inside its switch's box
            x, y, w, h = layout.hosts[name]
            assert gx <= x and x + w <= gx + gw and gy <= y and y + h <= gy + gh
    group_boxes = list(boxes.values())
    for i in range(min(len(group_boxes), 200)):  # boxes do not overlap (a sample at 20,000)
        for j in range(i + 1, len(group_boxes)):
            assert not overlaps(group_boxes[i], group_boxes[j])
    # a picture the page can fit on a screen: neither a line nor a tower
    assert 0.3 < layout.width / layout.height < 4


def test_svg_names_every_host_at_any_size() -> None:
    subnet, layout, _groups = fabric_layout(1024)
    hosts = [{"name": n.id, "switch": "", "switch_port": 0, "state": {
        "summary": "open", "port_state": "Init", "lid": 0, "link": "4X EDR",
        "m_key": "not set", "devices": []}} for n in subnet.nodes if not n.is_switch]
    snap = {"layout": layout.to_json(), "hosts": hosts, "links": [], "switches": []}
    root = ET.fromstring(render_svg(snap))
    words = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {h["name"] for h in hosts} <= words


def host(**changes: Any) -> dict[str, Any]:
    """A host state as :func:`hcasim.lab.view.host_state` makes it, with changes."""
    device = {"kind": "cx3", "model": "ConnectX-3", "fw": "2.42.5000", "key": "not set",
              "cr_space": "open", "smp_firewall": False, "refused_cr_accesses": 0,
              "wrong_keys": 0}
    device.update(changes.pop("device", {}))
    state = {"port_state": "Init", "lid": 0, "link": "4X QDR", "m_key": "not set",
             "m_key_violations": 0, "devices": [device], "firewall_drops": 0,
             "withheld_smps": 0, "summary": "open"}
    state.update(changes)
    return state


def test_state_differences_become_events() -> None:
    assert diff_host(host(), host()) == []
    locked = host(device={"key": "active", "cr_space": "locked", "smp_firewall": True})
    assert diff_host(host(), locked) == [
        ("key", "key active (was not set)"), ("lock", "CR-space locked"),
        ("firewall", "SMP firewall on")]
    refused = host(firewall_drops=3, device={"refused_cr_accesses": 2, "wrong_keys": 1})
    assert diff_host(host(), refused) == [
        ("refused", "3 SMP(s) from the host dropped by the SMP firewall"),
        ("refused", "2 CR-space access(es) refused: CR-space locked"),
        ("refused", "1 hw_access attempt(s) with a wrong key refused")]
    assert diff_host(host(), host(port_state="Active", lid=7)) == [
        ("port", "port Active (was Init)"), ("port", "LID 7 (was 0)")]


def test_event_log_is_bounded_and_drops_a_page_that_falls_behind() -> None:
    events = EventLog(capacity=10)
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=3)
    events.subscribers.add(queue)
    for i in range(25):
        events.add("node1" if i % 2 else "node2", "lock", f"event {i}")
    assert len(events.events) == 10 and events.events[-1]["text"] == "event 24"
    assert events.seq == 25
    assert all(len(h) <= 50 for h in events.history.values())
    # the slow page was dropped and told to end its stream (it reconnects and reloads)
    assert queue not in events.subscribers
    drained = [queue.get_nowait() for _ in range(queue.qsize())]
    assert drained[-1] is None


def test_a_sweep_of_many_hosts_is_summed_up_and_reloads_the_pages() -> None:
    events = EventLog()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=100)
    events.subscribers.add(queue)
    batch = Batch()
    for i in range(BATCH_HOSTS + 1):
        new = host(port_state="Active", lid=i + 1)
        batch.add(f"H{i:05d}", new, diff_host(host(), new))
    batch.add("node1", host(), [("lock", "CR-space locked")])
    batch.flush(events)
    texts = [(e["host"], e["text"]) for e in events.events]
    assert texts == [("node1", "CR-space locked"),
                     ("", f"port Active (was Init) on {BATCH_HOSTS + 1} hosts"),
                     ("", f"LID changed on {BATCH_HOSTS + 1} hosts")]
    messages = [json.loads(m) for m in (queue.get_nowait() for _ in range(queue.qsize()))
                if m is not None]
    assert messages[-1] == {"type": "reload"}
    assert not any(m["type"] == "host" for m in messages)


def test_a_few_changes_go_to_the_pages_one_by_one() -> None:
    events = EventLog()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=100)
    events.subscribers.add(queue)
    batch = Batch()
    new = host(port_state="Active", lid=3)
    batch.add("node2", new, diff_host(host(), new))
    batch.flush(events)
    messages = [json.loads(m) for m in (queue.get_nowait() for _ in range(queue.qsize()))
                if m is not None]
    assert [m["type"] for m in messages] == ["event", "event", "host"]
    assert messages[-1]["name"] == "node2" and messages[-1]["state"]["lid"] == 3
