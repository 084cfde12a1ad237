"""An attack-track run: every hand-in's instances built, then the defenses run on them.

The run's models (each hand-in's backdoored models and counterparts) form a zoo index of
their own, ``attack-track-<run id>``: the defenses run on it through the ordinary runner
(``harness.execution.runner``: sandbox, Dask, resume), under the same run id, so ``harness report``
shows them like any run and the attack x defense matrix has a row per hand-in. A rerun
skips every instance already built from the same hand-in content and recipe, and every
defense task already stored.
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import asdict, dataclass, replace
from typing import Protocol

from harness.api import Track
from harness.attack_track.instance import BuiltInstance, build_instance, object_hash
from harness.attack_track.recipe import TrainRecipe
from harness.data import Dataset, load_dataset
from harness.errors import HarnessError
from harness.execution.config import RunConfig
from harness.execution.runner import Plan, RunProgress, RunSummary, run_plans, storable
from harness.executors import Executor, InProcess, quiet_tensorflow, worker_address
from harness.paths import harness_home
from harness.results import AttackInstance, ResultsStore
from harness.sandbox.limits import SandboxLimits
from harness.submission.manifest import SubmissionSpec, content_hash
from harness.zoo.build_jobs import packed_object, store_here, store_id
from harness.zoo.store import ZooStore
from harness.zoo.transfer import pack_folder, unpack_folder, unpack_object

#: The tracks the defenses run on a hand-in's models.
DEFENSE_TRACKS = (Track.DETECT, Track.FILTER)
#: Instances per hand-in at most (each trains two models).
MAX_INSTANCES = 50


def index_name(run_id: str) -> str:
    """The zoo index holding a run's models."""
    return f"attack-track-{run_id}"


