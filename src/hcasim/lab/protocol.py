"""Control protocol between hcasim clients and the lab daemon.

A message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
Requests are objects with an ``op`` and its arguments; replies are ``{"ok": true, ...}`` or
``{"ok": false, "errno": N, "error": "text"}``. Binary payloads (flash blocks) travel as
base64 strings. The module is shared by the daemon and every client, so it imports only
the standard library.

Messages are written and read by the C half of :mod:`json` (``_json``, which ``json.dumps``
and ``json.loads`` use themselves) without importing :mod:`json`: that package imports
:mod:`re` and :mod:`enum`, 5 ms of every client's start-up, ``flint -qq q``'s included.
A body the plain reading does not take whole is read again by ``json.loads`` with the
checks below, which decides what it means or says what is wrong with it.
"""

from __future__ import annotations

import _json
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


def _not_serializable(value: object) -> object:
    # json.JSONEncoder.default's refusal, word for word
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def encode(message: dict[str, Any]) -> bytes:
    """Frame one control message for the wire: the bytes of ``json.dumps(message,
    separators=(",", ":"))``, from the C encoder ``json.dumps`` itself runs with those
    settings (ASCII only, circular references refused, NaN allowed; CPython 3.11
    ``Lib/json/encoder.py``, ``JSONEncoder.iterencode``)."""
    encoder = _json.make_encoder({}, _not_serializable, _json.encode_basestring_ascii, None,
                                 ":", ",", False, False, True)
    body = "".join(encoder(message, 0)).encode()
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE}")
    return HEADER.pack(len(body)) + body


#: Deepest nesting of arrays and objects a message may have (requests are flat records
#: with a few small objects inside; anything deeper is malformed).
MAX_DEPTH = 16


_BRACKETS = rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]'  # a string, or a bracket


def _no_constant(name: str) -> Any:
    # JSON has no NaN or Infinity; Python's parser accepts them unless told otherwise.
    raise ValueError(f"{name} is not a JSON number")


class _StrictJson:
    """What ``json.loads(body, parse_constant=_no_constant)`` gives its C scanner (CPython 3.11
    ``Lib/json/decoder.py``, ``JSONDecoder.__init__``; ``Modules/_json.c``, ``scanner_new``)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constant)


# typeshed types the context as a scanner; the C code reads only the attributes above
_scan = _json.make_scanner(_StrictJson)  # type: ignore[arg-type]


def _nesting(value: Any) -> int:
    """How deep arrays and objects nest in a parsed message (what the bracket count of its
    text gives)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, level = pending.pop()
        deepest = max(deepest, level)
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                pending.append((child, level + 1))
    return deepest


def decode_body(body: bytes) -> dict[str, Any]:
    """Parse the JSON body of one framed message: strict JSON (no NaN or Infinity), nested at
    most :data:`MAX_DEPTH` deep, an object at the top.

    A body that is an object in strict UTF-8 from its first byte to its last is read by
    json's C scanner alone; any other (whitespace around it, another encoding json accepts,
    or something malformed) goes through :func:`_decode_checked`.  Both give the same value
    for every body the plain reading takes.
    """
    if body[:1] == b"{":
        try:
            text = body.decode()
            message, end = _scan(text, 0)
            plain = end == len(text) and _nesting(message) <= MAX_DEPTH
        except Exception:  # whatever it is, the checked reading says what
            plain = False
        if plain:
            assert isinstance(message, dict)
            return message
    return _decode_checked(body)


def _decode_checked(body: bytes) -> dict[str, Any]:
    """:func:`decode_body` for the bodies its plain reading does not take, with json and re."""
    import json
    import re

    depth = 0
    # The nesting is checked before parsing, since the parser would recurse: strings are
    # skipped whole (the unrolled pattern runs in C, even over a 24 MiB flash block).
    for token in re.finditer(_BRACKETS, body, re.DOTALL):
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
