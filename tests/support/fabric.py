"""A running lab with OpenSM up, the check that a tool or CLI run succeeded, and the wait
for a process to end: what the fabric, umad-preload, osmtest, local-mstflint and daemon
tests start from."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hcasim.lab.sm_service import process_exited
from hcasim.testing import LabHandle, running_lab


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """``result``, after asserting it exited 0 (its output in the failure message)."""
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


@contextmanager
def lab_with_sm(home: Path) -> Iterator[LabHandle]:
    """A default lab in ``home`` whose OpenSM (``hcasim sm start``) has reached SUBNET UP."""
    with running_lab(home) as handle:
        ok(handle.hcasim("sm", "start"))
        yield handle


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether process ``pid`` exits (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while not process_exited(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
