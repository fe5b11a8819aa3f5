"""A running lab with OpenSM up, and the check that a tool or CLI run succeeded: what the
fabric, umad-preload, osmtest and local-mstflint tests all start from."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
