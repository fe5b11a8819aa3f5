"""docs/crypto.md's walkthrough runs as written: its shell block, with its my_app.py."""

from __future__ import annotations

import os
import re
import subprocess
import sysconfig
from pathlib import Path

from hcasim.testing import LabHandle

DOC = Path(__file__).resolve().parent.parent / "docs" / "crypto.md"


def walkthrough() -> tuple[str, str]:
    """The shell block and the Python block of section 0."""
    text = DOC.read_text()
    section = text[text.index("## 0. Walkthrough") : text.index("## 1. Layers")]
    shell = re.search(r"```sh\n(.*?)```", section, re.S)
    app = re.search(r"```python\n(.*?)```", section, re.S)
    assert shell is not None and app is not None
    return shell.group(1), app.group(1)


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    shell, app = walkthrough()
    (tmp_path / "my_app.py").write_text(app)
    env = dict(os.environ)
    env.update(
        HCASIM_HOME=str(tmp_path / "home"),
        HCASIM_DAEMON_WATCH_PID=str(os.getpid()),
        PATH=sysconfig.get_path("scripts") + os.pathsep + env.get("PATH", ""),
    )
    try:
        r = subprocess.run(["bash", "-e", "-c", shell], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    finally:
        LabHandle(tmp_path / "home").hcasim("down")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert "hcasim: mlx5_0 on crypto1 is operational: credential 0 (officer) and import KEK 0 " \
           "(256-bit) written" in out
    assert "hcasim: credential 1 (user) added to mlx5_0 on crypto1" in out
    assert "hcasim: import KEK 1 (256-bit) added to mlx5_0 on crypto1" in out
    assert out[out.index("ID  ROLE") + 1 : out.index("ID  ROLE") + 3] == ["0   officer", "1   user"]
    assert "ok" in out
    assert out[-1].split() == ["crypto1", "mlx5_0", "operational", "2/64", "2/64", "0", "0", "0"]
    for name in ("officer-cred.hex", "app-kek.hex"):
        secret = (tmp_path / name).read_text().strip()
        assert secret not in r.stdout + r.stderr
