"""The lab's web view (issue 13) in a real headless Chromium against the real daemon: the
page finds every host, shows a key coming into force on node1 without a reload, keeps
its timeline and history, answers on loopback only, and never shows a secret; the SVG
of ``hcasim show`` names every host.
"""

from __future__ import annotations

import errno
import json
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hcasim.api.client import ControlClient, LabError
from hcasim.fabric.fattree import fat_tree
from hcasim.fabric.netfile import format_netfile
from hcasim.lab.home import LabHome
from hcasim.testing import LabHandle, headless_chromium, page_ready, running_lab
from tests.support.browser import wait_for
from tests.support.crypto_helpers import ADMIN, CryptoLab
from tests.support.flint import CX3, KEY

#: A key that is not node1's.
OTHER_KEY = "0123456789abcdef"
DEFAULT_HOSTS = ("sm", "node1", "node2", "node3", "crypto1")
#: The key in every spelling a leak could take (flint prints keys as hex or decimal).
KEY_SPELLINGS = (KEY, KEY.upper(), f"{int(KEY, 16):#x}", str(int(KEY, 16)))


@pytest.fixture(scope="module")
def web_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabHandle, str]]:
    """The default lab with its web view served; (lab, url)."""
    with running_lab(tmp_path_factory.mktemp("web") / "home") as lab:
        result = lab.hcasim("web")
        assert result.returncode == 0, result.stderr
        url = result.stdout.strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        yield lab, url


def fetch(url: str, host: str | None = None) -> tuple[int, str]:
    """GET a URL (optionally with another Host header): status and body."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def tile(driver: Any, host: str) -> dict[str, str]:
    """What node ``host``'s tile says of itself (its data attributes)."""
    data: dict[str, str] = driver.execute_script(
        "const g = document.querySelector(`g.host[data-host=\"${arguments[0]}\"]`);"
        "return g ? {...g.dataset} : null;", host)
    return data


def assert_no_key(text: str, where: str) -> None:
    """No spelling of the test key appears in ``text``."""
    lowered = text.lower()
    for spelling in KEY_SPELLINGS:
        assert spelling.lower() not in lowered, f"the key appears in {where}"


