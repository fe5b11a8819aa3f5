"""The lab operator's web view: a page on loopback that draws the fabric and every host's
security state, kept live over Server-Sent Events, with a timeline of what happened.

Three parts, all on the daemon's event loop:

- :class:`EventLog`, a bounded in-memory timeline (and per-host history of locks, unlocks,
  re-keys and reboots), fed by hooks the services already have: the lab's host listeners
  (reboot, driver restart), the mlx4 drivers' listeners (kernel log lines, events);
- :class:`LabWatcher`, which compares each host's state (:func:`hcasim.lab.view.host_state`,
  whitelisted fields only) with the last it saw and logs the differences: key set or
  active, CR-space locked or opened, firewall, refused attempts (counters the firmware
  keeps: an SMP dropped by the firewall, a wrong key, a locked CR-space access), port state
  and LID, OpenSM started or stopped. It runs after every host event and on a timer whose
  period grows with the lab, so it never takes more than a few percent of the loop; the
  per-MAD path only counts;
- :class:`WebView`, the aiohttp application, started on request (``hcasim web``) on
  127.0.0.1 only; it refuses requests whose Host header is not that address.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import time
from collections import deque
from importlib import resources
from typing import Any

from aiohttp import web

from hcasim.fabric.subnet import Subnet
from hcasim.hosts.cx3_wire import Cx3Fabric
from hcasim.lab.control import ControlEndpoint, Session
from hcasim.lab.lab import Lab
from hcasim.lab.protocol import ControlError
from hcasim.lab.sm_service import SubnetManager
from hcasim.lab.view import host_state, snapshot

log = logging.getLogger("hcasim.web")

#: How many events the timeline keeps, and how many history entries per host.
EVENT_CAPACITY = 4000
HISTORY_CAPACITY = 50
#: Messages a page may fall behind before it is dropped (it reconnects and reloads).
SUBSCRIBER_BACKLOG = 10000
#: The watcher's period: at least this, and at least ``COST_FACTOR`` times its last cost.
MIN_PERIOD = 0.25
COST_FACTOR = 40.0
#: Hosts the timer's pass looks at before it lets the loop run (about 12 ms at 20,000).
CHUNK = 1000
#: A pass changing more hosts than this makes the pages reload; more port events than
#: this are summed up (:class:`Batch`).
BATCH_HOSTS = 500
BATCH_EVENTS = 50
#: Event kinds that make a host's history (when it was locked, unlocked, re-keyed, rebooted).
HISTORY_KINDS = frozenset({"key", "lock", "reboot", "driver"})
#: The files of the page, served as they are (package data beside this module).
STATIC = {"index.html": "text/html", "view.js": "text/javascript", "view.css": "text/css"}


async def _no_content() -> web.Response:
    return web.Response(status=204)


class EventLog:
    """The timeline: the newest :data:`EVENT_CAPACITY` events, per-host history, and the
    pages listening for what comes next."""

    def __init__(self, capacity: int = EVENT_CAPACITY) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.history: dict[str, deque[dict[str, Any]]] = {}
        self.seq = 0
        self.subscribers: set[asyncio.Queue[str | None]] = set()

    def add(self, host: str, kind: str, text: str) -> dict[str, Any]:
        """Record one event and send it to every page."""
        self.seq += 1
        event = {"seq": self.seq, "time": time.time(), "host": host, "kind": kind,
                 "text": text}
        self.events.append(event)
        if kind in HISTORY_KINDS and host:
            self.history.setdefault(host, deque(maxlen=HISTORY_CAPACITY)).append(event)
        self.publish({"type": "event", "event": event})
        return event

    def publish(self, message: dict[str, Any]) -> None:
        """Send a message to every page; a page too far behind is dropped (it reconnects)."""
        if not self.subscribers:
            return
        data = json.dumps(message, separators=(",", ":"))
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                self.subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)  # tells the stream to end


def _diff_device(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    """Events between two states of one device: (kind, text)."""
    out: list[tuple[str, str]] = []
    if new.get("kind") == "cx3":
        if old["key"] != new["key"]:
            out.append(("key", f"key {new['key']} (was {old['key']})"))
        if old["cr_space"] != new["cr_space"]:
            out.append(("lock", "CR-space locked" if new["cr_space"] == "locked"
                        else "CR-space opened"))
        if old["smp_firewall"] != new["smp_firewall"]:
            out.append(("firewall", "SMP firewall on" if new["smp_firewall"]
                        else "SMP firewall off"))
        refused = new["refused_cr_accesses"] - old["refused_cr_accesses"]
        if refused > 0:
            out.append(("refused", f"{refused} CR-space access(es) refused: CR-space locked"))
        wrong = new["wrong_keys"] - old["wrong_keys"]
        if wrong > 0:
            out.append(("refused", f"{wrong} hw_access attempt(s) with a wrong key refused"))
    elif new.get("kind") == "mlx5":
        if old.get("mode") != new.get("mode"):
            out.append(("crypto", f"crypto engine {new.get('mode')}"))
        for name, words in (("sessions_valid", "login sessions"), ("deks", "DEKs"),
                            ("credentials", "credentials"), ("import_keks", "import KEKs")):
            if old.get(name) != new.get(name):
                out.append(("crypto", f"{words}: {new.get(name)}"))
    return out


def diff_host(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    """Events between two states of one host (:func:`hcasim.lab.view.host_state`)."""
    out: list[tuple[str, str]] = []
    if old["port_state"] != new["port_state"]:
        out.append(("port", f"port {new['port_state']} (was {old['port_state']})"))
    if old["lid"] != new["lid"]:
        out.append(("port", f"LID {new['lid']} (was {old['lid']})"))
    if old["m_key"] != new["m_key"]:
        out.append(("port", f"M_Key {new['m_key']}"))
    violations = new["m_key_violations"] - old["m_key_violations"]
    if violations > 0:
        out.append(("refused", f"{violations} SMP(s) with a bad M_Key (trap 256)"))
    dropped = new.get("firewall_drops", 0) - old.get("firewall_drops", 0)
    if dropped > 0:
        out.append(("refused", f"{dropped} SMP(s) from the host dropped by the SMP firewall"))
    withheld = new.get("withheld_smps", 0) - old.get("withheld_smps", 0)
    if withheld > 0:
        out.append(("refused", f"{withheld} SMInfo/trap SMP(s) kept from the host"))
    for before, after in zip(old["devices"], new["devices"], strict=False):
        out.extend(_diff_device(before, after))
    return out


class Batch:
    """What one pass over every host found. A sweep of a big fabric changes every host at
    once: past :data:`BATCH_HOSTS` hosts the pages are told to reload the snapshot instead
    of getting each host, and past :data:`BATCH_EVENTS` port events those are summed up
    per kind of change (``port Active (was Init) on 20000 hosts``) so the timeline keeps
    what else happened."""

    def __init__(self) -> None:
        self.hosts: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []

    def add(self, name: str, state: dict[str, Any], changes: list[tuple[str, str]]) -> None:
        """One host's new state and its events."""
        self.hosts[name] = state
        self.events.extend((name, kind, text) for kind, text in changes)

    def flush(self, log: EventLog) -> None:
        """Record the events and tell the pages."""
        port = [e for e in self.events if e[1] == "port"]
        if len(port) > BATCH_EVENTS:
            summed: dict[str, int] = {}
            for _name, _kind, text in port:
                key = "LID changed" if text.startswith("LID ") else text
                summed[key] = summed.get(key, 0) + 1
            others = [e for e in self.events if e[1] != "port"]
            for name, kind, text in others:
                log.add(name, kind, text)
            for text, count in summed.items():
                log.add("", "port", f"{text} on {count} hosts")
        else:
            for name, kind, text in self.events:
                log.add(name, kind, text)
        if len(self.hosts) > BATCH_HOSTS:
            log.publish({"type": "reload"})
            return
        for name, state in self.hosts.items():
            log.publish({"type": "host", "name": name, "state": state})


