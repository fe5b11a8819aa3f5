"""The lab as a picture: a secret-free description of the fabric and of every host's
security state, where each element goes, and the same picture as SVG.

The web view (:mod:`hcasim.lab.web`) sends the description and the layout to the page,
which draws them; ``hcasim show --svg`` draws them here. One layout serves both, so a
report shows what the operator saw. Every value comes from a whitelist of fields built
here from the firmware models' state: a key, a credential or a KEK never has a field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from hcasim.devices.cx3 import Cx3Firmware
from hcasim.devices.mlx5.firmware import Mlx5CryptoFirmware
from hcasim.fabric.subnet import NodeState, PortState, Subnet
from hcasim.ib import smp_attrs
from hcasim.lab.lab import Lab

#: LinkWidthActive, LinkSpeedActive and LinkSpeedExtActive codes (IBTA PortInfo).
WIDTHS = {1: "1X", 2: "4X", 4: "8X", 8: "12X"}
SPEEDS = {1: "SDR", 2: "DDR", 4: "QDR"}
EXT_SPEEDS = {1: "FDR", 2: "EDR", 4: "HDR"}
PORT_STATES = {1: "Down", 2: "Init", 3: "Armed", 4: "Active"}

#: Above this many hosts the picture draws each host as a small tile (details on demand).
DETAILED_MAX_HOSTS = 64

#: What each summary state looks like: fill colour and the words of the legend.
SUMMARY_STYLE: dict[str, tuple[str, str]] = {
    "secured": ("#1f8a5b", "key active, CR-space locked, SMP firewall on"),
    "unlocked": ("#e07b00", "key active, CR-space opened with hw_access"),
    "pending": ("#c9a200", "key on flash, waiting for a driver restart"),
    "open": ("#7d8799", "no key: CR-space open, no firewall"),
    "crypto-operational": ("#2f6fdb", "crypto engine operational"),
    "crypto-commissioning": ("#8e5bd6", "crypto engine commissioning"),
    "failed": ("#c0392b", "device model failed to start"),
    "none": ("#b8bec9", "no lab device"),
}


#: Key states in a few words, for a host's tile (the panel and the timeline say it all).
SHORT_KEY = {
    "set, waiting for a driver restart": "on flash, restart pending",
    "active; a new key waits for a driver restart": "active, new key pending",
    "active (cleared on flash)": "active, cleared on flash",
}


def link_label(port: PortState | None) -> str:
    """``4X QDR`` for a trained link, ``down`` otherwise."""
    if port is None or port.peer is None or not port.link_up:
        return "down"
    width = WIDTHS.get(port.width_active, "?")
    speed = (EXT_SPEEDS.get(port.ext_speed_active, "?") if port.ext_speed_active
             else SPEEDS.get(port.speed_active, "?"))
    return f"{width} {speed}"


def _cx3_state(firmware: Cx3Firmware) -> dict[str, Any]:
    capable, flash_key = firmware.flash_key_state()
    active = firmware.secure.active_key
    if not capable:
        key = "unsupported"
    elif active is None:
        key = "set, waiting for a driver restart" if flash_key is not None else "not set"
    elif flash_key is None:
        key = "active (cleared on flash)"
    elif flash_key != active:
        key = "active; a new key waits for a driver restart"
    else:
        key = "active"
    return {
        "kind": "cx3",
        "model": firmware.kind.description,
        "fw": ".".join(map(str, firmware.running_version)),
        "key": key,
        "cr_space": "locked" if firmware.secure.cr_locked else "open",
        "smp_firewall": firmware.secure.smp_firewall,
        "refused_cr_accesses": firmware.refusals.locked_cr_accesses,
        "wrong_keys": firmware.refusals.wrong_keys,
    }


def _mlx5_state(firmware: Mlx5CryptoFirmware) -> dict[str, Any]:
    status = firmware.status()
    crypto = status.get("crypto")
    out: dict[str, Any] = {"kind": "mlx5", "model": str(status["model"]),
                           "fw": str(status["fw_version"])}
    if isinstance(crypto, dict):
        # counts and modes only (firmware.status() holds no secret; copy what we show)
        for name in ("mode", "going_to_commissioning", "import_method", "credentials",
                     "import_keks", "sessions_valid", "sessions_invalid", "deks", "mkeys",
                     "contexts"):
            if name in crypto:
                out[name] = crypto[name]
    return out


def device_state(firmware: object) -> dict[str, Any]:
    """One device's security state, from a whitelist of fields (never a secret)."""
    if isinstance(firmware, Cx3Firmware):
        return _cx3_state(firmware)
    if isinstance(firmware, Mlx5CryptoFirmware):
        return _mlx5_state(firmware)
    return {"kind": "other"}