def instance_key(spec: SubmissionSpec, recipe: TrainRecipe) -> str:
    """What an instance was built from: the hand-in's content and the recipe."""
    text = spec.content_hash + repr(sorted(asdict(recipe).items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class AttackRunSummary:
    run_id: str
    profile: str
    built: int = 0
    reused: int = 0
    invalid: int = 0
    defenses: RunSummary | None = None


class AttackProgress(RunProgress, Protocol):
    """What an attack-track run reports as it goes: the defenses' tasks (``RunProgress``),
    and each instance as it is built or reused."""

    def instance_done(
        self, attack: str, instance: int, record: AttackInstance, reused: bool
    ) -> None:
        """One instance of hand-in ``attack`` is built (or ``reused`` from the store)."""

    def trace(self, who: str, text: str) -> None:
        """The traceback ``text`` of an instance that failed unexpectedly (``who``: the
        hand-in and instance)."""


def _run_id(config: RunConfig) -> str:
    if not config.run_id:
        raise ValueError("an attack-track run is named: set RunConfig.run_id")
    return config.run_id


def _reusable(prev: AttackInstance | None, key: str, zoo: ZooStore, hashes: list[str]) -> bool:
    if prev is None or prev.attack_hash != key:
        return False
    if prev.status == "invalid":
        return True  # the same content is refused again: no need to ask
    if prev.status == "ok" and prev.counterpart_asr is None:
        return False  # stored before the counterpart's ASR was measured: build it again
    return prev.status == "ok" and all(zoo.has_object(h) for h in hashes)


@dataclass(frozen=True)
class InstanceJob:
    """One instance to build on a worker (in this process or on Dask)."""

    spec: SubmissionSpec
    folder: bytes  # the hand-in's files, packed, for a worker that lacks them
    folder_hash: str  # their content hash on the coordinator
    recipe: TrainRecipe
    instance: int
    run_id: str
    backend: str
    limits: SandboxLimits
    store_root: str  # the coordinator's zoo store
    store_id: str


#: Data sets a worker process loaded (the whole training pool: loaded once per process).
_DATA: dict[str, Dataset] = {}


def instance_job(job: InstanceJob) -> tuple[BuiltInstance, str | None]:
    """Build one instance on this worker: into the coordinator's zoo store when this host
    shares it, else into its own (the coordinator then fetches the objects). Anything an
    instance raises is that instance's failure, not the run's."""
    try:
        return _build_on_worker(job)
    except Exception as exc:  # noqa: BLE001 - the barrier: this hand-in's instance alone
        message = str(exc).replace("\n", " ")[:300]
        record = AttackInstance(
            job.run_id, job.spec.name, job.spec.content_hash, job.instance, "failed",
            error=f"the harness could not build this instance ({type(exc).__name__}: {message})",
        )  # fmt: skip
        return BuiltInstance(record, trace=traceback.format_exc()), worker_address()


def _build_on_worker(job: InstanceJob) -> tuple[BuiltInstance, str | None]:
    quiet_tensorflow()
    spec = job.spec
    if not (spec.path.is_dir() and content_hash(spec.path) == job.folder_hash):
        copy = harness_home() / "submissions" / job.folder_hash
        if not copy.is_dir():
            unpack_folder(job.folder, copy)
        spec = replace(spec, path=copy)
    if job.recipe.dataset not in _DATA:
        _DATA[job.recipe.dataset] = load_dataset(job.recipe.dataset)
    store = store_here(job.store_root, job.store_id)
    built = build_instance(spec, job.recipe, job.instance, _DATA[job.recipe.dataset], store,
                           job.run_id, job.backend, job.limits)  # fmt: skip
    return built, worker_address()


def build_attacks(
    specs: list[SubmissionSpec],
    recipe: TrainRecipe,
    instances: int,
    results: ResultsStore,
    config: RunConfig,
    *,
    zoo: ZooStore | None = None,
    executor: Executor | None = None,
    progress: AttackProgress | None = None,
) -> AttackRunSummary:
    """Build every missing instance of every hand-in under ``config.run_id`` (on
    ``executor``, in ``config.backend`` under ``config.limits``; this process is the only
    writer of the results store) and write the run's zoo index; each instance is told to
    ``progress``, and an instance that raised is failed, its traceback told to it too."""
    if not 1 <= instances <= MAX_INSTANCES:
        raise HarnessError(
            f"--instances {instances} is out of range", fix=f"ask for 1 to {MAX_INSTANCES}"
        )
    not_attacks = [s.name for s in specs if Track.ATTACK not in s.tracks]
    if not_attacks:
        raise HarnessError(
            f"{', '.join(not_attacks)} declare no {Track.ATTACK.value} track",
            fix=f'an attack hand-in has tracks = ["{Track.ATTACK.value}"] in submission.toml',
        )
    run_id = _run_id(config)
    zoo = zoo or ZooStore()
    executor = executor or InProcess()
    profile = index_name(run_id)
    results.ensure_run(run_id, profile, "", config.command)
    summary = AttackRunSummary(run_id, profile)
    have = {(i.attack, i.instance): i for i in results.attack_instances(run_id)}
    order: list[tuple[SubmissionSpec, int, list[str]]] = []
    jobs: list[InstanceJob] = []
    kept: dict[tuple[str, int], AttackInstance] = {}
    for spec in specs:
        key = instance_key(spec, recipe)
        folder, folder_hash = pack_folder(spec.path), content_hash(spec.path)
        for k in range(instances):
            entry = recipe.entry(spec.name, k)
            hashes = [
                object_hash(spec, entry, "backdoored"),
                object_hash(spec, recipe.counterpart(entry), "counterpart"),
            ]
            order.append((spec, k, hashes))
            prev = have.get((spec.name, k))
            if prev is not None and _reusable(prev, key, zoo, hashes):
                kept[(spec.name, k)] = prev
                summary.reused += 1
                if progress:
                    progress.instance_done(spec.name, k, prev, True)
            else:
                jobs.append(InstanceJob(spec, folder, folder_hash, recipe, k, run_id,
                                        config.backend, config.limits, str(zoo.root),
                                        store_id(zoo)))  # fmt: skip
    for job, (built, worker) in executor.map_unordered(instance_job, jobs):
        for _, spec_hash in built.objects:
            if not zoo.has_object(spec_hash):  # built where this host cannot see it
                data = executor.run_on(
                    worker, packed_object, str(zoo.root), store_id(zoo), spec_hash
                )
                unpack_object(zoo, spec_hash, data)
        if built.trace and progress:
            progress.trace(f"{job.spec.name} #{job.instance}", built.trace)
        record = replace(built.record, attack_hash=instance_key(job.spec, recipe),
                         error=storable(built.record.error),
                         stderr_tail=storable(built.record.stderr_tail))  # fmt: skip
        results.write_attack_instance(record)
        kept[(job.spec.name, job.instance)] = record
        summary.built += 1
        if progress:
            progress.instance_done(job.spec.name, job.instance, record, False)
    pairs: list[tuple[str, str]] = []
    for spec, k, hashes in order:
        record = kept[(spec.name, k)]
        if record.status != "ok":
            summary.invalid += 1
            continue
        entry = recipe.entry(spec.name, k)
        pairs += [(entry.id, hashes[0]), (recipe.counterpart(entry).id, hashes[1])]
    if not pairs:
        raise HarnessError(
            "no hand-in gave a valid poisoned set: there is nothing to run the defenses on",
            fix=f"see why with `harness attack table --run-id {run_id}`",
        )
    zoo.write_index(profile, pairs)
    return summary


def run_attack_track(
    attacks: list[SubmissionSpec],
    defenses: list[SubmissionSpec],
    recipe: TrainRecipe,
    instances: int,
    results: ResultsStore,
    config: RunConfig,
    *,
    executor: Executor | None = None,
    progress: AttackProgress | None = None,
) -> AttackRunSummary:
    """The whole track under ``config.run_id``: build the hand-ins' models, then run the
    defenses on them (learned detectors configured on ``config.configure_on``'s training
    split)."""
    zoo = ZooStore()
    summary = build_attacks(attacks, recipe, instances, results, config, zoo=zoo,
                            executor=executor, progress=progress)  # fmt: skip
    plans = [Plan(spec, list(DEFENSE_TRACKS)) for spec in defenses]
    summary.defenses = run_plans(plans, summary.profile, results, config, zoo=zoo,
                                 executor=executor, progress=progress)  # fmt: skip
    return summary