class LabWatcher:
    """Turns state changes into events (module docstring) and tells the pages."""

    def __init__(self, lab: Lab, subnet: Subnet, sm: SubnetManager, events: EventLog) -> None:
        self.lab = lab
        self.subnet = subnet
        self.sm = sm
        self.events = events
        self.nodes = [n for n in subnet.nodes if not n.is_switch]
        self.by_name = {n.id: n for n in self.nodes}
        self.states: dict[str, dict[str, Any]] = {
            n.id: host_state(lab, n) for n in self.nodes}
        self.sm_state = self._sm_state()
        self.last_cost = 0.0
        # The daemon's loop, taken when the watcher is made (inside start_services): host and
        # flash listeners run inside a control operation and queue a check for after it.
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None

    def _sm_state(self) -> dict[str, Any]:
        if not self.sm.running():
            return {"running": False}
        proc = self.sm.proc
        return {"running": True, "host": self.sm.host, "pid": proc.pid if proc else 0}

    def check_host(self, name: str, batch: Batch | None = None) -> None:
        """Compare one host with what was last seen; log and publish what changed (or,
        within a pass over every host, collect it in ``batch``)."""
        node = self.by_name.get(name)
        if node is None:
            return
        new = host_state(self.lab, node)
        old = self.states[name]
        if new == old:
            return
        self.states[name] = new
        changes = diff_host(old, new)
        if batch is not None:
            batch.add(name, new, changes)
            return
        for kind, text in changes:
            self.events.add(name, kind, text)
        self.events.publish({"type": "host", "name": name, "state": new})

    def check_all(self) -> None:
        """One pass over every host and OpenSM, at once (a page asked for a snapshot)."""
        start = time.perf_counter()
        batch = Batch()
        for name in self.by_name:
            self.check_host(name, batch)
        self._finish_pass(batch)
        self.last_cost = time.perf_counter() - start

    async def check_all_in_chunks(self) -> None:
        """The timer's pass: :data:`CHUNK` hosts at a time, letting the loop serve MADs and
        clients in between, so a big lab's pass never holds them up for long."""
        busy = 0.0
        batch = Batch()
        names = list(self.by_name)
        for first in range(0, len(names), CHUNK):
            start = time.perf_counter()
            for name in names[first:first + CHUNK]:
                self.check_host(name, batch)
            busy += time.perf_counter() - start
            await asyncio.sleep(0)
        start = time.perf_counter()
        self._finish_pass(batch)
        self.last_cost = busy + time.perf_counter() - start

    def _finish_pass(self, batch: Batch) -> None:
        batch.flush(self.events)
        sm = self._sm_state()
        if sm != self.sm_state:
            self.sm_state = sm
            if sm["running"]:
                self.events.add(sm["host"], "opensm", f"OpenSM running on {sm['host']} "
                                f"(pid {sm['pid']})")
            else:
                self.events.add("", "opensm", "OpenSM stopped")
            self.events.publish({"type": "sm", "sm": sm})

    def host_event(self, host: str, event: str) -> None:
        """A lab host listener: a reboot or driver restart, then its effects (checked once
        the operation is over, so the driver has loaded again)."""
        words = {"reboot": "host rebooted", "driver_restart": "driver restarted"}
        self.events.add(host, "reboot" if event == "reboot" else "driver",
                        words.get(event, event))
        self._loop.call_soon(self.check_host, host)

    def flash_written(self, host: str) -> None:
        """A lab flash listener: look at the host once the write's operation is over."""
        self._loop.call_soon(self.check_host, host)

    def driver_line(self, host: str, line: str) -> None:
        """An mlx4 driver listener: a kernel log line or an event the driver handled."""
        self.events.add(host, "driver-log", line)

    def start(self) -> None:
        """Watch on a timer until :meth:`stop`."""
        self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(MIN_PERIOD, COST_FACTOR * self.last_cost))
            try:
                await self.check_all_in_chunks()
            except Exception:  # a model's state the view does not expect: keep serving
                log.exception("web view: state check failed")

    def stop(self) -> None:
        """Stop the timer."""
        if self._task is not None:
            self._task.cancel()
            self._task = None


