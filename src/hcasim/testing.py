"""Test support: a lab in a temporary home that always stops.

Use the context manager anywhere, or the pytest fixture ``hcasim_lab`` (this module is a
pytest plugin once hcasim is installed)::

    def test_locked(hcasim_lab):
        hcasim_lab.flint("node1", "-d", "/dev/mst/mt4099_pci_cr0", "set_key", "1234")
        hcasim_lab.restart_driver("node1")
        result = hcasim_lab.flint("node1", "-d", "/dev/mst/mt4099_pci_cr0", "-qq", "q")
        assert result.returncode == 1

Commands run as real subprocesses (``hcasim exec --host H -- ...``), so what a test sees is
what a user sees. The daemon also watches the test process and stops if it dies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HCASIM = [sys.executable, "-m", "hcasim.cli.hcasim"]


def run_exact(
    argv: Sequence[str], env: dict[str, str] | None, input: str | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a program and decode its output without newline translation (``\\r`` kept)."""
    result = subprocess.run(
        list(argv),
        input=None if input is None else input.encode(),
        capture_output=True,
        timeout=timeout,
        env=env,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


class LabHandle:
    """A running lab: run commands on its hosts and drive its events."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def hcasim(
        self, *args: str, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run an ``hcasim`` subcommand against this lab."""
        return run_exact([*HCASIM, "--home", str(self.home), *args], self.env(), input, timeout)

    def env(self) -> dict[str, str]:
        """The environment commands of this lab run with."""
        env = dict(os.environ)
        env["HCASIM_HOME"] = str(self.home)
        env["HCASIM_DAEMON_WATCH_PID"] = str(os.getpid())
        return env

    def run(
        self, host: str, *cmd: str, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a program on a host of the lab (``hcasim exec --host H -- CMD``)."""
        return self.hcasim("exec", "--host", host, "--", *cmd, input=input, timeout=timeout)

    def flint(
        self, host: str, *args: str, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run hcasim's flint on a host."""
        return self.run(host, "flint", *args, input=input)

    def reboot(self, host: str) -> None:
        """Reboot a host."""
        self._check(self.hcasim("host", "reboot", host))

    def restart_driver(self, host: str) -> None:
        """Restart the HCA driver on a host."""
        self._check(self.hcasim("driver", "restart", host))

    def fail_link(self, node: str, port: int) -> None:
        """Take the link at a port down as a failure would (``hcasim fault link ... down``:
        LinkDownedCounter at both ends, trap 128); it stays down until restored."""
        self._check(self.hcasim("fault", "link", node, str(port), "down"))

    def restore_link(self, node: str, port: int) -> None:
        """Let a failed link train again (``hcasim fault link ... up``)."""
        self._check(self.hcasim("fault", "link", node, str(port), "up"))

    def port_errors(self, node: str, port: int, *, symbol: int = 0, rcv_errors: int = 0,
                    drop: int = 0) -> None:
        """Set a port's injected error rates, in percent of the MADs entering it (all 0: a
        healthy port again; ``hcasim fault port``)."""
        self._check(self.hcasim("fault", "port", node, str(port), "--symbol", str(symbol),
                                "--rcv-errors", str(rcv_errors), "--drop", str(drop)))

    def node_answers(self, node: str, answering: bool) -> None:
        """Make a node's agents stop answering, or answer again (``hcasim fault node``)."""
        self._check(self.hcasim("fault", "node", node,
                                "answering" if answering else "silent"))

    def status(self) -> dict[str, Any]:
        """The lab's status as data."""
        result = self._check(self.hcasim("status", "--json"))
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def device_state(self, host: str) -> dict[str, Any]:
        """The secure-host state of a host's first device."""
        for h in self.status()["hosts"]:
            if h["name"] == host:
                state: dict[str, Any] = h["devices"][0]
                return state
        raise KeyError(host)

    @staticmethod
    def _check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        if result.returncode != 0:
            raise RuntimeError(f"{result.args}: {result.returncode}: {result.stderr}")
        return result

    def up(self, *args: str) -> None:
        """Start (or restart) the lab daemon."""
        self._check(self.hcasim("up", *args))

    def down(self) -> None:
        """Stop the lab daemon."""
        self._check(self.hcasim("down"))


#: Debian's Chromium and its WebDriver (packages chromium, chromium-driver).
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextmanager
def headless_chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A Selenium WebDriver on Debian's headless Chromium (for the web view), quit on exit.

    Nothing is downloaded: the driver's path is given, so Selenium Manager is not asked to
    find or fetch one (and is told to stay offline should it run). Without the packages
    this raises, naming the one to install (``make test`` installs both).
    """
    from selenium import webdriver  # a test dependency (the dev extra), loaded on use
    from selenium.webdriver.chrome.service import Service

    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            raise RuntimeError(f"{path} is missing: install the Debian package {package}")
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options,
                              service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def page_ready(driver: Any, timeout: float = 60.0) -> float:
    """Wait until the web view has drawn its first snapshot; return the page's own time
    from fetching the snapshot to the drawn picture (ms)."""
    deadline = time.monotonic() + timeout
    while not driver.execute_script("return document.body.dataset.ready === '1'"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the web view did not draw within {timeout} s")
        time.sleep(0.05)
    return float(driver.execute_script("return document.body.dataset.renderMs"))


@contextmanager
def running_lab(home: str | Path | None = None, up_args: Sequence[str] = ()) -> Iterator[LabHandle]:
    """Start a lab (in a temporary home unless one is given) and always stop it."""
    with tempfile.TemporaryDirectory(prefix="hcasim-") as tmp:
        lab = LabHandle(Path(home) if home is not None else Path(tmp) / "home")
        lab.up(*up_args)
        try:
            yield lab
        finally:
            lab.hcasim("down")


try:
    import pytest
except ImportError:  # pragma: no cover - the context manager works without pytest
    pass
else:

    @pytest.fixture
    def hcasim_lab(tmp_path: Path) -> Iterator[LabHandle]:
        """A running default lab in a temporary home, stopped after the test."""
        with running_lab(tmp_path / "home") as lab:
            yield lab