def test_page_shows_key_coming_into_force_live(
        web_lab: tuple[LabHandle, str], tmp_path: Path) -> None:
    lab, url = web_lab
    with headless_chromium() as driver:
        driver.get(url)
        page_ready(driver)
        shown = driver.execute_script(
            "return [...document.querySelectorAll('g.host')].map(g => g.dataset.host)")
        assert sorted(shown) == sorted(DEFAULT_HOSTS)
        assert tile(driver, "node1")["summary"] == "open"
        assert tile(driver, "node1")["cr"] == "open"
        # a mark that only survives if the page is never reloaded
        driver.execute_script("window.noReload = 'still here'")

        r = lab.flint("node1", "-d", CX3, "set_key", KEY)
        assert r.returncode == 0, r.stdout
        wait_for(lambda: tile(driver, "node1")["summary"] == "pending",
                 what="node1 waiting for its driver restart")
        lab.restart_driver("node1")
        wait_for(lambda: tile(driver, "node1")["cr"] == "locked", what="node1 locked")
        node1 = tile(driver, "node1")
        assert (node1["summary"], node1["firewall"], node1["key"]) == ("secured", "on", "active")
        assert driver.execute_script("return window.noReload") == "still here"
        for other in ("node2", "sm"):
            assert tile(driver, other)["summary"] == "open"

        # the timeline, filtered to node1, tells what happened in order; the history too
        driver.find_element("id", "filter-host").send_keys("node1")
        texts = wait_for(lambda: driver.execute_script(
            "return [...document.querySelectorAll('#events li')].map(li => "
            "[li.dataset.host, li.querySelector('.text').textContent]).reverse()"),
            what="node1's events")
        assert {host for host, _ in texts} == {"node1"}
        words = [text for _, text in texts]
        order = [next(i for i, t in enumerate(words) if t.startswith(prefix)) for prefix in (
            "key set, waiting for a driver restart", "driver restarted",
            "mlx4_core 0000:01:00.0: HCA operating in secure-host mode", "key active",
            "CR-space locked", "SMP firewall on")]
        assert order[:2] == sorted(order[:2]) and order[1] < min(order[2:])
        driver.find_element("css selector", 'g.host[data-host="node1"]').click()
        history = driver.find_element("id", "history").text
        assert "CR-space locked" in history and "driver restarted" in history
        details = driver.find_element("id", "details").text
        assert "SMP firewall\non" in details and "CR-space\nlocked" in details

        # a locked CR-space read is a refused attempt, on the timeline without a reload
        assert lab.flint("node1", "-d", CX3, "-qq", "q").returncode == 1
        wait_for(lambda: driver.execute_script(
            "return [...document.querySelectorAll('#events li.refused')].length > 0"),
            what="the refused CR-space access")

        # hw_access: a wrong key is refused (on the timeline), the right one opens CR-space
        r = lab.flint("node1", "-d", CX3, "hw_access", "enable", OTHER_KEY)
        assert r.returncode == 1
        wait_for(lambda: driver.execute_script(
            "return [...document.querySelectorAll('#events li.refused .text')]"
            ".some(t => t.textContent.includes('wrong key'))"), what="the wrong key")
        assert lab.flint("node1", "-d", CX3, "hw_access", "enable", KEY).returncode == 0
        wait_for(lambda: tile(driver, "node1")["summary"] == "unlocked", what="node1 opened")
        assert tile(driver, "node1")["firewall"] == "on"
        assert lab.flint("node1", "-d", CX3, "hw_access", "disable").returncode == 0
        wait_for(lambda: tile(driver, "node1")["summary"] == "secured", what="node1 locked")
        assert "CR-space opened" in driver.find_element("id", "history").text
        # a reboot is history too; the host comes back locked
        lab.reboot("node1")
        wait_for(lambda: "host rebooted" in driver.find_element("id", "history").text,
                 what="the reboot in node1's history")
        assert tile(driver, "node1")["summary"] == "secured"

        # search finds a host by name and marks it
        search = driver.find_element("id", "search")
        search.send_keys("node2")
        wait_for(lambda: tile(driver, "node2").get("summary") and driver.execute_script(
            "return document.querySelector('g.host[data-host=\"node2\"]')"
            ".classList.contains('match')"), what="node2 found")

        shot = tmp_path / "web-view.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000

        page = driver.page_source
        assert_no_key(page, "the page")
        stream = driver.execute_script("return JSON.stringify(state.events)")
        assert "secure-host mode" in stream
        assert_no_key(stream, "the event stream")
    status, body = fetch(url + "api/snapshot")
    assert status == 200
    assert_no_key(body, "the snapshot")
    assert {h["name"] for h in json.loads(body)["hosts"]} == set(DEFAULT_HOSTS)


def test_view_answers_on_loopback_only(web_lab: tuple[LabHandle, str]) -> None:
    _lab, url = web_lab
    assert fetch(url)[0] == 200
    # a page elsewhere reaching the port through another name (DNS rebinding) is refused
    status, body = fetch(url + "api/snapshot", host="lab.example.org")
    assert status == 403 and "hosts" not in body
    assert url.startswith("http://127.0.0.1:")


def test_a_host_session_cannot_start_the_view(web_lab: tuple[LabHandle, str]) -> None:
    lab, _url = web_lab
    with ControlClient(str(LabHome(lab.home).socket), host="node1") as client:
        with pytest.raises(LabError) as refused:
            client.call("web_start", port=0)
    assert refused.value.errno == errno.EPERM