def summary(devices: list[dict[str, Any]]) -> str:
    """The one word the picture colours a host by (its first device decides)."""
    if not devices:
        return "none"
    dev = devices[0]
    if dev["kind"] == "cx3":
        if dev["key"].startswith("active"):
            return "secured" if dev["cr_space"] == "locked" else "unlocked"
        return "pending" if dev["key"].startswith("set") else "open"
    if dev["kind"] == "mlx5":
        mode = dev.get("mode")
        if mode == "operational":
            return "crypto-operational"
        return "crypto-commissioning" if mode == "commissioning" else "failed"
    return "none"


def host_port(node: NodeState) -> PortState | None:
    """A CA's first port (the one the lab's HCAs use)."""
    return node.ports[0] if node.ports else None


def host_state(lab: Lab, node: NodeState) -> dict[str, Any]:
    """What the picture shows of one host now: port, M_Key protection, devices, counters."""
    port = host_port(node)
    host = lab.hosts.get(node.id)
    devices = [device_state(d.firmware) for d in host.devices] if host else []
    firmware = node.firmware
    state: dict[str, Any] = {
        "port_state": PORT_STATES.get(port.state, "?") if port else "none",
        "lid": port.lid if port else 0,
        "link": link_label(port),
        # the protection level and whether one is set, never the M_Key itself
        "m_key": (f"set, protection level {port.m_key_protect_bits}"
                  if port is not None and port.m_key else "not set"),
        "m_key_violations": port.m_key_violations if port else 0,
        "devices": devices,
    }
    dropped = getattr(firmware, "dropped_from_host", None)
    if isinstance(dropped, int):
        state["firewall_drops"] = dropped
        state["withheld_smps"] = int(getattr(firmware, "withheld_from_host", 0))
        if devices and devices[0].get("smp_firewall"):
            state["m_key_hidden"] = True  # the firewall shows the host a zero M_Key
    state["summary"] = summary(devices)
    return state


