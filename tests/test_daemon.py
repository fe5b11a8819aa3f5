"""The lab daemon: lifecycle, persistence, bad input, crashes and concurrent clients."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hcasim.testing import running_lab
from tests.support.fabric import gone
from tests.support.flint import CX3, ENABLED, KEY, SET_KEY_OUTPUT, WRONG_KEY


def daemon_pid(lab) -> int:  # type: ignore[no-untyped-def]
    return int((lab.home / "daemon.lock").read_text())


def test_up_is_idempotent_and_second_daemon_refused(lab):  # type: ignore[no-untyped-def]
    pid = daemon_pid(lab)
    r = lab.hcasim("up")
    assert r.returncode == 0
    assert r.stdout == f"hcasim: lab already up at {lab.home} (pid {pid})\n"
    r = subprocess.run(
        [sys.executable, "-m", "hcasim.lab.daemon", "--home", str(lab.home)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert r.stderr == f"hcasim: another lab daemon (pid {pid}) is running on {lab.home}\n"
    assert daemon_pid(lab) == pid and lab.hcasim("status").returncode == 0


def test_socket_is_private(lab):  # type: ignore[no-untyped-def]
    mode = (lab.home / "hcasim.sock").stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(lab.home.stat().st_mode) == 0o700


def test_restart_keeps_flash_and_loses_volatile_state(lab):  # type: ignore[no-untyped-def]
    assert lab.flint("node1", "-d", CX3, "set_key", KEY).stdout == SET_KEY_OUTPUT
    lab.flint("node2", "-d", CX3, "set_key", KEY)
    lab.restart_driver("node2")
    lab.flint("node2", "-d", CX3, "hw_access", "enable", KEY)
    assert lab.device_state("node2")["cr_space_locked"] is False
    lab.down()
    assert not (lab.home / "hcasim.sock").exists()
    r = lab.hcasim("status")
    assert r.returncode == 1 and "no lab is running" in r.stderr
    lab.up()
    # A daemon restart is a power cycle: keys come from flash, unlocks are forgotten.
    for host in ("node1", "node2"):
        s = lab.device_state(host)
        assert (s["key_on_flash"], s["cr_space_locked"], s["smp_firewall"]) == (True, True, True)


def test_unknown_host_and_command(lab):  # type: ignore[no-untyped-def]
    r = lab.run("nosuchhost", "true")
    assert r.returncode == 1
    hosts = "sm, node1, node2, node3, crypto1"
    assert r.stderr == f"hcasim: unknown host 'nosuchhost' (hosts: {hosts})\n"
    r = lab.hcasim("host", "reboot", "nosuchhost")
    assert r.returncode == 1 and r.stderr == "hcasim: unknown host 'nosuchhost'\n"
    r = lab.hcasim("driver", "show", "nosuchhost")
    assert r.returncode == 1 and r.stderr == "hcasim: unknown host 'nosuchhost'\n"
    r = lab.hcasim("driver", "show", "")
    assert r.returncode == 1 and r.stderr == "hcasim: host must be a non-empty string\n"
    r = lab.run("node1", "no-such-program-here")
    assert r.returncode == 1 and "no-such-program-here" in r.stderr


def test_exec_environment(lab):  # type: ignore[no-untyped-def]
    r = lab.run(
        "node2",
        sys.executable,
        "-c",
        "import os; print(os.environ['HCASIM_HOST'], os.environ['HCASIM_SOCKET'])",
    )
    assert r.stdout == f"node2 {lab.home / 'hcasim.sock'}\n"


def _raw(path: Path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _msg(obj: object) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def _replies(data: bytes) -> list[dict]:  # type: ignore[type-arg]
    out = []
    while data:
        (n,) = struct.unpack(">I", data[:4])
        out.append(json.loads(data[4 : 4 + n]))
        data = data[4 + n :]
    return out


@pytest.mark.parametrize(
    "payload, errno_",
    [
        (b"\xff\xff\xff\xff", 71),  # oversized length: EPROTO, connection closed
        (struct.pack(">I", 5) + b"nope!", 71),
        (_msg([1, 2]), 71),
        (_msg({"op": "frobnicate"}), 95),
        (_msg({"op": "open", "path": 7}), 22),
        (_msg({"op": "cr_read", "handle": "x", "addr": 0, "count": 1}), 9),
        (_msg({"op": "hello", "host": "nosuchhost"}), 2),
        (_msg({"op": "host_reboot"}), 22),
    ],
)
def test_malformed_control_messages(lab, payload, errno_):  # type: ignore[no-untyped-def]
    replies = _replies(_raw(lab.home / "hcasim.sock", payload))
    assert replies and replies[0]["ok"] is False and replies[0]["errno"] == errno_
    assert lab.hcasim("status").returncode == 0


def test_bad_cr_and_flash_requests_change_nothing(lab):  # type: ignore[no-untyped-def]
    sock = lab.home / "hcasim.sock"
    opened = [_msg({"op": "hello", "host": "node1"}), _msg({"op": "open", "path": CX3})]
    bad = [
        {"op": "cr_read", "handle": "node1/mt4099", "addr": 0xF0016, "count": 1},
        {"op": "cr_read", "handle": "node1/mt4099", "addr": 0xFFFFC, "count": 2},
        {"op": "cr_read", "handle": "node1/mt4099", "addr": 0, "count": 0},
        {"op": "cr_write", "handle": "node1/mt4099", "addr": 0x1000, "values": [1 << 32]},
        {"op": "cr_write", "handle": "node1/mt4099", "addr": 0x1000, "values": "x"},
        {"op": "flash_read", "handle": "node1/mt4099", "offset": 1 << 30, "length": 1},
        {"op": "flash_write", "handle": "node1/mt4099", "data": "AAAA"},  # no semaphore held
        {"op": "flash_write", "handle": "node1/mt4099", "data": "!!"},
    ]
    replies = _replies(_raw(sock, b"".join(opened + [_msg(b) for b in bad])))
    assert [r["ok"] for r in replies] == [True, True] + [False] * len(bad)
    q = lab.flint("node1", "-d", CX3, "-qq", "q")
    assert q.returncode == 0 and "FW Version:            2.42.5000" in q.stdout


def _flint_env(lab, host: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = dict(os.environ)
    env.update(HCASIM_SOCKET=str(lab.home / "hcasim.sock"), HCASIM_HOST=host)
    return env


def test_concurrent_flint_processes_are_serialised(lab):  # type: ignore[no-untyped-def]
    flint = [sys.executable, "-m", "hcasim.cli.flint", "-d", CX3]
    keys = [f"{i:x}" * 4 for i in range(1, 7)]
    procs = [
        subprocess.Popen(
            [*flint, "set_key", k],
            env=_flint_env(lab, "node1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for k in keys
    ]
    procs += [
        subprocess.Popen(
            [*flint, "-qq", "q"],
            env=_flint_env(lab, "node1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), p.stdout.read().decode()) for p in procs]  # type: ignore[union-attr]
    assert all(rc == 0 for rc, _ in results), results
    assert all(out.endswith("restart the driver.\n") for _, out in results[: len(keys)])
    # Each query read a whole image, whichever set_key came before it.
    assert all("\nHW Access Key:         " in out for _, out in results[len(keys) :])
    # Exactly one key won, and the image is whole.
    winners = []
    for k in keys:
        lab.reboot("node1")
        if lab.flint("node1", "-d", CX3, "hw_access", "enable", k).returncode == 0:
            winners.append(k)
    assert len(winners) == 1
    lab.reboot("node1")
    assert lab.flint("node1", "-d", CX3, "hw_access", "enable", winners[0]).returncode == 0
    v = lab.flint("node1", "-d", CX3, "v")
    assert v.returncode == 0 and "FW image verification succeeded" in v.stdout


def test_kill_9_during_burns_and_set_keys_never_tears_the_flash(tmp_path):  # type: ignore[no-untyped-def]
    from hcasim.devices import fs2
    from hcasim.devices.hw_key import verifier_from_tags
    from hcasim.lab.store import LabStore

    rng = random.Random(1234)
    with running_lab(tmp_path / "home") as lab:
        images = []
        for version in ("2.42.5100", "2.42.5200"):
            ini = tmp_path / "s.ini"
            ini.write_text("[HCA]\ncr_protection_en = 1\n")
            out = tmp_path / f"{version}.bin"
            assert (
                lab.hcasim(
                    "fw", "build", "--ini", str(ini), "--fw-version", version, "-o", str(out)
                ).returncode
                == 0
            )
            images.append(out)
        loop = (
            "import subprocess, sys\n"
            "imgs = sys.argv[1:]\n"
            "i = 0\n"
            "while True:\n"
            f"    subprocess.run([sys.executable, '-m', 'hcasim.cli.flint', '-d', '{CX3}', '-y',"
            " '-i', imgs[i % 2], 'b'], capture_output=True)\n"
            f"    subprocess.run([sys.executable, '-m', 'hcasim.cli.flint', '-d', '{CX3}',"
            " 'set_key', format(i + 1, 'x')], capture_output=True)\n"
            "    i += 1\n"
        )
        for _ in range(4):
            writer = subprocess.Popen(
                [sys.executable, "-c", loop, *map(str, images)], env=_flint_env(lab, "node1")
            )
            time.sleep(rng.uniform(0.5, 2.0))
            pid = daemon_pid(lab)
            os.kill(pid, signal.SIGKILL)
            writer.kill()
            writer.wait()
            # kill() returns before the daemon is dead: a commit it was making may still
            # land, so the store is read once the process is gone (a zombie has finished
            # every write)
            assert gone(pid), f"daemon {pid} outlived SIGKILL"
            store = LabStore(lab.home / "lab.db")
            try:
                image = store.flash_image("node1/mt4099")
            finally:
                store.close()
            info = fs2.parse_image(image)  # never torn: always a whole, valid image
            assert info.fw_version in ((2, 42, 5000), (2, 42, 5100), (2, 42, 5200))
            assert fs2.verify_image(image)
            # The restarted daemon cold-boots node1 from that image (a power cycle): locked
            # if it holds a key. The writer's first set_key of each round sets key 1.
            key = verifier_from_tags(
                info.hw_access_key or 0,
                fs2.image_info_tag(image, fs2.TAG_KEY_DIGEST_SEAL),
                info.guids[0].to_bytes(8, "big"),
            )
            time.sleep(0.2)
            lab.up()
            q = lab.flint("node1", "-d", CX3, "hw_access", "enable", "1")
            if key is None:
                assert (q.returncode, q.stdout, q.stderr) == (
                    0, "-I- HW access already enabled\n", "")
            elif key.matches(1):
                assert (q.returncode, q.stdout, q.stderr) == (0, ENABLED, "")
            else:
                assert (q.returncode, q.stdout, q.stderr) == (1, WRONG_KEY, "")
