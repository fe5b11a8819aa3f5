"""The compiled MAD path (src/hcasim/native.py): in use after ``make install``, never
stale, and indistinguishable from the sources it was compiled from.

The differential test runs the same 30,000 datagrams (the fuzz test's corpus, well formed,
then its mutations) through the ibsim endpoint of the default lab, once on the compiled build and
once on the sources (``HCASIM_PURE_PYTHON=1``), each in its own process with the same
fake clock, and compares a digest of every datagram each client received, every log
line, and the final state of every port (PortInfo, P_Keys, counters) and of every
ConnectX-3 driver.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hcasim import native
from hcasim.ib import build
from tests.support.mad_fuzz import corpus, mutate

SEED = 20261122
DATAGRAMS = 30_000


def no_build() -> bool:
    """Whether ``make install`` compiled nothing here: no manifest and no extension module of
    the group (a C compiler is optional, README "Two commands"). A build that exists but is
    stale or partial is not this: the tests below are about it, and fail."""
    modules = (*native.MODULES, native.CODECS_MODULE, native.GROUP)
    return not os.path.exists(native.MANIFEST_PATH) and not any(
        os.path.exists(path) for module in modules for path in native.extension_paths(module))


compiled = pytest.mark.skipif(
    no_build(), reason="no compiled build of the MAD path (make install compiles it with mypyc)")

REPLAY = r'''
import asyncio, hashlib, itertools, json, logging, sys, time
from hcasim import native
from hcasim.ib import layout
from hcasim.lab import daemon
from hcasim.lab.home import LabHome
from hcasim.lab.ibsim_server import Client

digest = hashlib.sha256()

class Sink:
    def __init__(self, index):
        self.index = index
    def send(self, data):
        digest.update(b"%d:" % self.index + data)
    def fileno(self):
        return -1

class Record(logging.Handler):
    def emit(self, record):
        digest.update(record.getMessage().encode())

async def main():
    home = LabHome.resolve(sys.argv[1])
    home.ensure()
    compiled_codecs = layout.use_compiled_codecs()  # as the daemon does
    lab = daemon.open_lab(home, None, None)
    services = await daemon.start_services(lab, home, on_shutdown=lambda: None)
    server = services.ibsim
    logging.getLogger().addHandler(Record())
    clock = itertools.count()
    time.monotonic = lambda: next(clock) * 0.01  # the same "now" for the same MAD
    clients = []
    for index, host in enumerate(("sm", "node1", "node3")):
        port = server.subnet.attach_port(host)
        client = Client(index, 1000 + index, port.ref, Sink(index), state=port)
        server.clients[index] = client
        clients.append(client)
    server._set_issm(clients[0], True)
    blob = open(sys.argv[2], "rb").read()
    count = 0
    at = 0
    while at < len(blob):
        size = int.from_bytes(blob[at:at + 2], "big")
        server.handle(clients[count % 3], blob[at + 2:at + 2 + size])
        at += 2 + size
        count += 1
    for node in server.subnet.nodes:
        for port in node.ports:
            if port is None:
                continue
            digest.update(server.engine.port_info_data(port.ref))
            digest.update(repr((port.pkey_table(), port.counters)).encode())
    for drivers in services.cx3.drivers.values():
        for driver in drivers:
            digest.update(repr(driver.show()).encode())
    print(json.dumps({"state": native.state(), "codecs": compiled_codecs, "count": count,
                      "digest": digest.hexdigest()}))

asyncio.run(main())
'''


@compiled
def test_the_compiled_build_is_in_use() -> None:
    assert native.state() == "compiled", (
        f"{native.state()}: make install compiles the MAD path with mypyc")
    import hcasim.fabric.engine as engine
    import hcasim.hosts.cx3_wire as cx3_wire
    assert not engine.__file__.endswith(".py") and not cx3_wire.__file__.endswith(".py")
    from hcasim.ib import layout
    assert layout.use_compiled_codecs()


def _import_paths(tree: Path, env: dict[str, str]) -> dict[str, str]:
    code = ("import json, hcasim.fabric.engine as e, hcasim.native as n; "
            "print(json.dumps({'engine': e.__file__, 'state': n.state()}))")
    result = subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONPATH=str(tree)),
                            capture_output=True, text=True, check=True, cwd=tree)
    loaded: dict[str, str] = json.loads(result.stdout)
    return loaded


@compiled
def test_a_changed_source_takes_the_group_back_to_python(tmp_path: Path) -> None:
    tree = tmp_path / "src"
    shutil.copytree(Path(native.__file__).parents[1], tree)
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    before = _import_paths(tree, env)
    assert before == {"engine": before["engine"], "state": "compiled"}
    assert before["engine"].endswith(".so")

    assert _import_paths(tree, dict(env, HCASIM_PURE_PYTHON="1")) == {
        "engine": str(tree / "hcasim/fabric/engine.py"),
        "state": "sources (HCASIM_PURE_PYTHON=1)"}

    routing = tree / "hcasim/fabric/routing.py"
    routing.write_text(routing.read_text() + "\n# an edit after the build\n")
    assert _import_paths(tree, env) == {
        "engine": str(tree / "hcasim/fabric/engine.py"),
        "state": "sources (hcasim.fabric.routing changed since the build; run make install)"}


def test_without_a_build_the_sources_run(tmp_path: Path) -> None:
    """What a machine without a C compiler gets: the guard leaves the imports alone."""
    tree = tmp_path / "src"
    built = ["*.so", "*.pyd", native.MANIFEST, "_codecs.py", "__pycache__"]
    shutil.copytree(Path(native.__file__).parents[1], tree, ignore=shutil.ignore_patterns(*built))
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    assert _import_paths(tree, env) == {
        "engine": str(tree / "hcasim/fabric/engine.py"), "state": "sources (no compiled build)"}


@compiled
def test_compiled_and_sources_answer_alike(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    items = corpus(with_sets=True)
    datagrams = [build.sim_request(base, dlid).encode() for base, dlid in items]  # well formed
    for _ in range(DATAGRAMS - len(datagrams)):
        base, dlid = rng.choice(items)
        datagrams.append(mutate(rng, base, dlid, lambda _: True))
    blob = b"".join(len(d).to_bytes(2, "big") + d for d in datagrams)
    (tmp_path / "datagrams").write_bytes(blob)
    (tmp_path / "replay.py").write_text(REPLAY)
    runs = {}
    for name, extra in (("compiled", {}), ("sources", {native.PURE_ENV: "1"})):
        env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
        result = subprocess.run(
            [sys.executable, str(tmp_path / "replay.py"), str(tmp_path / name),
             str(tmp_path / "datagrams")],
            env=dict(env, **extra), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = json.loads(result.stdout)
    assert runs["compiled"]["state"] == "compiled" and runs["compiled"]["codecs"]
    assert runs["sources"]["state"] == "sources (HCASIM_PURE_PYTHON=1)"
    assert not runs["sources"]["codecs"]
    assert runs["compiled"]["count"] == runs["sources"]["count"] == DATAGRAMS
    assert runs["compiled"]["digest"] == runs["sources"]["digest"]
