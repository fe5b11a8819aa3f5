"""The lab daemon process: one per lab home, owning all device state.

Run as ``python -m hcasim.lab.daemon --home DIR [--topology NET [--lab LAB]]``; ``hcasim up``
starts it detached and waits for the control socket. A second daemon on the same home is
refused (an exclusive lock on ``daemon.lock``); the socket is created with mode 0600.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from hcasim.ib import layout
from hcasim.lab.control import ControlEndpoint
from hcasim.lab.home import LabHome
from hcasim.lab.lab import Lab
from hcasim.lab.spec import SpecError, default_lab, lab_from_files
from hcasim.lab.store import LabStore, StoreError

log = logging.getLogger("hcasim.daemon")

#: Modules that extend the daemon. Importing one may register device models
#: (hcasim.lab.lab.register_device_model); if it defines
#: ``async def start(lab, endpoint, home) -> Callable[[], None]`` that service is started
#: with the daemon and the returned function stops it.
EXTENSIONS: tuple[str, ...] = (
    "hcasim.lab.crypto_service",
    "hcasim.lab.ibsim_server",
    "hcasim.hosts.cx6_wire",  # after ibsim_server: it installs firmware on that fabric
    "hcasim.lab.sm_service",
)


def load_extensions() -> list[Any]:
    """Import every extension module (before the lab is opened)."""
    import importlib

    return [importlib.import_module(name) for name in EXTENSIONS]


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


def open_lab(home: LabHome, topology: Path | None, labfile: Path | None) -> Lab:
    """Open the home's lab, creating it on first start."""
    try:
        store = LabStore(home.database)
    except StoreError as exc:
        raise DaemonError(str(exc)) from None
    existing = store.lab_definition()
    try:
        wanted = lab_from_files(topology, labfile) if topology else None
    except SpecError as exc:
        raise DaemonError(str(exc)) from None
    if existing is not None:
        if wanted is not None and wanted != existing:
            raise DaemonError(
                f"{home.path} already holds a different lab; use another --home for this topology"
            )
        return Lab(store, existing)
    return Lab.create(store, wanted or default_lab())


async def serve(home: LabHome, lab: Lab, extensions: list[Any]) -> None:
    """Serve the control socket (and every extension's service) until asked to stop."""
    stop = asyncio.Event()
    endpoint = ControlEndpoint(lab, on_shutdown=stop.set)
    stoppers = [await ext.start(lab, endpoint, home) for ext in extensions if hasattr(ext, "start")]
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
    for stopper in reversed(stoppers):
        stopper()
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the daemon process."""
    parser = argparse.ArgumentParser(prog="hcasim-daemon")
    parser.add_argument("--home", required=True)
    parser.add_argument("--topology", type=Path)
    parser.add_argument("--lab", type=Path)
    args = parser.parse_args(argv)
    home = LabHome.resolve(args.home)
    home.ensure()
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    layout.use_compiled_codecs()  # before the extensions generate theirs
    extensions = load_extensions()
    try:
        lock_fd = acquire_home_lock(home)
        lab = open_lab(home, args.topology, args.lab)
    except DaemonError as exc:
        print(f"hcasim: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(home, lab, extensions))
    finally:
        lab.store.close()
        os.close(lock_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
