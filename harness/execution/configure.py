"""The configure step of learned detectors, as TrojAI's "configure" mode and the Trojan
Detection Challenge's labelled training models allow them: a submission that declares
``configure = true`` has ``configure(training_dir, out_dir)`` run once, in its sandbox,
over the profile's labelled training split (``harness zoo release``: public bundles and
truth, mounted read-only at /training), before any of its tasks. What it writes to
``out_dir`` (in its scratch folder, under the scratch cap) is kept under
``$HARNESS_HOME/configured/<key>`` and mounted read-only at /configured for every task
(``harness.api.configured_dir()``): regular files and folders only, copied through
``harness.sandbox.readback``, so an output that is (or holds) a symbolic link to a host
folder fails the step instead of carrying that folder out. The evaluation split's truth is
never in the sandbox.

The key is the submission's content hash and the training models' content hashes: a
second run, or a run on another profile with the same training split, reuses it. A
configure step that fails (an exception, the wall clock, a limit, a refused output) fails
every task of the submission with its reason; no other submission's result is touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.paths import harness_home
from harness.sandbox.client import SandboxWorker, WorkerFailure
from harness.sandbox.limits import SandboxLimits
from harness.sandbox.readback import Inside, ReadbackError, copy_folder
from harness.submission.manifest import SubmissionSpec
from harness.zoo.splits import TRAIN, of_split, write_release
from harness.zoo.store import ZooModel, ZooStore

#: The harness's cap on a configure step's wall clock (a submission asks for less with
#: ``configure_seconds`` under [resources]).
CONFIGURE_CAP_SECONDS = 3600.0
#: The file that marks a finished configure output or release (written last).
COMPLETE = ".complete"
#: The folder of the worker's scratch that its configure step writes to.
CONFIGURED = "configured"


@dataclass(frozen=True)
class Configured:
    """A submission's configure outcome: the folder its tasks see, or why it failed."""

    folder: Path | None = None
    error: str | None = None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def training_split(profile: str, zoo: ZooStore) -> list[ZooModel]:
    return of_split(profile, zoo.models(profile), TRAIN, zoo)


def released(profile: str, models: list[ZooModel]) -> Path:
    """A training split released once into the harness's cache (by content)."""
    key = _digest(*sorted(m.hash for m in models))
    final = harness_home() / "releases" / key
    if (final / COMPLETE).is_file():
        return final
    staging = Path(tempfile.mkdtemp(prefix=".release-", dir=final.parent.parent))
    try:
        write_release(models, staging / "r", profile)
        (staging / "r" / COMPLETE).write_text("")
        shutil.rmtree(final, ignore_errors=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        (staging / "r").rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def configure_limits(spec: SubmissionSpec, limits: SandboxLimits) -> SandboxLimits:
    wall = min(spec.resources.configure_seconds, CONFIGURE_CAP_SECONDS)
    capped = limits.capped(None, spec.resources.memory_gb)
    return dataclasses.replace(capped, wall_seconds=wall)


def ensure_configured(
    spec: SubmissionSpec,
    profile: str,
    zoo: ZooStore,
    backend: str,
    limits: SandboxLimits | None = None,
) -> Configured:
    """Run ``spec``'s configure step over ``profile``'s training split unless its output
    is already kept; a submission without one gets ``Configured()``."""
    if not spec.configure:
        return Configured()
    models = training_split(profile, zoo)
    if not models:
        return Configured(
            error=f"configure: profile {profile!r} has no training split to configure on "
            f'(mark training models split = "{TRAIN}" in its spec)'
        )
    return configure_on(spec, models, profile, backend, limits)


def configure_on(
    spec: SubmissionSpec,
    models: list[ZooModel],
    profile: str,
    backend: str,
    limits: SandboxLimits | None = None,
) -> Configured:
    """``spec``'s configure step over ``models`` as its labelled training split (kept by
    content: the same submission on the same models configures once)."""
    key = _digest(spec.content_hash, *sorted(m.hash for m in models))
    final = harness_home() / "configured" / key
    if (final / COMPLETE).is_file():
        return Configured(final)
    training = released(profile, models)
    workdir = Path(tempfile.mkdtemp(prefix=f"harness-configure-{spec.name}-"))
    worker = SandboxWorker(
        spec.path,
        spec.entry,
        spec.params,
        configure_limits(spec, limits or SandboxLimits()),
        backend,
        workdir,
        shared=(("training", training),),
    )
    try:
        reply = worker.start()
        if not reply.get("ok"):
            return Configured(error=f"configure: {reply.get('kind')}: {reply.get('error')}")
        reply = worker.request(
            {
                "op": "configure",
                "training_dir": worker.inner["training"],
                "out_dir": f"{worker.inner['scratch']}/{CONFIGURED}",
                "seed": int(key[:8], 16) % 2**31,
            },
            worker.limits.wall_seconds,
        )
        if not reply.get("ok"):
            return Configured(error=f"configure: {reply.get('error', 'failed')}")
        worker.stop()
        _keep(Inside(worker.dirs.scratch, (CONFIGURED,)), final)
        return Configured(final)
    except WorkerFailure as exc:
        return Configured(error=f"configure: {exc.reason}")
    except ReadbackError as exc:
        return Configured(error=str(exc))
    finally:
        worker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _keep(written: Inside, final: Path) -> None:
    """Copy the configure output to its cache folder, marked complete last: regular files
    and folders only, read through ``harness.sandbox.readback`` (a link, a FIFO or a device
    anywhere in it, the output folder itself included, refuses the whole output with
    ``ReadbackError``: no host file the sandbox points at is ever copied)."""
    staging = final.with_name(f".{final.name}-staging")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        copy_folder(written, staging, "configure output")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / COMPLETE).write_text("")
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
