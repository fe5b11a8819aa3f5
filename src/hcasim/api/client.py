"""Synchronous client for the lab daemon's control socket.

Every hcasim tool (``flint``, ``hcasim``, the Python API) talks to the daemon through
:class:`ControlClient`. One client is one session: semaphores it takes and device
contexts it opens end when it disconnects, as when a process holding a device file dies.
"""

from __future__ import annotations

# The C module under socket.py: socket.py adds conveniences this client does not use and,
# when imported, builds enums of every socket constant, which costs flint's start-up 3 ms.
import _socket
import binascii
import errno
import os

from hcasim.lab.protocol import HEADER, ProtocolError, body_length, decode_body, encode

TYPE_CHECKING = False  # mypy reads it as typing.TYPE_CHECKING; typing is not loaded
if TYPE_CHECKING:
    from typing import Any


class LabError(Exception):
    """The daemon refused a request; carries the errno a real client would see."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


class LabUnavailable(Exception):
    """No lab daemon answers on the socket."""


def socket_path_from_env() -> str | None:
    """Return the control socket named by the environment, if any."""
    path = os.environ.get("HCASIM_SOCKET")
    if path:
        return path
    home = os.environ.get("HCASIM_HOME") or os.path.join(os.getcwd(), ".hcasim")
    candidate = os.path.join(home, "hcasim.sock")
    return candidate if os.path.exists(candidate) else None


class ControlClient:
    """One session with the lab daemon."""

    def __init__(self, path: str, *, host: str | None = None, timeout: float = 60.0) -> None:
        self.path = path
        self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError as exc:
            self._sock.close()
            raise LabUnavailable(f"no lab daemon at {path}: {exc.strerror or exc}") from None
        if host is not None:
            self.call("hello", host=host)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one request and return the reply, raising LabError on refusal."""
        self.send(op, **args)
        return self.receive()

    def send(self, op: str, **args: Any) -> None:
        """Send one request without waiting for its reply (:meth:`receive` reads the
        replies in the order the requests went: the daemon runs a session's requests one
        after the other). Requests that do not depend on each other's replies can so
        share one round trip."""
        args["op"] = op
        try:
            request = encode(args)
        except ProtocolError as exc:  # too big for one message: refused before sending
            raise LabError(errno.EMSGSIZE, str(exc)) from None
        try:
            self._sock.sendall(request)
        except OSError as exc:
            raise LabUnavailable(f"lab daemon connection lost: {exc}") from None

    def receive(self) -> dict[str, Any]:
        """The reply to the oldest request not yet answered, raising LabError on refusal."""
        try:
            header = self._recv_exact(HEADER.size)
            reply = decode_body(self._recv_exact(body_length(header)))
        except OSError as exc:
            raise LabUnavailable(f"lab daemon connection lost: {exc}") from None
        except ProtocolError as exc:  # whatever answers on the socket is no lab daemon
            raise LabUnavailable(f"no lab daemon at {self.path}: {exc}") from None
        if not reply.get("ok"):
            raise LabError(int(reply.get("errno", 5)), str(reply.get("error", "error")))
        return reply

    def _recv_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self._sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ConnectionResetError("daemon closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """End the session."""
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def b64(data: bytes) -> str:
    """Encode bytes for a control message."""
    return binascii.b2a_base64(data, newline=False).decode()  # base64.b64encode


def unb64(text: str) -> bytes:
    """Decode bytes from a control message."""
    return binascii.a2b_base64(text)  # base64.b64decode: what it does for a str
