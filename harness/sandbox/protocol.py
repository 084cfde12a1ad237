"""Length-prefixed JSON messages over pipes (4-byte big-endian length, then UTF-8 JSON).

Arrays never travel in messages: they go through .npy files in the worker's scratch dir.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

MAX_MESSAGE_BYTES = 8 << 20


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed message."""


def send(stream: IO[bytes], message: dict[str, Any]) -> None:
    body = json.dumps(message, allow_nan=False).encode()
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    chunks = b""
    while len(chunks) < n:
        chunk = stream.read(n - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks


def receive(stream: IO[bytes]) -> dict[str, Any] | None:
    """The next message, or None at end of stream."""
    head = _read_exact(stream, 4)
    if head is None:
        return None
    (length,) = struct.unpack(">I", head)
    if length > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"announced message of {length} bytes exceeds {MAX_MESSAGE_BYTES}")
    body = _read_exact(stream, length)
    if body is None:
        raise ProtocolError("stream ended inside a message")
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"message is not JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("message is nested too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    return message
