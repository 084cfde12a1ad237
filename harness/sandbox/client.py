"""The harness side of a sandboxed worker: start it, feed it tasks, police its limits.

One warm worker per submission serves every model, so TensorFlow is imported once. A crash,
timeout or limit breach kills the worker's whole process group, fails only the task in
hand, and the next task starts a fresh worker.
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import FailureKind
from harness.sandbox import cgroup, protocol
from harness.sandbox.backends import (
    Launch,
    WorkerDirs,
    bwrap_command,
    process_command,
    resolve_backend,
)
from harness.sandbox.limits import (
    GIB,
    SandboxLimits,
    apply_rlimits,
    nproc_fallback,
    timeout_reason,
)
from harness.sandbox.output import OutputMonitor
from harness.sandbox.rootless import grant_read
from harness.sandbox.watch import (
    descendants,
    dir_bytes,
    memory_reason,
    sandbox_core,
    sandbox_memory_bytes,
    schedule_since,
    tree_schedule,
)

POLL_SECONDS = 0.2
#: Requests that run submission code for a result: their stderr is bracketed by marks, read
#: to the end mark before the reply is used, and whatever they leave running is killed.
MARKED_OPS = ("run", "poison")
#: Seconds to wait, after a reply, for the reader to reach the task's end mark on stderr.
END_MARK_WAIT = 2.0


class WorkerFailure(Exception):
    """The worker died, hung or broke a limit; ``reason`` says which, ``kind`` of which
    kind (stored with the task), ``stderr`` its tail."""

    def __init__(
        self, reason: str, stderr: str = "", kind: FailureKind = FailureKind.CRASH
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stderr = stderr
        self.kind = kind


def confine(
    limits: SandboxLimits, launch: Launch
) -> tuple[cgroup.WorkerGroup | None, Callable[[], None]]:
    """A fresh cgroup for a sandboxed process (None where none can be made) and the
    function its child runs between fork and exec: join the group (as root, while it still
    may), set the rlimits, RLIMIT_NPROC where the group is missing or refuses it (counted
    for the uid the process will run as), then drop root where ``launch`` says so."""
    group = cgroup.create(limits.max_processes, limits.threads, int(limits.memory_gb * GIB))
    nproc = nproc_fallback(limits.max_processes, launch.host_uid)

    def preexec() -> None:
        joined = group is not None and group.join()
        apply_rlimits(limits, None if joined else nproc)
        launch.enter()

    return group, preexec


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
        shared: tuple[tuple[str, Path], ...] = (),
    ) -> None:
        self.entry, self.params, self.limits = entry, params, limits
        self.backend = resolve_backend(backend)
        self.isolation = "bwrap" if self.backend == "bwrap" else "none"
        self.dirs = WorkerDirs(
            submission_dir.resolve(),
            workdir / "inbox",
            workdir / "scratch",
            tuple((name, host.resolve()) for name, host in shared),
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.monitor = OutputMonitor()
        self.inner: dict[str, str] = {}
        self.group: cgroup.WorkerGroup | None = None
        self.launch: Launch | None = None
        #: bwrap, the sandbox's pid 1 and the worker (the worker alone without bwrap)
        self.core: frozenset[int] = frozenset()
        #: wall seconds from sending the last request to its reply, timed by the harness
        self.last_seconds: float | None = None
        self.init: int | None = None  # the sandbox's pid 1, whose root shows its tmpfs

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        if self.alive:
            self.kill()
        self._drop_group()  # what a worker that died on its own left behind
        self._close_launch()
        for d in (self.dirs.inbox, self.dirs.scratch):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        if self.backend == "bwrap":
            launch = bwrap_command(self.dirs, self.limits.threads, 1 << 30, self.limits.shm_bytes)
        else:
            launch = process_command(self.dirs, self.limits.threads)
        self.launch, self.inner = launch, launch.inner
        self.monitor = OutputMonitor()
        self.replies = queue.Queue()
        self.core, self.init = frozenset(), None
        self.group, preexec = confine(self.limits, launch)
        try:
            self.proc = subprocess.Popen(
                launch.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=launch.env,
                cwd=self.dirs.scratch if self.backend != "bwrap" else "/",
                start_new_session=True,
                preexec_fn=preexec,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self._drop_group()
            self._close_launch()
            raise WorkerFailure(f"cannot start the worker: {exc}") from None
        for target in (self._read_replies, self._read_stderr, self._watch):
            threading.Thread(target=target, args=(self.proc,), daemon=True).start()
        self.core = self._find_core(self.proc)
        reply = self.request(
            {
                "op": "init",
                "submission_dir": self.inner["submission"],
                "entry": self.entry,
                "params": self.params,
            },
            self.limits.startup_seconds,
        )
        # Whatever importing the submission started is no part of the worker.
        if strays := self.reap():
            self.monitor.add_note(f"harness: killed {strays} process(es) the import left running")
        return reply

    def _find_core(self, proc: subprocess.Popen[bytes]) -> frozenset[int]:
        """The worker's own processes, taken before any submission code runs (the worker
        imports the submission when the init request comes): under bwrap, bwrap itself,
        the sandbox's pid 1 and the worker; else the worker alone. Any other process of its
        tree is a stray that :meth:`reap` kills. A worker that dies first leaves the init
        request to say why."""
        if self.backend != "bwrap":
            return frozenset({proc.pid})
        deadline = time.monotonic() + self.limits.startup_seconds
        while proc.poll() is None and time.monotonic() < deadline:
            core = sandbox_core(proc.pid)
            if core is not None:
                self.init = core[1]
                return frozenset(core)
            time.sleep(0.01)
        return frozenset({proc.pid})

    def _tree(self) -> set[int]:
        """Every process of the worker: its descendants, and its cgroup's members (which
        include processes that detached from it)."""
        if self.proc is None:
            return set()
        found = set(descendants(self.proc.pid))
        return found | (self.group.pids() if self.group else set())

    def reap(self) -> int:
        """Kill the processes a task left running (a daemon, a double fork, a child it
        forgot); how many there were."""
        strays = self._tree() - self.core
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.group is not None:
            self.group.kill(keep=self.core)
        _wait_gone(strays, timeout=2.0)
        return len(strays)

    def _drop_group(self) -> None:
        if self.group is not None:
            self.group.remove()
            self.group = None

    def _close_launch(self) -> None:
        if self.launch is not None:
            self.launch.close()
            self.launch = None

    @property
    def wipe_dirs(self) -> list[str]:
        """Folders the worker empties when it moves to the next model: its scratch, and
        /tmp and /dev/shm where they are the sandbox's own (never the host's, under
        `process`)."""
        own_tmpfs = ["/tmp", "/dev/shm"] if self.backend == "bwrap" else []
        return [self.inner["scratch"], *own_tmpfs]

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
        self._drop_group()  # kills whatever escaped the process group first
        self._close_launch()
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
            self._note_breach(f"protocol violation: {exc}", FailureKind.PROTOCOL)
            self.replies.put(None)

    def _read_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(65536):  # type: ignore[attr-defined]
            self.monitor.add_output(chunk)
            if self.monitor.output_bytes > self.limits.max_output_bytes:
                reason = f"output limit of {self.limits.max_output_bytes} bytes exceeded"
                self._breach(proc, reason, FailureKind.LIMIT)
                return

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        cap = self.limits.memory_gb * GIB
        tick = 0
        while proc.poll() is None:
            group = self.group
            if sandbox_memory_bytes(proc.pid, self.init) > cap or (group and group.oom_kills()):
                self._breach(proc, memory_reason(self.limits), FailureKind.MEMORY)
                return
            tick += 1
            if tick % 10 == 0 and dir_bytes(self.dirs.scratch) > self.limits.max_scratch_bytes:
                reason = f"scratch disk limit of {self.limits.max_scratch_bytes} bytes exceeded"
                self._breach(proc, reason, FailureKind.LIMIT)
                return
            time.sleep(POLL_SECONDS)

    def _note_breach(self, reason: str, kind: FailureKind) -> None:
        if self.monitor.breach is None:  # the first breach is the one that stopped it
            self.monitor.breach, self.monitor.breach_kind = reason, kind

    def _breach(self, proc: subprocess.Popen[bytes], reason: str, kind: FailureKind) -> None:
        self._note_breach(reason, kind)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    # -- requests --------------------------------------------------------------------------
    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request; the reply, or WorkerFailure (worker killed) on any breach."""
        if not self.alive:
            raise WorkerFailure("worker is not running", self.monitor.text())
        if message.get("op") in MARKED_OPS:
            message = {**message, "mark": secrets.token_hex(8), "wipe": self.wipe_dirs}
            self.monitor.start_task(message["mark"])
        if self.launch is not None and self.launch.host_uid is not None:
            grant_read(self.dirs.inbox)  # staged by the harness, read by the sandbox's uid
        before = tree_schedule(self.proc.pid)  # type: ignore[union-attr]
        sent = time.monotonic()
        try:
            protocol.send(self.proc.stdin, message)  # type: ignore[union-attr, arg-type]
        except (OSError, ValueError) as exc:
            self.kill()
            raise WorkerFailure(
                f"worker stopped reading requests ({exc})", self.monitor.text()
            ) from None
        try:
            reply = self.replies.get(timeout=timeout)
            # Measured here, never taken from the reply: the worker shares the submission's
            # process and could report any time it liked.
            self.last_seconds = time.monotonic() - sent
        except queue.Empty:
            ran, waited = schedule_since(before, tree_schedule(self.proc.pid))  # type: ignore[union-attr]
            self.kill()
            reason = timeout_reason(timeout, ran, waited)
            raise WorkerFailure(reason, self.monitor.text(), FailureKind.TIMEOUT) from None
        if reply is None:
            oom = bool(self.group and self.group.oom_kills())
            self.kill()
            if self.monitor.breach is not None:
                reason, kind = self.monitor.breach, self.monitor.breach_kind or FailureKind.CRASH
            elif oom:
                reason, kind = memory_reason(self.limits), FailureKind.MEMORY
            else:
                reason, kind = self._exit_reason()
            raise WorkerFailure(reason, self.monitor.text(), kind)
        if "mark" in message:
            # The worker wrote the task's end mark before its reply: let the reader reach it.
            self.monitor.ended.wait(END_MARK_WAIT)
            if strays := self.reap():
                self.monitor.add_note(f"harness: killed {strays} process(es) the task left running")
        return reply

    def _exit_reason(self) -> tuple[str, FailureKind]:
        assert self.proc is not None
        code = self.proc.poll()
        if code is None:
            return "worker closed its reply stream", FailureKind.CRASH
        if code < 0:
            name = signal.Signals(-code).name
            if name == "SIGXCPU":
                return f"worker killed by {name} (CPU-time limit)", FailureKind.CPU_TIME
            return f"worker killed by {name}", FailureKind.CRASH
        return f"worker exited with code {code}", FailureKind.CRASH


def _wait_gone(pids: set[int], *, timeout: float) -> None:
    """Wait until killed processes have left the process table (a SIGKILLed process stays
    visible until its parent reaps it), so the next task cannot see what the last left."""
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if Path(f"/proc/{pid}").exists()}
        if pids:
            time.sleep(0.02)
