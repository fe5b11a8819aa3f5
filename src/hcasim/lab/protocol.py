"""Control protocol between hcasim clients and the lab daemon.

A message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
Requests are objects with an ``op`` and its arguments; replies are ``{"ok": true, ...}`` or
``{"ok": false, "errno": N, "error": "text"}``. Binary payloads (flash blocks) travel as
base64 strings. The module is shared by the daemon and every client, so it imports only
the standard library.
"""

from __future__ import annotations

import json
import re
import struct

TYPE_CHECKING = False  # mypy reads it as typing.TYPE_CHECKING; typing is not loaded
if TYPE_CHECKING:
    from typing import Any

HEADER = struct.Struct(">I")
#: Largest message either side accepts: a whole 16 MiB flash in base64 plus slack.
MAX_MESSAGE = 24 * 1024 * 1024


class ProtocolError(Exception):
    """A peer sent something that is not a well-formed control message."""


class ControlError(Exception):
    """The daemon refused an operation (unknown host, bad argument, busy); carries the errno
    the client reports. Raised before anything changed."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err


def encode(message: dict[str, Any]) -> bytes:
    """Frame one control message for the wire."""
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE}")
    return HEADER.pack(len(body)) + body


#: Deepest nesting of arrays and objects a message may have (requests are flat records
#: with a few small objects inside; anything deeper is malformed).
MAX_DEPTH = 16


_BRACKETS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _no_constant(name: str) -> Any:
    # JSON has no NaN or Infinity; Python's parser accepts them unless told otherwise.
    raise ValueError(f"{name} is not a JSON number")


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse the JSON body of one framed message: strict JSON (no NaN or Infinity), nested at
    most :data:`MAX_DEPTH` deep, an object at the top."""
    depth = 0
    # The nesting is checked before parsing, since the parser would recurse: strings are
    # skipped whole (the unrolled pattern runs in C, even over a 24 MiB flash block).
    for token in _BRACKETS.finditer(body):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise ProtocolError(f"malformed message: nested deeper than {MAX_DEPTH}")
        elif char in (b"]", b"}"):
            depth -= 1
    try:
        message = json.loads(body, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, NaN/Infinity and integers of more digits than
        # int() converts
        raise ProtocolError(f"malformed message: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    return message


def body_length(header: bytes) -> int:
    """Return the body length announced by a 4-byte header, refusing oversized ones."""
    (length,) = HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ProtocolError(f"announced message of {length} bytes exceeds {MAX_MESSAGE}")
    return int(length)
