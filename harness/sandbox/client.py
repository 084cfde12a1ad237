"""The harness side of a sandboxed worker: start it, feed it tasks, police its limits.

One warm worker per submission serves every model, so TensorFlow is imported once. A crash,
timeout or limit breach kills the worker's whole process group, fails only the task in
hand, and the next task starts a fresh worker.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.sandbox import protocol
from harness.sandbox.backends import WorkerDirs, bwrap_command, process_command, resolve_backend
from harness.sandbox.limits import SandboxLimits, apply_rlimits

STDERR_TAIL_BYTES = 16 << 10
POLL_SECONDS = 0.2
#: How the error of a task stopped at its time budget begins (reports count these).
WALL_CLOCK_EXCEEDED = "wall-clock limit of"


class WorkerFailure(Exception):
    """The worker died, hung or broke a limit; ``reason`` says which, ``stderr`` its tail."""

    def __init__(self, reason: str, stderr: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.stderr = stderr


@dataclass
class OutputMonitor:
    """Output and resource accounting shared with the watchdog threads."""

    tail: bytearray = field(default_factory=bytearray)
    output_bytes: int = 0
    breach: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_output(self, chunk: bytes) -> None:
        with self.lock:
            self.output_bytes += len(chunk)
            self.tail += chunk
            del self.tail[:-STDERR_TAIL_BYTES]

    def text(self) -> str:
        with self.lock:
            return self.tail.decode("utf-8", "replace")

    def start_task(self) -> None:
        """Forget the output so far: a warm worker serves many tasks, and each task's
        stored stderr must be its own (the output limit still counts everything)."""
        with self.lock:
            self.tail.clear()


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def tree_rss_bytes(root: int) -> int:
    """Resident memory of a process and all its descendants."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in _descendants(root):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def dir_bytes(path: Path) -> int:
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return total


class SandboxWorker:
    """One warm worker for one submission."""

    def __init__(
        self,
        submission_dir: Path,
        entry: str,
        params: dict[str, Any],
        limits: SandboxLimits,
        backend: str,
        workdir: Path,
    ) -> None:
        self.entry, self.params, self.limits = entry, params, limits
        self.backend = resolve_backend(backend)
        self.isolation = "bwrap" if self.backend == "bwrap" else "none"
        self.dirs = WorkerDirs(submission_dir.resolve(), workdir / "inbox", workdir / "scratch")
        self.proc: subprocess.Popen[bytes] | None = None
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.monitor = OutputMonitor()
        self.inner: dict[str, str] = {}
        self.info: dict[str, Any] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        for d in (self.dirs.inbox, self.dirs.scratch):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        if self.backend == "bwrap":
            argv, self.inner = bwrap_command(self.dirs, self.limits.threads, 1 << 30)
            env = None
        else:
            argv, self.inner, env = process_command(self.dirs, self.limits.threads)
        self.monitor = OutputMonitor()
        self.replies = queue.Queue()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env if env is not None else {},
                cwd=self.dirs.scratch,
                start_new_session=True,
                preexec_fn=lambda: apply_rlimits(self.limits),
            )
        except OSError as exc:
            raise WorkerFailure(f"cannot start the worker: {exc}") from None
        for target in (self._read_replies, self._read_stderr, self._watch):
            threading.Thread(target=target, args=(self.proc,), daemon=True).start()
        reply = self.request(
            {
                "op": "init",
                "submission_dir": self.inner["submission"],
                "entry": self.entry,
                "params": self.params,
            },
            self.limits.startup_seconds,
        )
        self.info = reply
        return reply

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.alive:
            try:
                protocol.send(self.proc.stdin, {"op": "bye"})  # type: ignore[arg-type]
                self.proc.wait(timeout=5)
            except (OSError, ValueError, subprocess.TimeoutExpired, protocol.ProtocolError):
                pass
        self.kill()

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass

    # -- I/O threads -----------------------------------------------------------------------
    def _read_replies(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            while True:
                message = protocol.receive(proc.stdout)  # type: ignore[arg-type]
                self.replies.put(message)
                if message is None:
                    return
        except (protocol.ProtocolError, OSError, ValueError) as exc:
            self.monitor.breach = self.monitor.breach or f"protocol violation: {exc}"
            self.replies.put(None)

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(65536):  # type: ignore[attr-defined]
            self.monitor.add_output(chunk)
            if self.monitor.output_bytes > self.limits.max_output_bytes:
                self._breach(proc, f"output limit of {self.limits.max_output_bytes} bytes exceeded")
                return

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        rss_cap = self.limits.memory_gb * (1 << 30)
        tick = 0
        while proc.poll() is None:
            if tree_rss_bytes(proc.pid) > rss_cap:
                self._breach(proc, f"memory limit of {self.limits.memory_gb:g} GiB exceeded")
                return
            tick += 1
            if tick % 10 == 0 and dir_bytes(self.dirs.scratch) > self.limits.max_scratch_bytes:
                self._breach(
                    proc, f"scratch disk limit of {self.limits.max_scratch_bytes} bytes exceeded"
                )
                return
            time.sleep(POLL_SECONDS)

    def _breach(self, proc: subprocess.Popen[bytes], reason: str) -> None:
        self.monitor.breach = self.monitor.breach or reason
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    # -- requests --------------------------------------------------------------------------
    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request; the reply, or WorkerFailure (worker killed) on any breach."""
        if not self.alive:
            raise WorkerFailure("worker is not running", self.monitor.text())
        try:
            protocol.send(self.proc.stdin, message)  # type: ignore[union-attr, arg-type]
        except (OSError, ValueError) as exc:
            self.kill()
            raise WorkerFailure(
                f"worker stopped reading requests ({exc})", self.monitor.text()
            ) from None
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise WorkerFailure(
                f"{WALL_CLOCK_EXCEEDED} {timeout:g} s exceeded", self.monitor.text()
            ) from None
        if reply is None:
            self.kill()
            raise WorkerFailure(self.monitor.breach or self._exit_reason(), self.monitor.text())
        return reply

    def _exit_reason(self) -> str:
        assert self.proc is not None
        code = self.proc.poll()
        if code is None:
            return "worker closed its reply stream"
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (CPU-time limit)" if name in ("SIGXCPU",) else ""
            return f"worker killed by {name}{hint}"
        return f"worker exited with code {code}"

    def outside(self, inner_path: str) -> Path:
        """Host path of a file the worker named inside its scratch dir."""
        rel = Path(inner_path)
        if rel.is_absolute():
            rel = rel.relative_to(self.inner["scratch"])
        return self.dirs.scratch / rel
