"""Where a lab lives on disk: its home directory and the files in it."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

#: The longest path a Unix socket can be bound to (``sizeof(sun_path)`` less the NUL).
MAX_SOCKET_PATH = 107
#: The longest name one directory entry may have (Linux ``NAME_MAX``).
NAME_MAX = 255

#: Debian libumad2sim0's preload library, through which libibumad programs reach the lab.
UMAD2SIM = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so"
#: The verbs preload (preload/ in the repository, built by ``make install``), through which
#: libibverbs / libmlx5 programs reach the lab's crypto devices (docs/crypto.md §11).
VERBS_PRELOAD_NAME = "libhcaverbs.so"
#: The umad preload (preload/hcaumad.c): the kernel's ib_umad and MAD layer (full MADs,
#: RMPP, send timeouts) for every libibumad program of the lab (docs/fabric.md §10).
UMAD_PRELOAD_NAME = "libhcaumad.so"
#: The PCI preload (preload/hcapci.c), through which the real mstflint and mstmcra reach
#: the host's own ConnectX-3 by PCI address (docs/secure-host.md).
PCI_PRELOAD_NAME = "libhcapci.so"


def _built_preload(variable: str, name: str) -> str | None:
    explicit = os.environ.get(variable)
    if explicit:
        return explicit
    built = Path(__file__).resolve().parents[3] / "build" / "preload" / name
    return str(built) if built.is_file() else None


def verbs_preload() -> str | None:
    """The built verbs preload: ``$HCASIM_VERBS_PRELOAD``, else the repository's build
    directory (``build/preload``); None when it was not built."""
    return _built_preload("HCASIM_VERBS_PRELOAD", VERBS_PRELOAD_NAME)


def umad_preload() -> str:
    """The umad preload libibumad programs run under: ``$HCASIM_UMAD_PRELOAD``, else the
    built ``build/preload/libhcaumad.so``, else Debian's libumad2sim.so (docs/fabric.md §10)."""
    return _built_preload("HCASIM_UMAD_PRELOAD", UMAD_PRELOAD_NAME) or UMAD2SIM


def pci_preload() -> str | None:
    """The built PCI preload: ``$HCASIM_PCI_PRELOAD``, else ``build/preload``; None when
    it was not built."""
    return _built_preload("HCASIM_PCI_PRELOAD", PCI_PRELOAD_NAME)


class LabHomeError(ValueError):
    """A lab home that cannot hold a lab (its path cannot be created or bound to)."""


@dataclass(frozen=True)
class LabHome:
    """A lab's home directory (``--home``, else ``$HCASIM_HOME``, else ``./.hcasim``)."""

    path: Path

    @classmethod
    def resolve(cls, explicit: str | None = None) -> LabHome:
        """Pick the home the way every hcasim command does."""
        chosen = explicit or os.environ.get("HCASIM_HOME") or ".hcasim"
        home = cls(Path(chosen).absolute())
        home.check()
        return home

    def check(self) -> None:
        """Refuse a home the system could never hold a lab in, before anything is created.

        Checked up front because both limits otherwise show only deep inside the daemon:
        a directory name longer than NAME_MAX, and a control socket path longer than a Unix
        socket address holds.
        """
        for part in self.path.parts:
            if len(os.fsencode(part)) > NAME_MAX:
                raise LabHomeError(f"lab home {self.path}: File name too long")
        length = len(os.fsencode(self.socket))
        if length > MAX_SOCKET_PATH:
            raise LabHomeError(
                f"lab home {self.path}: its control socket path would be {length} bytes, "
                f"more than the {MAX_SOCKET_PATH} a Unix socket allows"
            )

    @property
    def socket(self) -> Path:
        """The daemon's control socket (mode 0600)."""
        return self.path / "hcasim.sock"

    @property
    def database(self) -> Path:
        """The SQLite store of non-volatile state."""
        return self.path / "lab.db"

    @property
    def lock(self) -> Path:
        """The file the running daemon holds an exclusive lock on."""
        return self.path / "daemon.lock"

    @property
    def log(self) -> Path:
        """The daemon's log."""
        return self.path / "daemon.log"

    @property
    def ibsim_sockname(self) -> str:
        """The lab's ``IBSIM_SOCKNAME``: unique per home, stable across restarts."""
        return "hcasim-" + hashlib.sha256(str(self.path).encode()).hexdigest()[:12]

    def fabric_environment(self, env: dict[str, str], host: str) -> dict[str, str]:
        """``env`` plus what a libibumad program needs to run as if on ``host``.

        The umad preload (:func:`umad_preload`) is appended to any ``LD_PRELOAD`` already
        set (``ibsim-run`` gets this wrong, docs/sources.md §1.10); libumad2sim.so is taken
        out of it when the lab's own preload stands in for it, since the two would both
        claim the same umad files.
        """
        env = dict(env)
        umad = umad_preload()
        preload = [p for p in env.get("LD_PRELOAD", "").split()
                   if p and p not in (UMAD2SIM, umad)]
        env["LD_PRELOAD"] = " ".join([*preload, umad])
        env["IBSIM_SOCKNAME"] = self.ibsim_sockname
        env["SIM_HOST"] = host
        return env

    def pci_root(self, host: str) -> Path:
        """The directory standing for ``host``'s sysfs PCI tree and mstflint lock files
        (hcasim.lab.pci_sysfs; the PCI preload redirects the real paths here)."""
        return self.path / "pci" / host

    def ensure(self) -> list[str]:
        """Create the home directory, private to its owner, or make an existing one so.

        The home holds the lab's secrets (the crypto storage secret, the store, OpenSM's
        M_Key cache and log), so nothing in it may be readable by anyone but its owner,
        whatever the umask. A home that exists with looser modes is tightened (to 0700 for
        directories, group and other bits cleared on files), and each change is returned
        as a line to tell the operator; a home owned by another user is refused.
        """
        old_umask = os.umask(0o077)
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        finally:
            os.umask(old_umask)
        st = self.path.lstat()
        if not stat.S_ISDIR(st.st_mode):
            raise LabHomeError(f"lab home {self.path}: Not a directory")
        if st.st_uid != os.geteuid():
            raise LabHomeError(f"lab home {self.path} belongs to uid {st.st_uid}, not to you "
                               f"(uid {os.geteuid()}): refused")
        changed: list[str] = []
        for path in [self.path, *self._entries()]:
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISLNK(mode) or not mode & 0o077:
                continue
            path.chmod(stat.S_IMODE(mode) & 0o700)
            changed.append(f"{path} was mode {stat.S_IMODE(mode):04o}: tightened to "
                           f"{stat.S_IMODE(mode) & 0o700:04o}")
        return changed

    def _entries(self) -> list[Path]:
        """Every file and directory under the home (symbolic links not followed)."""
        found: list[Path] = []
        for root, dirs, files in os.walk(self.path):
            found += [Path(root) / name for name in (*dirs, *files)]
        return found
