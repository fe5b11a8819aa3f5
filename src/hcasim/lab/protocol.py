"""Control protocol between hcasim clients and the lab daemon.

A message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
Requests are objects with an ``op`` and its arguments; replies are ``{"ok": true, ...}`` or
``{"ok": false, "errno": N, "error": "text"}``. Binary payloads (flash blocks) travel as
base64 strings. The module is shared by the daemon and every client, so it imports only
the standard library.
"""

from __future__ import annotations

import json
import struct
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


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse the JSON body of one framed message."""
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
