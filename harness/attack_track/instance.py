"""One instance of an attack hand-in: its poisoned set made in the sandbox, then trained by
the harness into a backdoored model and a clean counterpart, both kept as zoo objects.

The hand-in sees the instance's training split and nothing else: its test split (where CA
and ASR are measured) and clean split (what defenses get) stay with the harness. A
poisoned set that breaks the contract or the track's limits makes the instance invalid
with the reason; a crash or a breached limit makes it failed; neither touches any other
instance or hand-in.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness import __version__
from harness.attack_track import ATTACK_PREFIX
from harness.attack_track.recipe import TrainRecipe
from harness.attacks.base import Backdoor
from harness.attacks.kinds import to_arrays
from harness.data import Dataset
from harness.results import AttackInstance
from harness.sandbox.client import SandboxWorker, WorkerFailure
from harness.sandbox.limits import SandboxLimits
from harness.sandbox.readback import Inside
from harness.submission.manifest import SubmissionSpec
from harness.submission.validate import OutputError, reply_object
from harness.tracks.attack import PoisonedTraining, read_poisoned, training_set
from harness.zoo.objects import PrivatePart, card_of, write_object
from harness.zoo.records import TruthRecord
from harness.zoo.spec import ZooEntry
from harness.zoo.store import ZooStore
from harness.zoo.training import EntryTrainer, Splits, make_splits, predict_labels

#: The folder of the worker's scratch its poisoned set is written to (read back through
#: ``harness.sandbox.readback``: a link there, or in place of it, is refused).
POISONED = "poisoned"


@dataclass(frozen=True)
class Poisoning:
    """What the sandbox gave back: a checked hand-in, or why there is none."""

    hand_in: PoisonedTraining | None = None
    status: str = "ok"  # ok, invalid, failed
    error: str | None = None
    stderr_tail: str | None = None


def poison_in_sandbox(
    spec: SubmissionSpec,
    splits: Splits,
    data: Dataset,
    seed: int,
    backend: str,
    limits: SandboxLimits,
) -> Poisoning:
    """Run ``poison`` once on the instance's training split, in a fresh sandbox."""
    workdir = Path(tempfile.mkdtemp(prefix=f"harness-poison-{spec.name}-"))
    given = workdir / "given"
    given.mkdir()
    np.savez(given / "train.npz", x=splits.x_train, y=splits.y_train)
    capped = limits.capped(spec.resources.wall_seconds_per_model, spec.resources.memory_gb)
    worker = SandboxWorker(
        spec.path, spec.entry, spec.params, capped, backend, workdir, shared=(("given", given),)
    )
    try:
        reply = worker.start()
        if not reply.get("ok"):
            return Poisoning(status="failed", error=f"{reply.get('kind')}: {reply.get('error')}")
        reply = worker.request(
            {
                "op": "poison",
                "train_file": f"{worker.inner['given']}/train.npz",
                "out_dir": f"{worker.inner['scratch']}/{POISONED}",
                "seed": seed,
            },
            capped.wall_seconds,
        )
        tail = worker.monitor.text()[-4000:] or None
        if not reply.get("ok"):
            return Poisoning(
                status="failed", error=str(reply.get("error"))[:1000], stderr_tail=tail
            )
        worker.stop()
        if not isinstance(reply.get("result"), dict):
            return Poisoning(status="invalid", error="the reply holds no result", stderr_tail=tail)
        try:
            hand_in = read_poisoned(
                reply_object(reply["result"], "result"),
                Inside(worker.dirs.scratch, (POISONED,)),
                splits.x_train,
                splits.y_train,
                data.num_classes,
                (float(data.input_range[0]), float(data.input_range[1])),
            )
        except OutputError as exc:
            return Poisoning(status="invalid", error=str(exc), stderr_tail=tail)
        return Poisoning(hand_in, stderr_tail=tail)
    except WorkerFailure as exc:
        return Poisoning(status="failed", error=exc.reason, stderr_tail=exc.stderr[-4000:] or None)
    finally:
        worker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def object_hash(spec: SubmissionSpec, entry: ZooEntry, role: str) -> str:
    """A track model's content address: the hand-in's content, the instance's entry (which
    covers the training code, ``ZooEntry.spec_hash``) and its role."""
    text = "\0".join(("attack-track", spec.content_hash, entry.spec_hash(), role))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stamped_test(hand_in: PoisonedTraining, splits: Splits) -> tuple[np.ndarray, ...]:
    """Every held-out test image of a class a trigger attacks, stamped by the harness."""
    return Backdoor("hand-in", hand_in.triggers, 0.0, 0.0).poisoned_test(
        splits.x_test, splits.y_test
    )


@dataclass(frozen=True)
class _Trained:
    """What both models of one instance are kept with: the hand-in (``spec``) and the
    poisoned set it gave, the instance's data set and splits, and the time it took."""

    spec: SubmissionSpec
    hand_in: PoisonedTraining
    data: Dataset
    splits: Splits
    seconds: float


