"""Helpers of the tests that run real libibverbs / libmlx5 programs on a lab host.

The verbs preload is built by ``make preload`` (part of ``make install``); C programs are
compiled here against the Debian rdma-core headers and linked against the real libibverbs and
libmlx5. rdma-core's pyverbs and tests come from the PyPI sdist that ``make rdma-core`` (part
of ``make test``) unpacks and builds under ``build/rdma``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRELOAD = ROOT / "build" / "preload" / "libhcaverbs.so"
EXAMPLES = ROOT / "docs" / "examples"
RDMA_VERSION = "59.0"
RDMA_CORE = ROOT / "build" / "rdma" / f"pyverbs-{RDMA_VERSION}" / "rdma-core"
RDMA_BUILD = RDMA_CORE / "build"
RDMA_STAMP = ROOT / "build" / "rdma" / f".built-{RDMA_VERSION}"


def build_preload() -> Path:
    """``make preload`` (a no-op when it is up to date); the library's path."""
    if shutil.which("make") is None or not Path("/usr/include/infiniband/mlx5dv.h").exists():
        # make test installs both: their absence is a broken set-up, not a reason to skip
        pytest.fail("the verbs preload needs make and libibverbs-dev (make install)")
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "preload"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return PRELOAD


def compile_program(source: Path, out: Path) -> Path:
    """Compile a C program against the rdma-core headers, linked with libibverbs and libmlx5."""
    result = subprocess.run(
        ["cc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(source),
         "-libverbs", "-lmlx5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return out


def rdma_core() -> Path:
    """The built rdma-core tree of the pyverbs sdist (``make rdma-core``, part of ``make test``);
    a test that needs it fails without it rather than skip a feature."""
    if not RDMA_STAMP.exists():
        pytest.fail("rdma-core's pyverbs is not built (make rdma-core, part of make test)")
    return RDMA_BUILD
