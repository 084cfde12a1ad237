"""The sandbox's message framing, on fabricated byte streams (no worker is started)."""

from __future__ import annotations

import io
import json
import os
import struct
import threading

import pytest

from harness.sandbox import protocol
from harness.sandbox.protocol import ProtocolError, receive, send


class Trickle(io.RawIOBase):
    """A pipe that hands out at most ``step`` bytes per read, as a real pipe may."""

    def __init__(self, data: bytes, step: int = 1) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.step if n < 0 else min(n, self.step)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def test_a_message_is_a_big_endian_length_then_utf8_json():
    out = io.BytesIO()
    send(out, {"op": "detect", "n": 3, "name": "é"})
    raw = out.getvalue()
    (length,) = struct.unpack(">I", raw[:4])
    assert length == len(raw) - 4
    assert raw[4:].decode() == '{"op": "detect", "n": 3, "name": "\\u00e9"}'


def test_messages_round_trip_in_order_then_none_at_the_end():
    messages = [{"op": "hello"}, {"nested": {"a": [1, 2.5, None, True]}}, {}]
    out = io.BytesIO()
    for m in messages:
        send(out, m)
    stream = io.BytesIO(out.getvalue())
    assert [receive(stream) for _ in messages] == messages
    assert receive(stream) is None
    assert receive(stream) is None  # and stays at the end


def test_short_reads_are_reassembled():
    out = io.BytesIO()
    send(out, {"op": "predict", "path": "x" * 300})
    send(out, {"op": "bye"})
    for step in (1, 3, 7):
        stream = Trickle(out.getvalue(), step)
        assert receive(stream) == {"op": "predict", "path": "x" * 300}
        assert receive(stream) == {"op": "bye"}
        assert receive(stream) is None


def test_messages_cross_a_real_pipe():
    read_fd, write_fd = os.pipe()
    big = {"blob": "y" * 200_000}  # larger than a pipe's buffer: the reader must loop

    def writer() -> None:
        with os.fdopen(write_fd, "wb") as w:
            send(w, big)
            send(w, {"op": "done"})

    thread = threading.Thread(target=writer)
    thread.start()
    with os.fdopen(read_fd, "rb") as r:
        assert receive(r) == big
        assert receive(r) == {"op": "done"}
        assert receive(r) is None
    thread.join()


def test_a_stream_that_ends_inside_a_body_is_an_error():
    raw = frame(b'{"op": "detect"}')
    with pytest.raises(ProtocolError, match="ended inside a message"):
        receive(io.BytesIO(raw[:-3]))


def test_an_oversized_announcement_is_refused_before_reading_the_body():
    stream = io.BytesIO(struct.pack(">I", protocol.MAX_MESSAGE_BYTES + 1) + b"{}")
    with pytest.raises(ProtocolError, match="exceeds"):
        receive(stream)
    assert stream.tell() == 4  # the body was never read


def test_an_oversized_message_is_never_sent(monkeypatch):
    fits = {"a": "b" * 20}
    limit = len(json.dumps(fits))
    monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", limit)
    out = io.BytesIO()
    send(out, fits)  # exactly at the limit
    with pytest.raises(ProtocolError, match=f"exceeds {limit}"):
        send(out, {"a": "b" * 21})
    assert len(out.getvalue()) == 4 + limit  # nothing of the refused message was written
    assert receive(io.BytesIO(out.getvalue())) == fits


@pytest.mark.parametrize(
    "body, says",
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b"null", "not a JSON object"),
    ],
)
def test_malformed_bodies_are_protocol_errors(body, says):
    with pytest.raises(ProtocolError, match=says):
        receive(io.BytesIO(frame(body)))


def test_nan_and_inf_never_travel():
    out = io.BytesIO()
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            send(out, {"score": bad})
    assert out.getvalue() == b""


def _feed(monitor, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        monitor.add_output(data[i : i + step])


@pytest.mark.parametrize("step", [1, 7, 64, 1 << 20])
def test_a_task_stderr_tail_holds_that_task_alone(step):
    from harness.sandbox.output import OutputMonitor, begin_mark, end_mark

    monitor = OutputMonitor()
    _feed(monitor, b"importing...\n", step)
    assert monitor.text() == "importing...\n"  # before any task: everything (a failed start)
    monitor.start_task("t2")
    # Late output of the previous task, still in the pipe when task 2 began; then task 2's
    # own; then what a thread it left running printed after its end mark.
    stream = b"model-1: secret of the previous task\n" + begin_mark("t2")
    stream += b"model-2: its own output\n" + end_mark("t2") + b"model-2: a stray thread\n"
    _feed(monitor, stream, step)
    assert monitor.text() == "model-2: its own output\n"
    assert monitor.ended.is_set()
    assert monitor.output_bytes == len(b"importing...\n") + len(stream)  # all bytes count


def test_a_task_tail_survives_output_longer_than_it_and_forged_marks():
    from harness.sandbox.output import STDERR_TAIL_BYTES, OutputMonitor, begin_mark, end_mark

    monitor = OutputMonitor()
    monitor.start_task("real")
    monitor.add_output(begin_mark("forged") + begin_mark("real"))
    monitor.add_output(b"x" * (3 * STDERR_TAIL_BYTES) + b"last line\n")
    assert not monitor.ended.is_set()
    text = monitor.text()
    assert len(text) == STDERR_TAIL_BYTES and text.endswith("last line\n")
    monitor.add_output(end_mark("forged") + b"more\n" + end_mark("real"))
    assert monitor.ended.is_set() and monitor.text().endswith("more\n")
    assert "harness-task" in monitor.text()  # a forged mark is just the task's own output
