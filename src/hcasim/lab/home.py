"""Where a lab lives on disk: its home directory and the files in it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabHome:
    """A lab's home directory (``--home``, else ``$HCASIM_HOME``, else ``./.hcasim``)."""

    path: Path

    @classmethod
    def resolve(cls, explicit: str | None = None) -> LabHome:
        """Pick the home the way every hcasim command does."""
        chosen = explicit or os.environ.get("HCASIM_HOME") or ".hcasim"
        return cls(Path(chosen).absolute())

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

    def ensure(self) -> None:
        """Create the home directory, private to its owner."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
