"""A worker's stdout and stderr: counted against its output limit, and cut per task.

One warm worker serves many tasks, and what a task prints may still sit in the pipe when
its reply arrives, or come later from a thread it left running. So the worker brackets
each task's output with marks carrying a fresh random token the harness sent with the
request (``begin_mark`` / ``end_mark``), writing the end mark before it sends the reply;
the monitor keeps only what lies between the two marks of the current task. A submission
that forges a mark can only hide or cut its own output.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from harness.errors import FailureKind

STDERR_TAIL_BYTES = 16 << 10


def begin_mark(token: str) -> bytes:
    return f"\n\x1eharness-task-begin:{token}\x1e\n".encode()


def end_mark(token: str) -> bytes:
    return f"\n\x1eharness-task-end:{token}\x1e\n".encode()


@dataclass
class OutputMonitor:
    """Output accounting shared by the harness's reader and watchdog threads.

    Until the first task, everything is kept (a failed start shows its import errors);
    after :meth:`start_task`, only the bytes between that task's two marks."""

    tail: bytearray = field(default_factory=bytearray)
    output_bytes: int = 0
    breach: str | None = None  # the first limit the worker broke, as its error says it
    breach_kind: FailureKind | None = None  # and of which kind
    lock: threading.Lock = field(default_factory=threading.Lock)
    ended: threading.Event = field(default_factory=threading.Event)
    _begin: bytes = b""
    _end: bytes = b""
    _state: str = "in"  # "waiting" for the begin mark, "in" the task, "done" after its end
    _carry: bytes = b""  # the last bytes of a chunk, where a mark may have been cut in two

    def start_task(self, token: str) -> None:
        """Keep only what the task of ``token`` prints, from now on."""
        with self.lock:
            self.tail.clear()
            self._begin, self._end = begin_mark(token), end_mark(token)
            self._state, self._carry = "waiting", b""
            self.ended.clear()

    def add_output(self, chunk: bytes) -> None:
        with self.lock:
            self.output_bytes += len(chunk)
            data = self._carry + chunk
            self._carry = b""
            if self._state == "waiting":
                at = data.find(self._begin)
                if at < 0:
                    self._carry = data[-(len(self._begin) - 1) :]
                    return
                self._state, data = "in", data[at + len(self._begin) :]
            if self._state == "in":
                self._take(data)

    def _take(self, data: bytes) -> None:
        if self._end:
            at = data.find(self._end)
            if at >= 0:
                self._keep(data[:at])
                self._state = "done"
                self.ended.set()
                return
            hold = len(self._end) - 1
            data, self._carry = data[:-hold] if len(data) > hold else b"", data[-hold:]
        self._keep(data)

    def _keep(self, data: bytes) -> None:
        self.tail += data
        del self.tail[:-STDERR_TAIL_BYTES]

    def add_note(self, line: str) -> None:
        """A line of the harness's own in the task's record (not counted as output)."""
        with self.lock:
            self._keep(f"\n{line}\n".encode())

    def text(self) -> str:
        with self.lock:
            pending = self._carry if self._state == "in" else b""
            return (bytes(self.tail) + pending)[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
