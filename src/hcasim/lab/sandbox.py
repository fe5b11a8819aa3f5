"""A lab host's confined view of the machine, built with bubblewrap (Debian ``bubblewrap``).

``hcasim exec --host H`` and OpenSM on host H run in it: the whole file system as it is,
except that the lab home is an empty directory holding only the control socket (and, on H,
H's own OpenSM directory), and each host has its own persistent directories where a real
host keeps such files (``/var/cache/opensm``, ``/etc/opensm``, ``/etc/mft``,
``/tmp/mstflint_lockfiles``, and its home directory ``/home/H``, which ``$HOME`` names),
kept in ``HOME/hosts/H``. A mount point the machine lacks is never created on the
machine's own file system (bubblewrap would, running as root): its parent directory is
rebuilt on a tmpfs inside the sandbox, its entries bound back one by one, and the missing
directory made there. Its own mount, IPC and UTS namespaces (hostname H); the network
namespace stays shared, since the umad preload (like libumad2sim) reaches the lab's ibsim
endpoint through abstract sockets, which live there (and the daemon tells who attaches
from the kernel's credentials, not from the socket). A process inside cannot undo the
mounts: bubblewrap leaves it no capabilities. docs/security-model.md §3.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from hcasim.lab.home import LabHome

#: Where a real host keeps what each tool writes, and the name of its directory in
#: ``HOME/hosts/H`` (OpenSM's cache and config, mstflint's config and lock files).
HOST_DIRS: dict[str, str] = {
    "/var/cache/opensm": "var-cache-opensm",
    "/etc/opensm": "etc-opensm",
    "/etc/mft": "etc-mft",
    "/tmp/mstflint_lockfiles": "tmp-mstflint_lockfiles",
}


#: The parent of each host's home directory: ``$HOME`` inside host H's sandbox is
#: ``/home/H`` (a host's own account), beside the machine's users' homes, so a working
#: directory under the operator's own home stays where it is and usable.
HOME_PARENT = "/home"
#: The name of the host's home directory in ``HOME/hosts/H``.
HOME_DIR = "home"
#: Most entries a directory may have to be rebuilt on a tmpfs for a missing mount point
#: (each is one more mount, about 0.3 ms: /etc's 150 add some 45 ms to every command);
#: past it the mount point is left out (docs/security-model.md §3).
MAX_REBUILT_ENTRIES = 1024
#: Shared scratch directories never rebuilt: their entries come and go (another process's
#: file made after the sandbox would be missing from it). A missing mount point in one is
#: left out; ``/tmp/mstflint_lockfiles`` is the only one, and the PCI preload sends
#: mstflint's lock files to the host's own tree anyway (hcasim.lab.pci_sysfs).
NEVER_REBUILT = frozenset({"/tmp", "/var/tmp", "/dev/shm"})


def home_directory(host: str) -> str:
    """Where host ``host``'s own home directory is inside its sandbox (``$HOME``)."""
    return f"{HOME_PARENT}/{host}"


def bwrap() -> str | None:
    """The bubblewrap binary, if installed."""
    return shutil.which("bwrap")


def unavailable_reason() -> str | None:
    """Why no sandbox can be made here (None: it can): bubblewrap missing, or the machine
    refuses it namespaces (a container without user namespaces, say)."""
    binary = bwrap()
    if binary is None:
        return "bubblewrap (bwrap) is not installed (Debian package bubblewrap)"
    probe = subprocess.run([binary, "--bind", "/", "/", "--unshare-ipc", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:  # said on one line: bwrap's first line of complaint
        lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
        why = lines[0] if lines else f"exit status {probe.returncode}"
        return f"bwrap cannot create namespaces here: {why}"
    return None


def host_directory(home: LabHome, host: str) -> Path:
    """``HOME/hosts/H``: the host's own persistent files (created 0700)."""
    return home.path / "hosts" / host


def _within(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or lies under it (both absolute, normalised)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _rebuilt_parents(targets: list[str]) -> tuple[list[str], set[str]]:
    """For mount points the machine lacks: the existing directories to rebuild on a tmpfs
    (outermost first), and the targets that cannot be had: under ``/`` itself, in shared
    scratch space (:data:`NEVER_REBUILT`), under a symbolic link, or in a directory of more
    than :data:`MAX_REBUILT_ENTRIES` entries."""
    rebuild: set[str] = set()
    skipped: set[str] = set()
    for target in targets:
        if os.path.isdir(target):
            continue
        parent = os.path.dirname(target)
        while not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        try:
            entries = len(os.listdir(parent))
        except OSError:
            entries = MAX_REBUILT_ENTRIES + 1
        if parent == "/" or parent in NEVER_REBUILT or os.path.islink(parent) \
                or entries > MAX_REBUILT_ENTRIES:
            skipped.add(target)
        else:
            rebuild.add(parent)
    # a directory rebuilt inside another one rebuilt: the outer one first
    return sorted(rebuild, key=lambda p: (p.count("/"), p)), skipped


def _rebuild_args(directory: str) -> list[str]:
    """bwrap arguments that put a tmpfs on ``directory`` (same mode) and bind each of its
    entries back (a symbolic link is made again as one), so that mount points may then be
    made in it without touching the machine's own directory. An entry that goes away
    before bubblewrap binds it is skipped (``--bind-try``)."""
    mode = stat.S_IMODE(os.stat(directory).st_mode)
    args = ["--perms", f"{mode:04o}", "--tmpfs", directory]
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), entry.path]
            else:
                args += ["--bind-try", entry.path, entry.path]
    return args


def command(home: LabHome, host: str, argv: list[str], cwd: str | None = None) -> list[str]:
    """``argv`` run inside host ``host``'s sandbox (bwrap must be available)."""
    binary = bwrap()
    assert binary is not None
    workdir = os.path.realpath(cwd or os.getcwd())
    old_umask = os.umask(0o077)
    try:
        own = host_directory(home, host)
        own.mkdir(parents=True, exist_ok=True)
        # the host's own directories: where a real host keeps them -> HOME/hosts/H/NAME
        mounts = [(own / name, os.path.realpath(target)) for target, name in HOST_DIRS.items()]
        user_home = home_directory(host)
        if not _within(workdir, user_home) and not _within(str(home.path), user_home):
            mounts.append((own / HOME_DIR, user_home))
        else:  # it would hide the working directory (or the lab): $HOME stays as it is
            user_home = ""
        rebuild, skipped = _rebuilt_parents([target for _, target in mounts])
        args = [binary, "--bind", "/", "/", "--dev-bind", "/dev", "/dev",
                "--unshare-ipc", "--unshare-uts", "--hostname", host, "--die-with-parent"]
        for directory in rebuild:
            args += _rebuild_args(directory)
        # the home: an empty directory, with the control socket and H's own files
        args += ["--tmpfs", str(home.path), "--perms", "0700", "--dir", str(home.path)]
        if home.socket.exists():
            args += ["--bind", str(home.socket), str(home.socket)]
        opensm = home.path / f"opensm-{host}"
        if opensm.is_dir():
            args += ["--bind", str(opensm), str(opensm)]
        # H's fake PCI sysfs and mstflint lock files, for the PCI preload (hcasim.lab.pci_sysfs)
        pci = home.pci_root(host)
        if pci.is_dir():
            args += ["--bind", str(pci), str(pci)]
        for source, target in mounts:
            source.mkdir(exist_ok=True)
            if target not in skipped:
                args += ["--bind", str(source), target]
        if user_home and user_home not in skipped:
            args += ["--setenv", "HOME", user_home]
    finally:
        os.umask(old_umask)
    args += ["--chdir", workdir, "--", *argv]
    return args