class WebView:
    """The daemon's web-view service: event log and watcher from the start, the HTTP
    server on request (control ops ``web_start``, ``web_stop``, ``web_snapshot``)."""

    def __init__(self, lab: Lab, subnet: Subnet, cx3: Cx3Fabric, sm: SubnetManager) -> None:
        self.lab = lab
        self.subnet = subnet
        self.events = EventLog()
        self.watcher = LabWatcher(lab, subnet, sm, self.events)
        # first in line: the timeline shows the restart before the driver's own lines
        lab.host_listeners.insert(0, self.watcher.host_event)
        lab.flash_listeners.append(self.watcher.flash_written)
        for drivers in cx3.drivers.values():
            for driver in drivers:
                # what the drivers logged as the lab booted (before this service existed)
                for line in driver.dmesg:
                    self.events.add(driver.host, "driver-log", line)
                driver.listeners.append(self.watcher.driver_line)
        self.watcher.start()
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    def register(self, control: ControlEndpoint) -> None:
        """Add the web view's control operations."""
        control.register("web_start", self.start_op)
        control.register("web_stop", self.stop_op)
        control.register("web_snapshot", lambda s, a: self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """Topology, layout, every host's state, OpenSM, the timeline and host histories."""
        self.watcher.check_all()  # states current (and their events logged) first
        return self._assemble()

    def _assemble(self) -> dict[str, Any]:
        snap = snapshot(self.lab, self.subnet, self.watcher.states)
        snap["sm"] = self.watcher.sm_state
        snap["events"] = list(self.events.events)
        snap["history"] = {h: list(d) for h, d in self.events.history.items()}
        snap["seq"] = self.events.seq
        return snap

    # -- control operations -----------------------------------------------------------------

    def start_op(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``web_start``: serve the page on 127.0.0.1 (``port``, 0 for any); reply ``url``."""
        if session.host is not None:
            raise ControlError(errno.EPERM, "the web view is the operator's, not a host's")
        port = args.get("port", 0)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ControlError(errno.EINVAL, "port must be 0..65535")
        return {"pending": self._start(port)}

    def stop_op(self, session: Session, args: dict[str, Any]) -> dict[str, Any]:
        """``web_stop``: stop serving the page (the event log keeps recording)."""
        return {"pending": self._stop_reply()}

    async def _stop_reply(self) -> dict[str, Any]:
        was = self.url is not None
        await self.close()
        return {"stopped": was}

    async def _start(self, port: int) -> dict[str, Any]:
        if self._runner is not None and self.url is not None:
            if port in (0, int(self.url.rsplit(":", 1)[1].rstrip("/"))):
                return {"url": self.url}
            await self.close()
        app = web.Application(middlewares=[self._loopback_only])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/favicon.ico", self._favicon)
        app.router.add_get("/api/snapshot", self._snapshot)
        app.router.add_get("/api/events", self._stream)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ControlError(exc.errno or errno.EADDRINUSE,
                               f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        bound = runner.addresses[0][1]
        self._runner = runner
        self.url = f"http://127.0.0.1:{bound}/"
        log.info("web view on %s", self.url)
        return {"url": self.url}

    async def close(self) -> None:
        """Stop the HTTP server (the pages' streams end)."""
        runner, self._runner, self.url = self._runner, None, None
        for queue in list(self.events.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)  # ends the page's stream
        self.events.subscribers.clear()
        if runner is not None:
            await runner.cleanup()

    def stop(self) -> None:
        """Stop the watcher (the daemon is stopping)."""
        self.watcher.stop()

    # -- HTTP ---------------------------------------------------------------------------------

    @web.middleware
    async def _loopback_only(self, request: web.Request,
                             handler: Any) -> web.StreamResponse:
        # a page elsewhere must not reach the view through a name resolving to 127.0.0.1
        host = request.host.rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost"):
            raise web.HTTPForbidden(text="the lab's web view answers on 127.0.0.1 only")
        response: web.StreamResponse = await handler(request)
        return response

    async def _favicon(self, request: web.Request) -> web.StreamResponse:
        return await _no_content()

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return self._file(name)

    @staticmethod
    def _file(name: str) -> web.Response:
        text = resources.files("hcasim.lab").joinpath("web_static", name).read_text()
        return web.Response(text=text, content_type=STATIC[name],
                            headers={"Cache-Control": "no-store"})

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        # the states brought up to date in chunks, as the timer does: a page loading a big
        # lab holds the loop only while the picture is assembled (about 0.2 s at 20,000)
        await self.watcher.check_all_in_chunks()
        body = json.dumps(self._assemble(), separators=(",", ":"))
        return web.Response(text=body, content_type="application/json")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=SUBSCRIBER_BACKLOG)
        self.events.subscribers.add(queue)
        try:
            await response.write(b": hcasim web view\n\n")
            while True:
                try:
                    data = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if data is None:
                    break
                await response.write(f"data: {data}\n\n".encode())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.events.subscribers.discard(queue)
        return response

