"""The lab daemon process: one per lab home, owning all device state.

Run as ``python -m hcasim.lab.daemon --home DIR [--topology NET [--lab LAB]]``; ``hcasim up``
starts it detached and waits for the control socket. A second daemon on the same home is
refused (an exclusive lock on ``daemon.lock``); the socket is created with mode 0600.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import functools
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcasim.hosts import cx6_wire
from hcasim.hosts.cx3_wire import Cx3Fabric
from hcasim.ib import layout
from hcasim.lab.control import ControlEndpoint, Session, str_arg
from hcasim.lab.crypto_service import CryptoService, bind_storage_keys
from hcasim.lab.faults import FaultService
from hcasim.lab.home import LabHome, LabHomeError
from hcasim.lab.ibsim_server import IbsimServer, build_engine
from hcasim.lab.identity import Identities
from hcasim.lab.lab import Lab
from hcasim.lab.sm_service import SubnetManager
from hcasim.lab.spec import SpecError, default_lab, lab_from_files
from hcasim.lab.store import LabStore, StoreError
from hcasim.lab.web import WebView

log = logging.getLogger("hcasim.daemon")

class DaemonError(Exception):
    """The daemon cannot start; the message says why."""


def acquire_home_lock(home: LabHome) -> int:
    """Take the home's exclusive daemon lock, or raise if another daemon holds it."""
    fd = os.open(home.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DaemonError(f"another lab daemon (pid {other}) is running on {home.path}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def read_lab_files(topology: Path | None, labfile: Path | None) -> dict[str, Any] | None:
    """The lab a net file and lab file describe (None without a net file)."""
    try:
        return lab_from_files(topology, labfile) if topology else None
    except SpecError as exc:
        raise DaemonError(str(exc)) from None


def open_lab(
    home: LabHome,
    topology: Path | None,
    labfile: Path | None,
    *,
    wanted: dict[str, Any] | None = None,
) -> Lab:
    """Open the home's lab, creating it on first start (``wanted``: the lab files, already
    read by :func:`read_lab_files`)."""
    if wanted is None:
        wanted = read_lab_files(topology, labfile)
    try:
        store = LabStore(home.database)
    except StoreError as exc:
        raise DaemonError(str(exc)) from None
    existing = store.lab_definition()
    if existing is not None:
        if wanted is not None and wanted != existing:
            raise DaemonError(
                f"{home.path} already holds a different lab; use another --home for this topology"
            )
        return Lab(store, existing)
    return Lab.create(store, wanted or default_lab())


@dataclass
class Services:
    """The daemon's services around one lab. :func:`start_services` starts them in field
    order, each on what the ones before it set up; :meth:`stop` stops them in reverse."""

    #: The control socket's operations (hcasim, flint, mlx5dv): every service adds its own.
    control: ControlEndpoint
    #: The mlx5 crypto devices' storage keys and ``mlx5_*`` operations.
    crypto: CryptoService
    #: The fabric and its ibsim endpoint, for libumad2sim clients.
    ibsim: IbsimServer
    #: Every ConnectX-3 on the fabric: SMP firewall, in-band CR access, mlx4 drivers.
    cx3: Cx3Fabric
    #: Hosts whose ConnectX-6 Dx answers on the fabric (access registers in-band).
    cx6_hosts: list[str]
    #: The real OpenSM on a lab host, on request.
    sm: SubnetManager
    #: The operator's web view: its timeline from the start, its page on request.
    web: WebView

    async def close(self) -> None:
        """Close what needs the event loop to close (the web view's server), then stop."""
        await self.web.close()
        self.stop()

    def stop(self) -> None:
        """Stop every service, the last started first."""
        self.web.stop()
        self.sm.kill_now()
        self.ibsim.close()
        self.crypto.stop()


async def start_services(lab: Lab, home: LabHome, on_shutdown: Callable[[], None]) -> Services:
    """Start every service of the daemon around ``lab``, in one fixed order."""
    identities = Identities()
    control = ControlEndpoint(lab, on_shutdown=on_shutdown, identities=identities)
    bind_storage_keys(lab, home)
    crypto = CryptoService(lab)
    crypto.register(control)
    engine = build_engine(lab.definition)
    ibsim = IbsimServer(home.ibsim_sockname, engine, asyncio.get_running_loop(), identities)
    cx3 = Cx3Fabric(lab.hosts.values(), engine.subnet, ibsim.clients)
    cx3.start_drivers()
    lab.host_listeners.append(cx3.host_event)
    lab.host_listeners.append(functools.partial(_ports_after_reboot, ibsim))
    ibsim.detach_listeners.append(cx3.client_detached)
    ibsim.port_info_filters.append(cx3.host_port_info)
    cx6_hosts = cx6_wire.install(lab.hosts.values(), engine.subnet)
    log.info("ibsim endpoint %s ready (%d nodes; ConnectX-6 Dx on the wire: %s)", ibsim.base,
             len(engine.subnet.nodes), ", ".join(cx6_hosts) or "none")
    sm = SubnetManager(lab, home, identities)
    web = WebView(lab, engine.subnet, cx3, sm)
    web.register(control)
    services = Services(control, crypto, ibsim, cx3, cx6_hosts, sm, web)
    control.register("driver_show", functools.partial(_driver_show, lab, cx3))
    control.register("sm_start", sm.start)
    control.register("sm_stop", sm.stop)
    control.register("sm_status", sm.status)
    FaultService(ibsim).register(control)
    return services


def _driver_show(lab: Lab, cx3: Cx3Fabric, session: Session,
                 args: dict[str, Any]) -> dict[str, Any]:
    """Control op ``driver_show``: what the mlx4 drivers of one host know (no key material)."""
    name = lab.host(str_arg(args, "host")).name  # ENOENT for an unknown host
    ControlEndpoint.check_own_host(session, name)  # a host reads its own kernel log only
    return {"host": name, "devices": cx3.show_drivers(name)}


def _ports_after_reboot(ibsim: IbsimServer, host: str, event: str) -> None:
    """A rebooted host's HCA ports come back: a port disabled from the fabric
    (PortPhysicalState Disabled, set by an SM) polls and trains again, as a reset HCA's
    does; its switch tells the SM (trap 128)."""
    if event != "reboot":
        return
    subnet = ibsim.subnet
    try:
        node = subnet.attach_port(host).node
    except (KeyError, LookupError):
        return  # a host without a node on the fabric
    if node.switch is not None:
        return
    for port in node.ports:
        ibsim.deliver_all(ibsim.engine.set_link(port.ref, True))


async def serve(home: LabHome, lab: Lab) -> None:
    """Serve the control socket (and every service) until asked to stop."""
    stop = asyncio.Event()
    services = await start_services(lab, home, on_shutdown=stop.set)
    endpoint = services.control
    # The lab's object graph (a fabric of thousands of nodes) lives as long as the daemon:
    # keep it out of the collector's full passes, which would otherwise walk all of it
    gc.freeze()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if home.socket.exists() or home.socket.is_symlink():
        home.socket.unlink()
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(endpoint.serve_client, path=str(home.socket))
    finally:
        os.umask(old_umask)
    os.chmod(home.socket, 0o600)
    log.info("lab daemon ready on %s (pid %d)", home.socket, os.getpid())
    watched = os.environ.get("HCASIM_DAEMON_WATCH_PID")
    if watched and watched.isdigit():
        loop.create_task(_stop_when_gone(int(watched), stop))
    async with server:
        await stop.wait()
    await services.close()
    home.socket.unlink(missing_ok=True)
    log.info("lab daemon stopped")


async def _stop_when_gone(pid: int, stop: asyncio.Event) -> None:
    """Stop the daemon once the process that asked for it (a test run) has exited."""
    while not stop.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log.info("watched process %d is gone; stopping", pid)
            stop.set()
            return
        except PermissionError:
            pass
        await asyncio.sleep(1.0)


def _describe(exc: Exception) -> str:
    """One line for a start-up failure: ``FILE: reason`` for the system's refusals."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return f"{os.fsdecode(exc.filename)}: {reason}" if exc.filename is not None else reason
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the daemon process."""
    parser = argparse.ArgumentParser(prog="hcasim-daemon")
    parser.add_argument("--home", required=True)
    parser.add_argument("--topology", type=Path)
    parser.add_argument("--lab", type=Path)
    args = parser.parse_args(argv)
    if args.lab is not None and args.topology is None:
        parser.error("--lab needs --topology")
    try:
        # The files first: bad input leaves no home behind (no directory, lock or store).
        wanted = read_lab_files(args.topology, args.lab)
        home = LabHome.resolve(args.home)
        # whatever the operator's umask: every file of the home (the store, the log,
        # OpenSM's M_Key cache) is its owner's alone (docs/security-model.md §4)
        os.umask(0o077)
        for change in home.ensure():
            print(f"hcasim: {change}", file=sys.stderr)
    except (DaemonError, LabHomeError, OSError) as exc:
        print(f"hcasim: {_describe(exc)}", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    layout.use_compiled_codecs()  # before the fabric's layouts generate theirs
    try:
        lock_fd = acquire_home_lock(home)
        lab = open_lab(home, args.topology, args.lab, wanted=wanted)
    except (DaemonError, OSError) as exc:
        print(f"hcasim: {_describe(exc)}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(home, lab))
    except OSError as exc:  # the socket cannot be bound (a full disk, a read-only home)
        print(f"hcasim: {_describe(exc)}", file=sys.stderr)
        return 1
    finally:
        lab.store.close()
        os.close(lock_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
