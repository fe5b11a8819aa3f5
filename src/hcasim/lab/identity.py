"""Who a peer process is: the lab operator, one lab host, or nobody the lab serves.

A host is a machine: a process started by ``hcasim exec --host H``, and every process it
starts, acts as H and only as H. The answer comes from the kernel, never from anything the
process writes (its environment, a field of a message): the daemon takes the peer's pid and
uid from the socket (``SO_PEERCRED`` on the control socket, ``SCM_CREDENTIALS`` on the
ibsim control socket) and maps the pid to the ``hcasim exec`` that started its process tree.

``hcasim exec`` registers itself (its own pid, taken from its connection's credentials,
and its start time, so a reused pid is never mistaken for it) before it replaces itself
with the command; the daemon then walks ``/proc/<pid>`` parents of a peer up to the first
registered ancestor. A sandboxed host also has its own mount namespace, recorded the first
time one of its processes is seen, so a process that was re-parented away from its host's
tree (a daemonised tool) is still that host. A process of another uid is refused; a
process of the owner's uid in the daemon's own mount namespace and in no host's tree is
the lab operator; anything else is refused. docs/security-model.md §2 says why this design
and what it does not stop.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass

log = logging.getLogger("hcasim.identity")

#: Parents walked at most (a deeper tree is refused rather than walked forever).
MAX_DEPTH = 256


class IdentityError(Exception):
    """A peer the lab does not serve (another uid, a process of no host); one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.EACCES


@dataclass(frozen=True)
class Principal:
    """Who a peer is: ``host`` None for the lab operator, else the host it runs on."""

    host: str | None
    pid: int

    @property
    def is_operator(self) -> bool:
        """Whether this is the lab operator (the owner, outside every host)."""
        return self.host is None

    def describe(self) -> str:
        """``the lab operator`` or ``host H``, for messages."""
        return "the lab operator" if self.host is None else f"host {self.host}"


def _stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, start time)`` of a live process, from ``/proc/<pid>/stat``; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces or ')': split after the last
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _mount_namespace(pid: int) -> int | None:
    """The inode of a process's mount namespace; None if it cannot be read."""
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


class Identities:
    """The registry of host process trees and the resolution of a peer to a principal."""

    def __init__(self, owner_uid: int | None = None) -> None:
        self.owner_uid = os.geteuid() if owner_uid is None else owner_uid
        self.daemon_pid = os.getpid()
        self.own_namespace = _mount_namespace(self.daemon_pid)
        #: ``(pid, start time)`` of each registered ``hcasim exec`` -> its host
        self.roots: dict[tuple[int, int], str] = {}
        #: mount namespaces seen holding a host's processes (sandboxes) -> the host
        self.namespaces: dict[int, str] = {}
        #: the host the daemon's own children run on (OpenSM: one at a time)
        self.children_host: str | None = None
        self._refusals_logged: set[tuple[int, str]] = set()

    def register(self, pid: int, host: str) -> None:
        """Make ``pid`` (a live process) and all it starts from now on ``host``."""
        stat = _stat(pid)
        if stat is None:
            raise IdentityError(f"process {pid} is gone")
        # before this command's sandbox exists: what ended is forgotten, so the new
        # namespace can never be taken for an old one that had its inode number
        self.prune()
        self.roots[(pid, stat[1])] = host
        log.info("process %d registered as the root of a process tree on host %s", pid, host)

    def resolve(self, pid: int, uid: int) -> Principal:
        """The principal of a peer with kernel-given ``pid`` and ``uid``, or IdentityError."""
        if uid != self.owner_uid:
            raise IdentityError(
                f"uid {uid} is not the lab owner's (uid {self.owner_uid}): refused")
        host = self._host_of_tree(pid)
        namespace = _mount_namespace(pid)
        if host is not None:
            if namespace is not None and namespace != self.own_namespace:
                # a sandbox holds one host's processes: its tree says whose it is now
                self.namespaces[namespace] = host
            return Principal(host, pid)
        if namespace is not None and namespace in self.namespaces:
            return Principal(self.namespaces[namespace], pid)
        if namespace is not None and namespace == self.own_namespace:
            return Principal(None, pid)
        raise IdentityError(f"process {pid} belongs to no host of this lab: refused")

    def prune(self) -> None:
        """Forget the mount namespaces no process holds any more and the registered roots
        that have exited (their descendants were re-parented away and never reach them).

        Run at each ``exec_register`` and OpenSM start, before a new sandbox is made: one
        look at ``/proc/*/ns/mnt`` (a few milliseconds), nothing per MAD or per request.
        """
        live: set[int] = set()
        try:
            names = os.listdir("/proc")
        except OSError:
            return
        for name in names:
            if name.isdigit():
                namespace = _mount_namespace(int(name))
                if namespace is not None:
                    live.add(namespace)
        self.namespaces = {ns: h for ns, h in self.namespaces.items() if ns in live}
        alive = {}
        for (pid, started), host in self.roots.items():
            stat = _stat(pid)
            if stat is not None and stat[1] == started:
                alive[(pid, started)] = host
        self.roots = alive

    def _host_of_tree(self, pid: int) -> str | None:
        """The host of the first registered ancestor of ``pid`` (itself included)."""
        current = pid
        for _ in range(MAX_DEPTH):
            if current <= 1:
                return None
            stat = _stat(current)
            if stat is None:
                return None
            host = self.roots.get((current, stat[1]))
            if host is not None:
                return host
            if stat[0] == self.daemon_pid and self.children_host is not None:
                return self.children_host  # OpenSM, started by the daemon on its host
            current = stat[0]
        return None

    def log_refusal_once(self, pid: int, what: str) -> bool:
        """Whether a refusal of ``what`` for ``pid`` is new (logged once, not per retry)."""
        key = (pid, what)
        if key in self._refusals_logged:
            return False
        if len(self._refusals_logged) > 10_000:
            self._refusals_logged.clear()
        self._refusals_logged.add(key)
        return True
