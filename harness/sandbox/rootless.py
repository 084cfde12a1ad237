"""Running a sandbox when the harness is root: bwrap started by root maps the sandbox's uid
to root outside its user namespace, so a harness running as root never starts it as root.

It starts bwrap as an unprivileged host uid (65534, or $HARNESS_SANDBOX_UID; 0 is refused),
and the sandbox's processes are that uid on the host. That uid cannot reach folders below a
0700 folder (``/root``, ``mkdtemp``'s), and bwrap resolves every bind's source path as the
uid it runs as, so before dropping root the launcher binds each folder onto a mount point in
a world-searchable staging folder, in a mount namespace of its own that no other process
sees (:class:`Stage`); bwrap binds from there. ``harness.sandbox.backends`` builds the
command lines; this module is the part that drops root.
"""

from __future__ import annotations

import ctypes
import functools
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from harness.errors import HarnessError

#: The host uid (and gid) a harness running as root starts bwrap as; never 0.
SANDBOX_UID_ENV = "HARNESS_SANDBOX_UID"
DEFAULT_HOST_UID = 65534
#: Folders that may hold the staging folders, first usable one wins: world-searchable.
STAGE_PARENTS = ("/tmp", "/var/tmp", "/dev/shm")
_CLONE_NEWNS = 0x00020000
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18


def host_uid() -> int | None:
    """The host uid a sandbox runs as when the harness is root ($HARNESS_SANDBOX_UID, by
    default 65534), or None when it is not (bwrap then maps the sandbox's uid to the
    harness's own uid, which is no more than the harness itself may do)."""
    if os.geteuid() != 0:
        return None
    raw = os.environ.get(SANDBOX_UID_ENV, "").strip() or str(DEFAULT_HOST_UID)
    try:
        uid = int(raw)
    except ValueError:
        raise HarnessError(
            f"{SANDBOX_UID_ENV}={raw!r} is not a numeric uid",
            fix=f"unset it (the sandbox then runs as uid {DEFAULT_HOST_UID}) or name a number",
        ) from None
    if uid <= 0:
        raise HarnessError(
            f"{SANDBOX_UID_ENV}={raw} would run hand-ins as root on this machine",
            fix=f"unset it (the sandbox then runs as uid {DEFAULT_HOST_UID}) or name an "
            "unprivileged uid",
        )
    return uid


@functools.cache
def _libc() -> ctypes.CDLL:
    """libc's unshare and mount, loaded before any fork (never in a child)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare.argtypes = [ctypes.c_int]
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    libc.mount.argtypes += [ctypes.c_ulong, ctypes.c_void_p]
    return libc


def _stage_parent() -> Path:
    """A folder every user may search, for the staging folders."""
    for name in STAGE_PARENTS:
        try:
            st = os.lstat(name)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_IXOTH:
            return Path(name)
    raise HarnessError(
        f"none of {', '.join(STAGE_PARENTS)} is a folder every user may search",
        fix="chmod 1777 /tmp",
    )


def sweep_stages(parent: Path) -> int:
    """Remove the staging folders a harness process that was killed left behind (empty
    mount points named for a process that no longer exists); how many there were."""
    removed = 0
    for folder in parent.glob("harness-bwrap-*-*"):
        try:
            owner = int(folder.name.split("-")[2])
            st = folder.lstat()
        except (IndexError, ValueError, OSError):
            continue
        # Another user's folder of that name (or a link) is none of ours to empty.
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        if not Path(f"/proc/{owner}").exists():
            _remove_stage(folder)
            removed += 1
    return removed


def _remove_stage(root: Path) -> None:
    """rmdir only, never a recursive delete: a mount point that somehow held a mount (in
    this namespace) stays instead of losing what is mounted on it."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            entry.rmdir()
        except OSError:
            pass
    try:
        root.rmdir()
    except OSError:
        pass


class Stage:
    """The folders a root harness's bwrap binds, made reachable by its unprivileged uid.

    In the parent: a fresh 0711 folder with one empty mount point per source. In the child,
    between fork and exec (:meth:`enter`, still root): a private mount namespace, each
    source bound onto its mount point there, then setgroups/setgid/setuid to ``uid``; the
    host's mounts never change. bwrap then binds from the mount points."""

    def __init__(self, uid: int) -> None:
        self.uid = uid
        self.libc = _libc()
        parent = _stage_parent()
        sweep_stages(parent)
        prefix = f"harness-bwrap-{os.getpid()}-"
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        os.chmod(self.root, 0o711)
        self.sources: list[bytes] = []

    def add(self, host: Path) -> str:
        """The path bwrap binds instead of the folder ``host``."""
        point = self.root / str(len(self.sources))
        point.mkdir(mode=0o700)
        self.sources.append(os.fsencode(host))
        return str(point)

    def enter(self) -> None:
        """In the child (as root): bind the sources in a namespace of its own, then drop to
        ``uid``. Any failure raises, and the sandbox does not start."""
        libc = self.libc
        if libc.unshare(_CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")
        # Nothing mounted below may propagate back to the host's namespace.
        if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            raise OSError(ctypes.get_errno(), "making / private failed")
        root = os.fsencode(self.root)
        for i, source in enumerate(self.sources):
            point = root + b"/" + str(i).encode()
            if libc.mount(source, point, None, _MS_BIND | _MS_REC, None) != 0:
                raise OSError(ctypes.get_errno(), f"binding {source!r} failed")
        os.setgroups([])
        os.setgid(self.uid)
        os.setuid(self.uid)
        if os.getuid() == 0 or os.geteuid() == 0:
            raise OSError("the sandbox's launcher is still root")

    def close(self) -> None:
        _remove_stage(self.root)


def grant_read(root: Path) -> None:
    """Let every user read ``root``'s tree (o+r on files, o+rx on folders) where it may
    not already: the sandbox's host uid is not the root harness's. Links are left alone;
    nothing is made writable."""
    for base, _, files in os.walk(root):
        _add_mode(base, stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            _add_mode(os.path.join(base, name), stat.S_IROTH)


def _add_mode(path: str, bits: int) -> None:
    try:
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & bits != bits:
            os.chmod(path, stat.S_IMODE(st.st_mode) | bits)
    except OSError:
        pass


def open_to_sandbox(scratch: Path, readable: Iterable[Path | None], uid: int) -> None:
    """Make a worker's folders usable by the sandbox's host uid ``uid``: its ``scratch``
    folder its own, the ``readable`` ones (inbox, submission, shared) readable."""
    os.chown(scratch, uid, uid)
    os.chmod(scratch, 0o700)
    for folder in readable:
        if folder is not None:
            grant_read(folder)
