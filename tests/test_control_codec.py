"""The control protocol's message codec (hcasim.lab.protocol) against the json module: the
bytes ``encode`` writes are ``json.dumps(message, separators=(",", ":"))``, and
``decode_body`` gives what ``json.loads`` with the protocol's checks gives (the value, or
the same ProtocolError), for well-formed messages and for mutated ones."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcasim.lab.protocol import HEADER, MAX_DEPTH, ProtocolError, decode_body, encode

BRACKETS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def reference_decode(body: bytes) -> dict[str, Any]:
    """decode_body as it was written with json.loads and re alone."""
    depth = 0
    for token in BRACKETS.finditer(body):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise ProtocolError(f"malformed message: nested deeper than {MAX_DEPTH}")
        elif char in (b"]", b"}"):
            depth -= 1
    try:
        message = json.loads(body, parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed message: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    return message


def outcome(decode: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "value", decode(body)
    except ProtocolError as exc:
        return "refused", str(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
messages = st.dictionaries(st.text(), json_values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(message=messages)
def test_encode_writes_what_json_dumps_writes(message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    assert encode(message) == HEADER.pack(len(body)) + body


def test_encode_refuses_what_json_dumps_refuses() -> None:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    for bad in ({"a": object()}, {"a": b"bytes"}, {(1, 2): 0}, looped):
        with pytest.raises((TypeError, ValueError)) as ours:
            encode(bad)
        with pytest.raises((TypeError, ValueError)) as theirs:
            json.dumps(bad, separators=(",", ":"))
        assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


@settings(max_examples=300, deadline=None)
@given(message=messages, spacing=st.sampled_from([b"", b" ", b"\n", b"\t "]))
def test_decode_reads_what_json_loads_reads(message: dict[str, Any], spacing: bytes) -> None:
    body = spacing + json.dumps(message, separators=(",", ":")).encode() + spacing
    assert outcome(decode_body, body) == outcome(reference_decode, body)


@settings(max_examples=500, deadline=None)
@given(message=messages, data=st.data())
def test_decode_of_mutated_bodies_matches(message: dict[str, Any], data: st.DataObject) -> None:
    body = bytearray(json.dumps(message, separators=(",", ":")).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body)))
        body[at:at + data.draw(st.integers(0, 2))] = data.draw(st.binary(max_size=3))
    assert outcome(decode_body, bytes(body)) == outcome(reference_decode, bytes(body))


@pytest.mark.parametrize("body", [
    b'{"a":NaN}', b'{"a":-Infinity}', b"[1]", b"{", b"", b'{"a":1}x', b'{"a":"x\ny"}',
    b'{"a":' + b"9" * 5000 + b"}", b'{"a":"\xed\xa0\x80"}', b'\xef\xbb\xbf{"a":1}',
    b'{"a":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}",
    b'{"a":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}",
    b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", b'{"a":1,"a":2}', b'{\x00"a":1}',
    '{"é":"\u2028"}'.encode(), '{"a":"é"}'.encode("utf-16-le"),
])
def test_decode_of_edge_cases_matches(body: bytes) -> None:
    assert outcome(decode_body, body) == outcome(reference_decode, body)