def test_svg_names_every_host(web_lab: tuple[LabHandle, str], tmp_path: Path) -> None:
    lab, _url = web_lab
    out = tmp_path / "lab.svg"
    result = lab.hcasim("show", "--svg", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    root = ET.fromstring(text)
    ns = "{http://www.w3.org/2000/svg}"
    words = {t.text for t in root.iter(f"{ns}text")}
    for host in DEFAULT_HOSTS:
        assert host in words, host
    assert "sw1  LID 0" in words or any(w and w.startswith("sw1") for w in words)
    assert_no_key(text, "the SVG")


def test_opensm_sweep_shows_without_reload(web_lab: tuple[LabHandle, str]) -> None:
    lab, url = web_lab
    with headless_chromium() as driver:
        driver.get(url)
        page_ready(driver)
        assert driver.find_element("id", "sm").text == "OpenSM: not running"
        driver.execute_script("window.noReload = 'still here'")
        r = lab.hcasim("sm", "start", timeout=180)
        assert r.returncode == 0, r.stderr
        try:
            # the SM's sweep gives every host a LID and brings its port up, live
            wait_for(lambda: all(tile(driver, h)["lid"] != "0" for h in DEFAULT_HOSTS),
                     what="every host's LID")
            wait_for(lambda: driver.find_element("id", "sm").text.startswith("OpenSM on sm"),
                     what="OpenSM in the header")
            events = driver.execute_script(
                "return state.events.map(e => [e.host, e.kind, e.text])")
            assert any(kind == "opensm" for _, kind, _ in events)
            assert any(h == "node2" and text == "port Active (was Init)"
                       for h, _, text in events)
            assert driver.execute_script("return window.noReload") == "still here"
            lids = {h: int(tile(driver, h)["lid"]) for h in DEFAULT_HOSTS}
            assert len(set(lids.values())) == len(DEFAULT_HOSTS)
        finally:
            assert lab.hcasim("sm", "stop").returncode == 0


def test_png_through_rsvg_convert(web_lab: tuple[LabHandle, str], tmp_path: Path) -> None:
    lab, _url = web_lab
    out = tmp_path / "lab.png"
    result = lab.hcasim("show", "--svg", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_crypto_commissioning_shows_live_and_no_credential_or_kek(
        web_lab: tuple[LabHandle, str], tmp_path: Path) -> None:
    lab, url = web_lab
    officer = CryptoLab(lab, tmp_path / "files")
    secrets = [ADMIN.credential.hex(), ADMIN.kek.hex()]
    with headless_chromium() as driver:
        driver.get(url)
        page_ready(driver)
        assert tile(driver, "crypto1")["summary"] == "crypto-commissioning"
        officer.commission()
        wait_for(lambda: tile(driver, "crypto1")["summary"] == "crypto-operational",
                 what="crypto1 operational")
        driver.find_element("css selector", 'g.host[data-host="crypto1"]').click()
        details = driver.find_element("id", "details").text
        assert "crypto engine\noperational" in details
        assert "1 credentials, 1 import KEKs" in details
        seen = driver.page_source + driver.execute_script(
            "return JSON.stringify([state.snap, state.events])")
    status, snap = fetch(url + "api/snapshot")
    out = tmp_path / "lab.svg"
    assert lab.hcasim("show", "--svg", str(out)).returncode == 0
    for text, where in ((seen, "the page"), (snap, "the snapshot"),
                        (out.read_text(), "the SVG")):
        for secret in secrets:
            assert secret.lower() not in text.lower(), f"a secret appears in {where}"


def test_a_1024_hca_fat_tree_is_usable(tmp_path: Path) -> None:
    net = tmp_path / "ft1024.net"
    net.write_text(format_netfile(fat_tree(1024, 36)))
    with running_lab(tmp_path / "home", up_args=("--topology", str(net))) as lab:
        url = lab.hcasim("web").stdout.strip()
        with headless_chromium() as driver:
            driver.get(url)
            page_ready(driver)
            assert driver.execute_script(
                "return document.querySelectorAll('g.host').length") == 1024
            # hosts are grouped under their leaf switch
            assert driver.execute_script(
                "return state.hosts.get('H00300').switch") == "leaf17"
            guid = driver.execute_script("return state.hosts.get('H00300').guid")
            search = driver.find_element("id", "search")
            search.send_keys(guid[-8:])  # a part of its GUID finds it
            wait_for(lambda: driver.find_element("id", "search-result").text == "1 match",
                     what="one match")
            assert driver.find_element("id", "details").text.startswith("H00300")
            # zoomed in on it, the tiles in view carry their names
            labels = wait_for(lambda: driver.execute_script(
                "return [...document.querySelectorAll('#labels text')]"
                ".map(t => t.textContent)"), what="names on the zoomed tiles")
            assert "H00300" in labels and len(labels) < 1024
            driver.find_element("id", "zoom-fit").click()
            wait_for(lambda: driver.execute_script(
                "return document.querySelectorAll('#labels text').length === 0"),
                what="no names when the whole fabric is in view")
