"""How a worker process is launched: inside bubblewrap, or as a plain (unisolated) process.

bwrap: new user, pid, net, ipc, uts and cgroup namespaces; uid 65534 with no capabilities;
only /usr, the dynamic-linker cache, the Python installation, the harness package and the
submission are visible, read-only; the per-task inbox (public bundle) is read-only; one
scratch dir is writable; /tmp is a private tmpfs; the environment is cleared.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import harness
from harness.errors import HarnessError

BACKENDS = ("auto", "bwrap", "process")
SANDBOX_UID = 65534


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


@functools.cache
def bwrap_available() -> bool:
    exe = shutil.which("bwrap")
    if not exe:
        return False
    probe = [
        exe,
        "--unshare-all",
        "--ro-bind",
        "/usr",
        "/usr",
        *_ro_binds(),
        "--proc",
        "/proc",
        "/usr/bin/true",
    ]
    try:
        return subprocess.run(probe, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


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


def resolve_backend(name: str) -> str:
    """The backend to use; asking for bwrap where it cannot run is a user error."""
    if name not in BACKENDS:
        raise HarnessError(
            f"unknown sandbox backend {name!r}", fix=f"use one of: {', '.join(BACKENDS)}"
        )
    if name == "auto":
        return "bwrap" if bwrap_available() else "process"
    if name == "bwrap" and not bwrap_available():
        raise HarnessError(
            "bubblewrap is not usable on this machine",
            fix="apt-get install bubblewrap (or --backend process for an "
            "unisolated, unofficial run)",
        )
    return name


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
    return [sys.executable, "-s", "-B", "-m", "harness.sandbox.worker"]


def _ro_binds() -> list[str]:
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
    seen: list[Path] = [Path("/usr")]
    for path in (Path(sys.base_prefix), Path(sys.prefix), _package_root()):
        path = path.resolve()
        if not any(path.is_relative_to(s) for s in seen):
            args += ["--ro-bind", str(path), str(path)]
            seen.append(path)
    return args


def bwrap_command(
    dirs: WorkerDirs, threads: int, tmp_bytes: int, command: list[str] | None = None
) -> tuple[list[str], dict]:
    """argv for a bwrap worker (or for ``command``, run the same way), and the inside
    paths of its folders."""
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
    ]
    if os.geteuid() == 0:
        argv += ["--cap-drop", "ALL"]
    # /tmp first: a later bind below /tmp (a venv there, say) must stay visible.
    argv += [
        "--size",
        str(tmp_bytes),
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        "/usr",
        "/usr",
        *_ro_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        *(["--ro-bind", str(dirs.submission), inner["submission"]] if dirs.submission else []),
        "--ro-bind",
        str(dirs.inbox),
        inner["inbox"],
        "--bind",
        str(dirs.scratch),
        inner["scratch"],
    ]
    for name, host in dirs.shared:
        inner[name] = f"/{name}"
        argv += ["--ro-bind", str(host), inner[name]]
    argv += ["--chdir", inner["scratch"], "--clearenv"]
    env = worker_env(inner["scratch"], str(_package_root().parent), threads)
    env.update(shared_env(inner, dirs))
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return argv + ["--", *(command or worker_argv())], inner


def process_command(
    dirs: WorkerDirs, threads: int, command: list[str] | None = None
) -> tuple[list[str], dict, dict[str, str]]:
    """argv, inside paths and environment for an unisolated worker (isolation = none)."""
    inner = {
        "submission": str(dirs.submission or ""),
        "inbox": str(dirs.inbox),
        "scratch": str(dirs.scratch),
        **{name: str(host) for name, host in dirs.shared},
    }
    env = worker_env(str(dirs.scratch), str(_package_root().parent), threads)
    env.update(shared_env(inner, dirs))
    return [*unshare_net_prefix(), *(command or worker_argv())], inner, env
