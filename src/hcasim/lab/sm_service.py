"""The lab's subnet manager: the real Debian OpenSM, run by the daemon on a lab host.

``hcasim sm start [--host H] [-- opensm options]`` asks the daemon to start ``opensm``
attached to host H through the umad preload (docs/fabric.md §10), with its log, cache and
temporary files in the lab home, and answers once OpenSM logs ``SUBNET UP``. The daemon
owns the process: it stops it on ``hcasim sm stop`` and on shutdown, and the kernel stops
it if the daemon dies.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from hcasim.lab import sandbox
from hcasim.lab.control import seconds_arg, str_arg, str_list_arg
from hcasim.lab.home import LabHome
from hcasim.lab.identity import Identities
from hcasim.lab.lab import Lab
from hcasim.lab.protocol import ControlError

log = logging.getLogger("hcasim.sm")

DEFAULT_SM_HOST = "sm"
#: Longest wait for SUBNET UP (``timeout``), in seconds.
MAX_TIMEOUT = 3600.0
#: Most OpenSM arguments one request may pass.
MAX_OPTIONS = 256
SUBNET_UP = b"SUBNET UP"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


#: Seconds OpenSM gets to exit on SIGTERM at daemon shutdown before it is killed.
STOP_GRACE = 2.0


def _die_with_parent() -> None:
    # Runs in the child before exec: killed when the daemon goes away, even on kill -9.
    # SIGKILL, not SIGTERM: without its server, OpenSM under libumad2sim can sit in the
    # shim's reconnect loop and never act on a SIGTERM (seen: an orphan left behind).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def process_exited(pid: int) -> bool:
    """Whether process ``pid`` has exited (gone, or a zombie its parent has not reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


class _LogWatch:
    """Looks for a marker in a growing log, reading only what was added since the last
    look (the daemon serves MADs meanwhile: a 1024-HCA sweep's log is not read again and
    again)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.tail = b""

    def found(self, marker: bytes) -> bool:
        """Whether ``marker`` has appeared in the log (a missing log has none yet)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                added = f.read()
        except OSError:
            return False
        self.offset += len(added)
        text = self.tail + added
        if marker in text:
            return True
        self.tail = text[-(len(marker) - 1) :] if len(marker) > 1 else b""
        return False


class SubnetManager:
    """At most one OpenSM process for the lab."""

    def __init__(self, lab: Lab, home: LabHome, identities: Identities | None = None) -> None:
        self.lab = lab
        self.home = home
        self.identities = identities
        self.proc: asyncio.subprocess.Process | None = None
        self.host: str | None = None
        self.log_path: Path | None = None

    def running(self) -> bool:
        """Whether the SM process is alive."""
        return self.proc is not None and self.proc.returncode is None

    def status(self, session: Any, args: dict[str, Any]) -> dict[str, Any]:
        """``sm_status``: host, pid and log of the running SM, if any."""
        if not self.running():
            return {"running": False}
        assert self.proc is not None
        return {"running": True, "host": self.host, "pid": self.proc.pid, "log": str(self.log_path)}

    def start(self, session: Any, args: dict[str, Any]) -> dict[str, Any]:
        """``sm_start``: start OpenSM on a host and wait for SUBNET UP (asynchronously)."""
        host = str_arg(args, "host") if args.get("host") is not None else DEFAULT_SM_HOST
        options = str_list_arg(args, "options", MAX_OPTIONS)
        timeout = seconds_arg(args, "timeout", 120.0, MAX_TIMEOUT)
        self.lab.host(host)  # ENOENT for an unknown host
        self._workdir(host)  # a host named like a path never gets a directory
        if self.running():
            assert self.proc is not None
            raise ControlError(
                errno.EEXIST, f"an SM is already running on {self.host} (pid {self.proc.pid})"
            )
        binary = shutil.which("opensm", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if binary is None:
            raise ControlError(errno.ENOENT, "opensm is not installed (Debian package opensm)")
        return {"pending": self._run(binary, host, options, timeout)}

    def _workdir(self, host: str) -> Path:
        """``HOME/opensm-HOST``, refused unless it is a directory right inside the home.

        Lab files refuse such names (hcasim.lab.spec.check_host_name); this keeps a lab
        stored before that check from writing outside its home all the same.
        """
        workdir = self.home.path / f"opensm-{host}"
        if "/" in host or "\0" in host or workdir.parent != self.home.path or host in (".", ".."):
            raise ControlError(errno.EINVAL, f"host {host!r} cannot name a directory")
        return workdir

    async def _run(
        self, binary: str, host: str, options: list[str], timeout: float
    ) -> dict[str, Any]:
        workdir = self._workdir(host)
        (workdir / "cache").mkdir(parents=True, exist_ok=True)
        log_path = workdir / "opensm.log"
        log_path.unlink(missing_ok=True)
        env = self.home.fabric_environment(dict(os.environ), host)
        env["OSM_CACHE_DIR"] = str(workdir / "cache")
        env["OSM_TMP_DIR"] = str(workdir)
        # OpenSM buffers its log unless told to flush; SUBNET UP must be seen as it happens.
        conf = workdir / "opensm.conf"
        conf.write_text("force_log_flush TRUE\n")
        started = time.monotonic()
        if self.identities is not None:  # OpenSM attaches as its host, and only as it
            self.identities.prune()
            self.identities.children_host = host
        argv = [binary, "-F", str(conf), "-f", str(log_path), *options]
        # in the host's sandbox: its M_Key cache and log exist only there (and here)
        reason = sandbox.unavailable_reason()
        if reason is None:
            argv = sandbox.command(self.home, host, argv, cwd=str(workdir))
        else:
            log.warning("%s: opensm runs unconfined on %s", reason, host)
        with open(workdir / "opensm.out", "wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=workdir,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                # its own session, so its own scheduling group (autogroup): it must not
                # share the CPU time of the daemon, which busy-polls (docs/fabric.md §8.1)
                start_new_session=True,
            )
        self.host, self.log_path = host, log_path
        log.info("opensm started on %s (pid %d)", host, self.proc.pid)
        seen = _LogWatch(log_path)
        while time.monotonic() - started < timeout:
            if self.proc.returncode is not None:
                raise ControlError(
                    errno.EIO, f"opensm exited with status {self.proc.returncode}; see {log_path}"
                )
            if seen.found(SUBNET_UP):
                elapsed = time.monotonic() - started
                log.info("SUBNET UP after %.2f s", elapsed)
                return {
                    "host": host,
                    "pid": self.proc.pid,
                    "log": str(log_path),
                    "seconds": elapsed,
                }
            await asyncio.sleep(0.02)
        await self._terminate()
        raise ControlError(errno.ETIMEDOUT, f"no SUBNET UP within {timeout:.0f} s; see {log_path}")

    def stop(self, session: Any, args: dict[str, Any]) -> dict[str, Any]:
        """``sm_stop``: stop the SM (a no-op when none runs)."""
        if not self.running():
            return {"stopped": False}
        return {"pending": self._stop_reply()}

    async def _stop_reply(self) -> dict[str, Any]:
        await self._terminate()
        return {"stopped": True}

    async def _terminate(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.info("opensm (pid %d) stopped", proc.pid)

    def kill_now(self) -> None:
        """Stop the SM at daemon shutdown, without the event loop: SIGTERM, and SIGKILL
        if it has not exited within :data:`STOP_GRACE` seconds."""
        if not self.running():
            return
        assert self.proc is not None
        self.proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        while not process_exited(self.proc.pid):
            if time.monotonic() > deadline:
                log.info("opensm (pid %d) ignored SIGTERM; killing it", self.proc.pid)
                self.proc.kill()
                return
            time.sleep(0.01)

