"""Zoo objects and submission folders as bytes, for cluster workers that share no disk.

A worker that shares ``HARNESS_HOME`` with the coordinator finds every object by its
content hash and needs none of this. One that does not gets what a job needs from the
coordinator (a model object, a submission folder) as an uncompressed tar, unpacked into
its own store under the object's lock, and gives back what it built the same way.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from pathlib import Path

from harness.errors import ZooError
from harness.zoo.store import ZooStore


def pack_folder(root: Path) -> bytes:
    """Every regular file under ``root``, relative to it, in a tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            if "__pycache__" in path.parts:
                continue
            tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
    return buf.getvalue()


def unpack_folder(data: bytes, final: Path) -> Path:
    """Unpack a :func:`pack_folder` tar to ``final`` atomically (staging folder + rename);
    only plain files with relative paths are taken."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=final.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            members = tar.getmembers()
            for m in members:
                if not m.isfile() and not m.isdir():
                    raise ZooError(f"transfer holds a link or device: {m.name}")
            tar.extractall(staging, members=members, filter="data")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def pack_object(store: ZooStore, spec_hash: str) -> bytes:
    return pack_folder(store.object_dir(spec_hash))


def unpack_object(store: ZooStore, spec_hash: str, data: bytes) -> Path:
    """Add a packed object to ``store`` (a no-op when it is there already)."""
    with store.object_lock(spec_hash, wait=True):
        if not store.has_object(spec_hash):
            unpack_folder(data, store.object_dir(spec_hash))
    return store.object_dir(spec_hash)