@dataclass
class Layout:
    """Where each element of the picture goes (x, y, width, height), in one coordinate
    space the page zooms and pans."""

    detailed: bool
    width: float = 0.0
    height: float = 0.0
    switches: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    hosts: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    #: One box per switch that has hosts (hosts grouped under their switch), or ``""``.
    groups: list[tuple[str, float, float, float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The layout as the page reads it."""
        return {"detailed": self.detailed, "width": self.width, "height": self.height,
                "switches": self.switches, "hosts": self.hosts, "groups": self.groups}


def compute_layout(spines: list[str], groups: list[tuple[str, list[str]]]) -> Layout:
    """Place switches without hosts in rows on top, and under them one box per switch that
    has hosts, its hosts as tiles inside; boxes flow in rows of a roughly square picture."""
    total = sum(len(hosts) for _, hosts in groups)
    detailed = total <= DETAILED_MAX_HOSTS
    tile_w, tile_h, gap = (190.0, 104.0, 14.0) if detailed else (14.0, 14.0, 3.0)
    header = 46.0 if detailed else 20.0
    pad = 16.0 if detailed else 6.0
    out = Layout(detailed)
    boxes: list[tuple[str, list[str], int, float, float]] = []
    for switch, hosts in groups:
        cols = max(1, min(len(hosts), 6)) if detailed else max(4, math.ceil(math.sqrt(len(hosts))))
        rows = max(1, math.ceil(len(hosts) / cols))
        link_room = 40.0 if detailed else 0.0  # the drawn switch-host links and labels
        width = 2 * pad + cols * tile_w + (cols - 1) * gap
        height = header + link_room + pad + rows * tile_h + (rows - 1) * gap
        boxes.append((switch, hosts, cols, width, height))
    area = sum(w * h for *_, w, h in boxes) or 1.0
    row_width = max(1200.0 if detailed else 900.0, math.sqrt(area) * 1.6,
                    max((w for *_, w, _ in boxes), default=0.0))
    margin = 24.0 if detailed else 12.0
    # switches without hosts (spines): small boxes in rows of the same width
    sw_w, sw_h = (150.0, 44.0) if detailed else (64.0, 18.0)
    x, y = margin, margin
    for switch in spines:
        if x + sw_w > row_width + margin:
            x, y = margin, y + sw_h + gap
        out.switches[switch] = (x, y, sw_w, sw_h)
        x += sw_w + gap
    y = y + sw_h + (80.0 if detailed else 40.0) if spines else margin
    x, row_h = margin, 0.0
    for switch, hosts, cols, width, height in boxes:
        if x > margin and x + width > row_width + margin:
            x, y, row_h = margin, y + row_h + 2 * gap, 0.0
        out.groups.append((switch, x, y, width, height))
        if switch:
            out.switches[switch] = (x, y, width, header)
        top = y + header + (40.0 if detailed else 0.0) + pad
        for i, name in enumerate(hosts):
            col, row = i % cols, i // cols
            out.hosts[name] = (x + pad + col * (tile_w + gap), top + row * (tile_h + gap),
                               tile_w, tile_h)
        x += width + 2 * gap
        row_h = max(row_h, height)
    # the picture is as wide as what it holds (a small lab fills the page when fitted)
    right = [bx + bw for _s, bx, _by, bw, _bh in out.groups]
    right += [sx + sw for sx, _sy, sw, _sh in out.switches.values()]
    out.width = max(right, default=0.0) + margin
    out.height = y + row_h + margin
    return out


def topology(subnet: Subnet) -> tuple[list[dict[str, Any]], list[tuple[str, list[str]]],
                                      list[str], list[list[Any]]]:
    """Switches, hosts grouped under the switch they are cabled to, switches without
    hosts, and the switch-to-switch links (``[a, port, b, port, label]``)."""
    switches: list[dict[str, Any]] = []
    grouped: dict[str, list[str]] = {}
    loose: list[str] = []
    links: list[list[Any]] = []
    for node in subnet.nodes:
        if node.is_switch:
            active = sum(1 for p in node.ports[1:] if p.state == smp_attrs.PORT_STATE_ACTIVE)
            cabled = sum(1 for p in node.ports[1:] if p.peer is not None)
            switches.append({"id": node.id, "guid": f"{node.guid:#018x}",
                             "lid": node.ports[0].lid, "ports": node.num_ports,
                             "cabled": cabled, "active": active,
                             "description": node.description})
            grouped.setdefault(node.id, [])
            for port in node.ports[1:]:
                peer = port.peer
                if peer is not None and peer.node.is_switch and (node.id, port.number) < (
                        peer.node.id, peer.number):
                    links.append([node.id, port.number, peer.node.id, peer.number,
                                  link_label(port)])
            continue
        first = host_port(node)
        peer = first.peer if first is not None else None
        if peer is not None and peer.node.is_switch:
            grouped.setdefault(peer.node.id, []).append(node.id)
        else:
            loose.append(node.id)
    groups = [(sw, hosts) for sw, hosts in grouped.items() if hosts]
    if loose:
        groups.append(("", loose))
    spines = [sw for sw, hosts in grouped.items() if not hosts]
    return switches, groups, spines, links


def snapshot(lab: Lab, subnet: Subnet,
             states: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole picture as data: topology, layout and every host's state (no secret).

    ``states``: the hosts' states as :func:`host_state` just made them (the web view's
    watcher keeps them), so a snapshot of a big lab does not build them all again."""
    switches, groups, spines, links = topology(subnet)
    hosts: list[dict[str, Any]] = []
    for node in subnet.nodes:
        if node.is_switch:
            continue
        port = host_port(node)
        peer = port.peer if port is not None else None
        hosts.append({
            "name": node.id,
            "guid": f"{node.guid:#018x}",
            "port_guid": f"{port.guid:#018x}" if port else "",
            "switch": peer.node.id if peer is not None and peer.node.is_switch else "",
            "switch_port": peer.number if peer is not None else 0,
            "state": states[node.id] if states is not None else host_state(lab, node),
        })
    return {
        "switches": switches,
        "hosts": hosts,
        "links": links,
        "layout": compute_layout(spines, groups).to_json(),
        "legend": {name: list(style) for name, style in SUMMARY_STYLE.items()},
        "short_key": SHORT_KEY,
    }


# ------------------------------------------------------------------------ SVG


def _text(x: float, y: float, text: str, size: float, *, weight: str = "normal",
          fill: str = "#1d2330", anchor: str = "start") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" font-weight="{weight}" '
            f'fill="{fill}" text-anchor="{anchor}">{escape(text)}</text>')


def _device_lines(state: dict[str, Any]) -> list[str]:
    """The short lines a detailed host tile shows under its name."""
    devices = state["devices"]
    if not devices:
        return ["no lab device"]
    dev = devices[0]
    lines = [f"{dev['model']}  fw {dev['fw']}"]
    if dev["kind"] == "cx3":
        lines.append(f"key: {SHORT_KEY.get(dev['key'], dev['key'])}")
        firewall = "on" if dev["smp_firewall"] else "off"
        lines.append(f"CR-space {dev['cr_space']} · firewall {firewall}")
    elif dev["kind"] == "mlx5":
        lines.append(f"crypto: {dev.get('mode', '?')}")
        lines.append(f"sessions {dev.get('sessions_valid', 0)} · DEKs {dev.get('deks', 0)}")
    lines.append(f"M_Key: {state['m_key']}")
    return lines


def render_svg(snap: dict[str, Any], title: str = "hcasim lab") -> str:
    """The picture of :func:`snapshot` as a standalone SVG document."""
    layout = snap["layout"]
    detailed = bool(layout["detailed"])
    width, height = float(layout["width"]), float(layout["height"])
    legend_h = 28.0 + 20.0 * len(SUMMARY_STYLE)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height + legend_h:.0f}" viewBox="0 0 {width:.0f} {height + legend_h:.0f}" '
        'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif">',
        f"<title>{escape(title)}</title>",
        '<rect width="100%" height="100%" fill="#f6f7f9"/>',
    ]
    switch_box = {k: tuple(v) for k, v in layout["switches"].items()}
    host_box = {k: tuple(v) for k, v in layout["hosts"].items()}
    for a, _pa, b, _pb, label in snap["links"]:
        if a in switch_box and b in switch_box:
            ax, ay, aw, ah = switch_box[a]
            bx, by, bw, _bh = switch_box[b]
            parts.append(f'<line x1="{ax + aw / 2:.1f}" y1="{ay + ah:.1f}" '
                         f'x2="{bx + bw / 2:.1f}" y2="{by:.1f}" stroke="#9aa3b2" '
                         f'stroke-width="1"><title>{escape(f"{a} - {b}: {label}")}</title>'
                         "</line>")
    for _switch, x, y, w, h in layout["groups"]:
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="8" '
                     'fill="#ffffff" stroke="#c9ced8"/>')
    by_id = {s["id"]: s for s in snap["switches"]}
    for sw, (x, y, w, h) in switch_box.items():
        info = by_id.get(sw, {})
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="8" '
                     'fill="#2b3445"/>')
        label = f"{sw}  LID {info.get('lid', '?')}" if detailed else sw
        parts.append(_text(x + 10, y + (h / 2 + 5 if detailed else h - 5), label,
                           14 if detailed else 10, weight="bold", fill="#ffffff"))
        if detailed:
            parts.append(_text(x + w - 10, y + h / 2 + 5,
                               f"{info.get('active', 0)}/{info.get('cabled', 0)} ports active",
                               12, fill="#c9d1e0", anchor="end"))
    for host in snap["hosts"]:
        name = host["name"]
        if name not in host_box:
            continue
        x, y, w, h = host_box[name]
        state = host["state"]
        fill = SUMMARY_STYLE.get(state["summary"], SUMMARY_STYLE["none"])[0]
        down = state["port_state"] == "Down"
        stroke = ' stroke="#c0392b" stroke-width="2" stroke-dasharray="4 3"' if down else ""
        tooltip = f"{name} LID {state['lid']} {state['link']} ({state['summary']})"
        if detailed and host["switch"] in switch_box:
            sx, sy, sw_w, sh = switch_box[host["switch"]]
            parts.append(f'<line x1="{x + w / 2:.1f}" y1="{sy + sh:.1f}" x2="{x + w / 2:.1f}" '
                         f'y2="{y:.1f}" stroke="#9aa3b2" stroke-width="2"/>')
            parts.append(_text(x + w / 2 + 6, sy + sh + 24,
                               f"port {host['switch_port']} · {state['link']}", 11,
                               fill="#55607a"))
        parts.append(f'<g><title>{escape(tooltip)}</title>'
                     f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                     f'rx="{6 if detailed else 2}" fill="{fill}"{stroke}/>')
        if detailed:
            parts.append(_text(x + 10, y + 20, name, 15, weight="bold", fill="#ffffff"))
            port = "" if state["port_state"] == "Active" else f" · {state['port_state']}"
            parts.append(_text(x + w - 10, y + 20, f"LID {state['lid']}{port}", 12,
                               fill="#ffffff", anchor="end"))
            for i, line in enumerate(_device_lines(state)):
                parts.append(_text(x + 10, y + 40 + 15 * i, line, 11, fill="#ffffff"))
        else:
            # names stay in the document (the tooltip above) even where tiles are too small
            parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="1" fill="none">'
                         f"{escape(name)}</text>")
        parts.append("</g>")
    y = height + 8
    parts.append(_text(24, y + 12, "Legend", 13, weight="bold"))
    for i, (name, (colour, words)) in enumerate(SUMMARY_STYLE.items()):
        ly = y + 22 + 20 * i
        parts.append(f'<rect x="24" y="{ly:.1f}" width="14" height="14" rx="2" '
                     f'fill="{colour}"/>')
        parts.append(_text(46, ly + 11, f"{name}: {words}", 12))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
