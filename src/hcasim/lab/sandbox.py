"""A lab host's confined view of the machine, built with bubblewrap (Debian ``bubblewrap``).

``hcasim exec --host H`` and OpenSM on host H run in it: the whole file system as it is,
except that the lab home is an empty directory holding only the control socket (and, on H,
H's own OpenSM directory), and each host has its own persistent directories where a real
host keeps such files (``/var/cache/opensm``, ``/etc/opensm``, ``/etc/mft``,
``/tmp/mstflint_lockfiles``), kept in ``HOME/hosts/H``. Its own mount, IPC and UTS
namespaces (hostname H); the network namespace stays shared, since the umad preload (like
libumad2sim) reaches the lab's ibsim endpoint through abstract sockets, which live there
(and the daemon tells who attaches from the kernel's credentials, not from the socket).
A process inside cannot undo the mounts: bubblewrap leaves it no capabilities.
docs/security-model.md §3.
"""

from __future__ import annotations

import os
import shutil
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
    if probe.returncode != 0:
        return f"bwrap cannot create namespaces here: {probe.stderr.strip() or 'failed'}"
    return None


def host_directory(home: LabHome, host: str) -> Path:
    """``HOME/hosts/H``: the host's own persistent files (created 0700)."""
    return home.path / "hosts" / host


def command(home: LabHome, host: str, argv: list[str], cwd: str | None = None) -> list[str]:
    """``argv`` run inside host ``host``'s sandbox (bwrap must be available)."""
    binary = bwrap()
    assert binary is not None
    old_umask = os.umask(0o077)
    try:
        own = host_directory(home, host)
        own.mkdir(parents=True, exist_ok=True)
        args = [binary, "--bind", "/", "/", "--dev-bind", "/dev", "/dev",
                "--unshare-ipc", "--unshare-uts", "--hostname", host, "--die-with-parent",
                # the home: an empty directory, with the control socket and H's own files
                "--tmpfs", str(home.path), "--perms", "0700", "--dir", str(home.path)]
        if home.socket.exists():
            args += ["--bind", str(home.socket), str(home.socket)]
        opensm = home.path / f"opensm-{host}"
        if opensm.is_dir():
            args += ["--bind", str(opensm), str(opensm)]
        # H's fake PCI sysfs and mstflint lock files, for the PCI preload (hcasim.lab.pci_sysfs)
        pci = home.pci_root(host)
        if pci.is_dir():
            args += ["--bind", str(pci), str(pci)]
        for target, name in HOST_DIRS.items():
            source = own / name
            source.mkdir(exist_ok=True)
            if os.path.isdir(target) or os.geteuid() == 0:  # a user cannot create /etc/x
                args += ["--bind", str(source), target]
    finally:
        os.umask(old_umask)
    args += ["--chdir", cwd or os.getcwd(), "--", *argv]
    return args