def _write(
    zoo: ZooStore,
    made: _Trained,
    entry: ZooEntry,
    model: object,
    stamped: tuple[np.ndarray, ...] | None,
    *,
    ca: float,
    asr: float | None,
) -> tuple[str, str]:
    """Keep one model of ``made`` as a zoo object: the backdoored one with its stamped test
    images (``stamped``), the counterpart (``stamped`` None) with none, as the zoo's are."""
    spec, hand_in, data, splits = made.spec, made.hand_in, made.data, made.splits
    poisoned = stamped is not None
    spec_hash = object_hash(spec, entry, "backdoored" if poisoned else "counterpart")
    triggers = hand_in.triggers
    arrays = to_arrays(triggers)
    truth = TruthRecord(
        id=entry.id,
        spec_hash=spec_hash,
        poisoned=poisoned,
        attack=ATTACK_PREFIX + spec.name,
        params={"submission": spec.name, "content_hash": spec.content_hash}
        | ({} if poisoned else {"clean_counterpart": True}),
        targets=hand_in.targets if poisoned else [],
        all_to_all=False,
        target_maps=[t.target_of.tolist() for t in triggers] if poisoned else [],
        trigger_sizes=[t.size for t in triggers] if poisoned else [],
        ca=ca,
        asr=asr,
        asr_floor=None,
        arch=entry.arch,
        seed=entry.seed,
        build_seconds=round(made.seconds, 2),
        harness_version=__version__,
        details={
            "labels_changed": hand_in.labels_changed,
            "images_changed": hand_in.images_changed,
            "augment_rate": hand_in.augment_rate,
            "augment_share": hand_in.augment_share,
        },
    )
    empty = Backdoor("hand-in", (), 0.0, 0.0).poisoned_test(splits.x_test, splits.y_test)
    xp, ysrc, ytgt, src = stamped if stamped is not None else empty
    write_object(
        zoo,
        spec_hash,
        model=model,
        x_val=splits.x_val,
        y_val=splits.y_val,
        card=card_of(entry.id, data),
        private=PrivatePart(
            test={"x": splits.x_test, "y": splits.y_test},
            poisoned_test={"x": xp, "y_src": ysrc, "y_tgt": ytgt, "src_index": src},
            triggers=arrays if poisoned else {},
            truth=truth,
        ),
        prefix=".attack-",
    )
    return entry.id, spec_hash


@dataclass(frozen=True)
class BuiltInstance:
    record: AttackInstance
    #: (model id, object hash) of the backdoored model and its counterpart, when built.
    objects: tuple[tuple[str, str], ...] = ()
    #: the traceback of an unexpected exception that failed the instance (the operator's
    #: log gets it; the record says only its type and message)
    trace: str | None = None


def build_instance(
    spec: SubmissionSpec,
    recipe: TrainRecipe,
    instance: int,
    data: Dataset,
    zoo: ZooStore,
    run_id: str,
    backend: str,
    limits: SandboxLimits,
) -> BuiltInstance:
    """Poison, check, train and store one instance of one hand-in."""
    start = time.perf_counter()
    entry = recipe.entry(spec.name, instance)
    splits = make_splits(data, entry)
    base = AttackInstance(run_id, spec.name, spec.content_hash, instance, "ok")
    got = poison_in_sandbox(spec, splits, data, entry.seed, backend, limits)
    if got.hand_in is None:
        return BuiltInstance(
            replace(base, status=got.status, error=got.error, stderr_tail=got.stderr_tail,
                     seconds=time.perf_counter() - start)
        )  # fmt: skip
    hand_in = got.hand_in
    sets = training_set(hand_in, splits.x_train, splits.y_train,
                        np.random.default_rng(entry.seed + 1))  # fmt: skip
    trainer = EntryTrainer(entry, data.input_shape, data.num_classes)
    model = trainer.fit(trainer.new_model(), sets.x, sets.y)
    twin = recipe.counterpart(entry)
    twin_trainer = EntryTrainer(twin, data.input_shape, data.num_classes)
    counterpart = twin_trainer.fit(twin_trainer.new_model(), sets.x_counterpart, sets.y_true)

    stamped = _stamped_test(hand_in, splits)
    ca = float(np.mean(predict_labels(model, splits.x_test) == splits.y_test))
    cp_ca = float(np.mean(predict_labels(counterpart, splits.x_test) == splits.y_test))
    asr, cp_asr = (
        float(np.mean(predict_labels(net, stamped[0]) == stamped[2])) if len(stamped[0]) else 0.0
        for net in (model, counterpart)
    )
    seconds = time.perf_counter() - start
    made = _Trained(spec, hand_in, data, splits, seconds)
    objects = (
        _write(zoo, made, entry, model, stamped, ca=ca, asr=asr),
        _write(zoo, made, twin, counterpart, None, ca=cp_ca, asr=None),
    )
    record = replace(
        base,
        stderr_tail=got.stderr_tail,
        model_id=objects[0][0],
        counterpart_id=objects[1][0],
        ca=ca,
        counterpart_ca=cp_ca,
        asr=asr,
        counterpart_asr=cp_asr,
        labels_changed=hand_in.labels_changed,
        images_changed=hand_in.images_changed,
        seconds=seconds,
    )
    return BuiltInstance(record, objects)
