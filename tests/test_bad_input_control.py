"""Bad input on the control socket, by class: every operation the daemon serves, with fields
of every wrong type, number domain, nesting, size and name-as-path, gets a reply (never an
exception out of the endpoint), and a refused request changes nothing and writes nothing.

The daemon's services run in-process here (the same :func:`start_services` the daemon
runs), so a request that escaped as an exception fails the test with its own traceback, and
a few hundred requests take a second. The socket itself (early disconnects, deep nesting) is
tried against a real daemon at the end.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcasim.lab.control import Session
from hcasim.lab.crypto_protocol import OPERATIONS
from hcasim.lab.daemon import Services, open_lab, start_services
from hcasim.lab.home import LabHome
from hcasim.lab.lab import Lab
from hcasim.lab.protocol import MAX_DEPTH, ProtocolError, decode_body, encode
from hcasim.testing import LabHandle

CX3 = "/dev/mst/mt4099_pci_cr0"
HOSTS = ("sm", "node1", "node2", "node3", "crypto1")
#: Every request field any operation reads (the crypto ones included).
FIELDS = (
    "host", "path", "handle", "addr", "count", "values", "offset", "length", "data",
    "options", "timeout", "device", "register_id", "method", "crypto", "direction",
    "dek", "mkey", "key_size", "has_keytag", "key_purpose", "pd", "opaque", "key",
    "comp_mask", "crypto_login", "credential", "credential_id", "import_kek_id", "attr",
    "state", "login", "create_flags", "max_entries",
)
#: The fields each operation reads, so that most requests aim at what the handler checks.
OP_FIELDS: dict[str, tuple[str, ...]] = {
    "hello": ("host",), "open": ("path",), "cr_read": ("handle", "addr", "count"),
    "cr_write": ("handle", "addr", "values"), "flash_info": ("handle",),
    "flash_read": ("handle", "offset", "length"), "flash_write": ("handle", "data"),
    "host_reboot": ("host",), "driver_restart": ("host",), "driver_show": ("host",),
    "sm_start": ("host", "options", "timeout"), "mlx5_open": ("device",),
    "fault_link": ("node", "port", "state"),
    "fault_port": ("node", "port", "symbol", "rcv_errors", "drop"),
    "fault_node": ("node", "answering"),
    "mlx5_reg": ("device", "register_id", "method", "data"),
    "mlx5_dek_create": ("key_size", "has_keytag", "key_purpose", "pd", "opaque", "key",
                        "comp_mask", "crypto_login"),
    **{op.control_op: tuple(a.field for a in op.args if a.field is not None)
       for op in OPERATIONS.values() if op.name != "dek_create"},
}


class InProcessDaemon:
    """The daemon's services on an event loop of the test's own."""

    def __init__(self, home: LabHome) -> None:
        home.ensure()
        self.home = home
        self.loop = asyncio.new_event_loop()
        self.lab: Lab = open_lab(home, None, None)
        self.services: Services = self.loop.run_until_complete(
            start_services(self.lab, home, on_shutdown=lambda: None)
        )

    def request(self, session: Session, message: dict[str, Any]) -> dict[str, Any]:
        """One request as the wire carries it: encoded, decoded, dispatched."""
        try:
            body = json.dumps(message).encode()
            request = decode_body(body)
        except ProtocolError as exc:
            return {"ok": False, "errno": errno.EPROTO, "error": str(exc)}
        reply = self.services.control.dispatch(session, request)
        if "pending" in reply:
            pending = reply["pending"]
            if request.get("op") == "sm_start":
                # Arguments all accepted: the real OpenSM would start now; not in a fuzz.
                pending.close()
                return {"ok": True}
            reply = self.loop.run_until_complete(self.services.control._finish(pending))
        json.dumps(reply)  # a reply is always JSON
        return reply

    def state(self) -> Any:
        """Everything a refused request must leave as it was."""
        devices = {}
        for ident, device in self.lab.devices.items():
            firmware: Any = device.firmware
            flash = getattr(firmware, "flash", None)
            devices[ident] = (
                json.dumps(self.lab.device_status(device), sort_keys=True),
                None if flash is None else bytes(flash.contents),
                list(getattr(firmware, "_hcr", [])),
            )
        store = self.lab.store
        fabric = [(port.ref, port.state, port.phys_state, port.link_failed,
                   None if port.fault is None else (port.fault.symbol_rate,
                                                    port.fault.rcv_error_rate,
                                                    port.fault.drop_rate), node.silent)
                  for node in self.services.ibsim.subnet for port in node.ports]
        return (devices, store.flash_images(),
                json.dumps(store.all_nv_objects(), sort_keys=True), fabric)

    def close(self) -> None:
        """Stop the services."""
        self.services.stop()
        self.lab.store.close()
        self.loop.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessDaemon]:
    root = tmp_path_factory.mktemp("ctl")
    running = InProcessDaemon(LabHome(root / "home"))
    yield running
    running.close()


def _outside(daemon: InProcessDaemon) -> set[str]:
    root = daemon.home.path.parent
    return {str(p) for p in root.rglob("*") if daemon.home.path not in p.parents
            and p != daemon.home.path}


# Field values by class of bad input; each class also mixes in right values (real hosts,
# paths, handles, addresses) so that requests get past the first check to the next.
_right = st.sampled_from(
    [*HOSTS, CX3, "/dev/mst/mt4099_pciconf0", "/dev/mst/mt4103_pci_cr0",
     "/dev/mst/mt4125_pci_cr0", "node1/mt4099", "node3/mt4103", "crypto1/mt4125", "mlx5_0",
     0, 1, 4, 0xF0016, 0xF03A0, 0xF03BC, 0x80780, 0xC002, 0xC004, 0xC005, "AAAA",
     base64.b64encode(b"\0" * 48).decode(), [0], [1, 2], True, False]
)
#: Right values of the fields whose right values are few.
_RIGHT: dict[str, st.SearchStrategy[Any]] = {
    "host": st.sampled_from(HOSTS),
    "path": st.sampled_from([CX3, "/dev/mst/mt4103_pci_cr0", "/dev/mst/mt4125_pci_cr0"]),
    "handle": st.sampled_from(["node1/mt4099", "node3/mt4103", "sm/mt4099", "crypto1/mt4125"]),
    "device": st.just("mlx5_0"),
    "register_id": st.sampled_from([0xC002, 0xC004, 0xC005]),
    "method": st.sampled_from([0, 1]),
    "addr": st.sampled_from([0xF0016, 0xF03A0, 0xF03BC, 0x80780, 0x1000]),
    "count": st.integers(1, 4),
    "offset": st.integers(0, 64),
    "length": st.integers(0, 64),
    "values": st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=2),
    "node": st.sampled_from(["sw1", "node1", "crypto1"]),
    "port": st.integers(0, 6),
    "state": st.sampled_from(["down", "up"]),
    "symbol": st.integers(0, 100),
    "rcv_errors": st.integers(0, 100),
    "drop": st.integers(0, 100),
    "answering": st.booleans(),
}
_CLASSES: dict[str, st.SearchStrategy[Any]] = {
    # wrong JSON types for every field
    "type": st.one_of(st.none(), st.booleans(), st.text(max_size=6),
                      st.lists(st.integers(), max_size=3),
                      st.dictionaries(st.sampled_from(FIELDS), st.integers(), max_size=3),
                      st.lists(st.sampled_from([1.0, "1", None, True, [1], {}]), min_size=1,
                               max_size=3)),
    # numbers outside every domain: huge, negative, fractional, integral floats, NaN and
    # infinities (not JSON: refused as malformed), booleans as numbers
    "number": st.one_of(st.integers(min_value=-(1 << 70), max_value=1 << 70),
                        st.sampled_from([-1, 1 << 32, 1 << 64, 4097, 0xFFFFFFFF, 1e308, -0.0,
                                         1.0, 0.5, float("nan"), float("inf"), True]),
                        st.floats(), st.lists(st.floats(allow_nan=False), min_size=1,
                                              max_size=3)),
    # nesting: values deeper than the protocol allows, or just within it
    "nesting": st.integers(1, 3 * MAX_DEPTH).map(lambda d: _nested(d)),
    # names like paths where a name is expected
    "name-as-path": st.sampled_from(["../../x", "..", ".", "/", "sm/../../x", "/etc/passwd",
                                     "node1/../node2", "opensm-sm", "a\x00b", "~", "-V",
                                     "/dev/mst/../mst/mt4099_pci_cr0", "mlx5_0/../x"]),
    # sizes: long strings and lists, base64 of more than any register or flash holds
    "size": st.one_of(st.integers(0, 200_000).map(lambda n: "A" * n),
                      st.integers(4000, 5000).map(lambda n: [0] * n),
                      st.integers(300, 2000).map(lambda n: ["-V"] * n),
                      st.integers(1 << 12, 1 << 14).map(
                          lambda n: base64.b64encode(b"\0" * n).decode())),
    # text that is not what it seems: lone surrogates, NUL, control characters, non-ASCII
    "encoding": st.one_of(st.text(max_size=8), st.sampled_from(["\ud800", "\udcff", "\x00",
                                                                "\u202e", "\ufeffsm", "ｓｍ"])),
}


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


@st.composite
def _requests(draw: st.DrawFn, ops: list[str], bad: st.SearchStrategy[Any],
              handle: str | None) -> dict[str, Any]:
    op = draw(st.sampled_from(ops))
    request: dict[str, Any] = {"op": op}
    own = OP_FIELDS.get(op, ())
    names = draw(st.lists(st.sampled_from(own), unique=True)) if own else []
    names += draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True))
    for name in names:
        right = st.just(handle) if name == "handle" and handle else _RIGHT.get(name, _right)
        request[name] = draw(st.one_of(bad, right))
    return request


@pytest.mark.parametrize("klass", sorted(_CLASSES))
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_operation_answers_and_a_refusal_changes_nothing(
    daemon: InProcessDaemon, klass: str, data: st.DataObject
) -> None:
    ops = sorted(op for op in daemon.services.control.handlers if op != "shutdown")
    session = Session()
    try:
        # Most sessions are bound to a host with its device open, so requests reach the
        # checks behind hello and open.
        handle = None
        if data.draw(st.integers(0, 3)):
            host = data.draw(st.sampled_from(HOSTS))
            assert daemon.request(session, {"op": "hello", "host": host})["ok"]
            path = {"node3": "/dev/mst/mt4103_pci_cr0",
                    "crypto1": "/dev/mst/mt4125_pci_cr0"}.get(host, CX3)
            handle = daemon.request(session, {"op": "open", "path": path}).get("handle")
            if host == "crypto1":
                daemon.request(session, {"op": "mlx5_open", "device": "mlx5_0"})
        before_files = _outside(daemon)
        requests = st.lists(_requests(ops, _CLASSES[klass], handle), min_size=1, max_size=4)
        for request in data.draw(requests):
            if request["op"] in ("host_reboot", "driver_restart"):
                request["host"] = "nosuchhost"  # legitimate events change state
            before = daemon.state()
            reply = daemon.request(session, request)
            assert isinstance(reply.get("ok"), bool), reply
            if not reply["ok"]:
                assert isinstance(reply["errno"], int) and isinstance(reply["error"], str)
                assert "\n" not in reply["error"]
                assert daemon.state() == before, request
        assert _outside(daemon) == before_files
    finally:
        daemon.services.control.end_session(session)


def test_exec_register_without_a_peer_process_is_refused(daemon: InProcessDaemon) -> None:
    # An in-process session has no process the kernel names: it once tripped an assertion.
    before = daemon.state()
    reply = daemon.request(Session(), {"op": "exec_register", "host": "sm"})
    assert (reply["ok"], reply["errno"]) == (False, errno.EPERM)
    assert reply["error"] == ("exec_register: the session has no peer process to register "
                              "(only a control socket peer has)")
    assert daemon.state() == before


def test_cr_write_takes_integers_only(daemon: InProcessDaemon) -> None:
    # A float once went into CR-space and failed a later in-band read.
    session = Session()
    daemon.request(session, {"op": "hello", "host": "node1"})
    daemon.request(session, {"op": "open", "path": CX3})
    before = daemon.state()
    for values in ([1.0], [1.5], [True], [None], ["1"], [1 << 32], [-1], [[1]], []):
        reply = daemon.request(
            session, {"op": "cr_write", "handle": "node1/mt4099", "addr": 0x1000, "values": values}
        )
        assert reply == {
            "ok": False, "errno": errno.EINVAL,
            "error": "values must be a list of 1 to 4096 integers in [0, 4294967295]",
        }
    assert daemon.state() == before
    daemon.services.control.end_session(session)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"timeout": float("nan")}, None),  # NaN never reaches a handler: not JSON
        ({"timeout": 0}, "timeout must be 0 < seconds <= 3600"),
        ({"timeout": True}, "timeout must be 0 < seconds <= 3600"),
        ({"timeout": 1e308}, "timeout must be 0 < seconds <= 3600"),
        ({"host": ""}, "host must be a non-empty string"),
        ({"host": ["sm"]}, "host must be a non-empty string"),
        ({"options": ["-V\x00x"]}, "options must be a list of at most 256 strings without NUL"),
        ({"options": "-V"}, "options must be a list of at most 256 strings without NUL"),
        ({"host": "../../x"}, "unknown host '../../x'"),
    ],
)
def test_sm_start_refusals(daemon: InProcessDaemon, args: dict[str, Any],
                           message: str | None) -> None:
    reply = daemon.request(Session(), {"op": "sm_start", **args})
    if message is None:
        assert reply["ok"] is False and reply["errno"] == errno.EPROTO
        assert reply["error"] == "malformed message: NaN is not a JSON number"
    else:
        assert reply["ok"] is False and reply["error"] == message
    assert not any(p.name.startswith("opensm-") for p in daemon.home.path.iterdir())


def test_sm_start_never_leaves_the_home_for_a_stored_host_named_like_a_path(
    daemon: InProcessDaemon,
) -> None:
    # A lab stored before host names were checked: the SM service refuses on its own.
    from hcasim.lab.lab import Host

    daemon.lab.hosts["../../x"] = Host("../../x")
    try:
        reply = daemon.request(Session(), {"op": "sm_start", "host": "../../x"})
    finally:
        del daemon.lab.hosts["../../x"]
    assert reply == {"ok": False, "errno": errno.EINVAL,
                     "error": "host '../../x' cannot name a directory"}


# --- the socket itself ---------------------------------------------------------------------


def _raw(sock_path: Path, payload: bytes, *, read: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(str(sock_path))
        s.sendall(payload)
        if not read:
            return b""
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _replies(data: bytes) -> list[dict[str, Any]]:
    out = []
    while data:
        (n,) = struct.unpack(">I", data[:4])
        out.append(json.loads(data[4 : 4 + n]))
        data = data[4 + n :]
    return out


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


@settings(max_examples=12, deadline=None)
@given(depth=st.integers(min_value=MAX_DEPTH + 1, max_value=200_000),
       bracket=st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_refused_with_eproto(
    lab_for_socket: LabHandle, depth: int, bracket: str
) -> None:
    body = ('{"op":"ping","x":' + bracket * depth).encode()
    replies = _replies(_raw(lab_for_socket.home / "hcasim.sock", _frame(body)))
    assert replies == [{"ok": False, "errno": errno.EPROTO,
                        "error": f"malformed message: nested deeper than {MAX_DEPTH}"}]


@pytest.fixture(scope="module")
def lab_for_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    from hcasim.testing import running_lab

    with running_lab(tmp_path_factory.mktemp("sock") / "home") as lab:
        yield lab


def test_early_disconnects_and_bad_json_leave_no_traceback(lab_for_socket: LabHandle) -> None:
    sock = lab_for_socket.home / "hcasim.sock"
    big_status = encode({"op": "status"})
    flash_read = b"".join(
        encode(m) for m in (
            {"op": "hello", "host": "node1"}, {"op": "open", "path": CX3},
            {"op": "flash_read", "handle": "node1/mt4099", "offset": 0, "length": 1 << 24},
        )
    )
    for payload in (
        big_status * 200,  # disconnect with replies unread
        flash_read,  # a 16 MiB reply to a client that is gone
        big_status[:3],  # half a header
        _frame(b'{"op":"ping"')[:-2],  # half a body
        _frame(b'{"op":"cr_read","addr":NaN}'),
        _frame(b'{"op":"ping","n":' + b"9" * 5000 + b"}"),
        _frame(b'{"op":"ping","s":"\\ud800"}'),
        _frame(b"\xff\xfe"),
    ):
        _raw(sock, payload, read=False)
    for payload, error in (
        (_frame(b'{"op":"cr_read","addr":NaN}'), "malformed message: NaN is not a JSON number"),
        (_frame(b'{"op":"ping","a":-Infinity}'),
         "malformed message: -Infinity is not a JSON number"),
    ):
        assert _replies(_raw(sock, payload)) == [
            {"ok": False, "errno": errno.EPROTO, "error": error}
        ]
    assert lab_for_socket.hcasim("status").returncode == 0
    log = (lab_for_socket.home / "daemon.log").read_text(errors="replace")
    assert "Traceback" not in log
    assert "Exception" not in log and "exception" not in log

