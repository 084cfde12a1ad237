"""Benchmark: the reference Neural Cleanse against the Adversarial Robustness Toolbox's.

Neural Cleanse (Wang, Yao, Shan, Li, Viswanath, Zheng, Zhao; "Neural Cleanse: Identifying
and Mitigating Backdoor Attacks in Neural Networks", IEEE S&P 2019) in two
implementations, side by side in one process on the same models and the same clean split:

- ``harness``: the reference submission (submissions/neural-cleanse) at its
  submission.toml parameters, its ``detect`` called in-process (no sandbox): every label's
  trigger optimised together in one batched graph, then the MAD outlier test;
- ``art``: the Adversarial Robustness Toolbox's ``KerasNeuralCleanse`` (IBM, ART 1.20)
  through ``art.defences.transformer.poisoning.NeuralCleanse``, at its defaults unless
  ``--art-steps`` says otherwise, and its ``outlier_detection`` (one label at a time,
  ``steps`` passes over the clean split each).

For each model: the wall time to a verdict, the labels each flags, and whether that is
right (a backdoored model's target flagged and nothing else; nothing on a clean model).
ART is not a dependency of the harness: ``pip install -e '.[bench]'`` (what `make bench`
does) installs it.

    .venv/bin/python bench/art_neural_cleanse.py [--profile default] [--art-steps 1000] [--fresh]

Writes bench/results/art_neural_cleanse.{json,md} and prints the Markdown table; each
model's row is kept under bench/results/art_neural_cleanse.partial/ as soon as it is
measured, so a killed run measures only the models still missing (``--fresh``: all).
Nothing is asserted. At ART's defaults (1000 passes per label) a 10-class MNIST model takes over
an hour on one core of this machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

REPO = Path(__file__).resolve().parent.parent
MODELS = ("mnist-badnets-patch3-t0-v1", "mnist-clean-a-s1-v1")


def load(profile: str, model_id: str) -> tuple[Any, Any, list[int]]:
    """A zoo model, its public clean split as CleanData, and its true target labels."""
    import keras

    from harness.api import CleanData
    from harness.errors import ZooError
    from harness.zoo.builder import build_entries
    from harness.zoo.spec import load_profile
    from harness.zoo.store import ZooStore

    # Only the models measured are built (or taken from the cache by spec hash), not the
    # whole profile: on a fresh machine the benchmark trains two models, not twenty.
    every = load_profile(profile).entries
    entries = [e for e in every if e.id == model_id]
    if not entries:
        known = ", ".join(e.id for e in every)
        raise ZooError(
            f"no model {model_id!r} in the profile {profile!r}", fix=f"--models from: {known}"
        )
    (m,) = build_entries(entries, ZooStore())
    card = m.card()
    model = keras.models.load_model(m.public_dir / "model.keras", compile=False)
    with np.load(m.public_dir / "clean_val.npz") as npz:
        clean = CleanData(npz["x"], npz["y"], card.num_classes, tuple(card.input_range))
    truth = m.truth()
    return model, clean, list(truth.targets) if truth.poisoned else []


def harness_nc(model: Any, clean: Any) -> dict[str, Any]:
    """The reference submission's detect, at its submission.toml parameters."""
    sys.path.insert(0, str(REPO / "submissions" / "neural-cleanse"))
    from submission import NeuralCleanse  # type: ignore[import-not-found]

    manifest = tomllib.loads((REPO / "submissions/neural-cleanse/submission.toml").read_text())
    np.random.seed(0)
    start = time.perf_counter()
    detection = NeuralCleanse(**manifest.get("params", {})).detect(model, clean)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "flagged": sorted(detection.extra["flagged"]),
        "l1_norms": detection.extra["l1_norms"],
    }


def art_nc(model: Any, clean: Any, steps: int | None) -> dict[str, Any]:
    """ART's Keras Neural Cleanse: outlier_detection over every label."""
    from art.defences.transformer.poisoning import NeuralCleanse
    from art.estimators.classification import KerasClassifier

    lo, hi = clean.input_range
    classifier = KerasClassifier(model=model, clip_values=(lo, hi))
    kwargs = {} if steps is None else {"steps": steps}
    cleanse = NeuralCleanse(classifier)(classifier, **kwargs)
    norms: list[float] = []
    generate = cleanse.generate_backdoor

    def recorded(x_val: np.ndarray, y_val: np.ndarray, y_target: np.ndarray) -> Any:
        mask, pattern = generate(x_val, y_val, y_target)
        norms.append(float(np.sum(np.abs(mask))))  # what outlier_detection computes
        return mask, pattern

    cleanse.generate_backdoor = recorded
    y_onehot = np.eye(clean.num_classes, dtype=np.float32)[np.asarray(clean.y)]
    x = np.array(clean.x, np.float32)
    start = time.perf_counter()
    found = cleanse.outlier_detection(x, y_onehot)
    seconds = time.perf_counter() - start
    median = float(np.median(norms))
    mad = 1.4826 * float(np.median(np.abs(np.asarray(norms) - median)))
    return {
        "seconds": seconds,
        "flagged": sorted(int(label) for label, _, _ in found),
        "l1_norms": norms,
        "mad": mad,
    }


def processor() -> str:
    """The CPU model the row was measured on: rows kept from an earlier run may come from
    another machine, and the table says so."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def right(flagged: list[int], targets: list[int]) -> bool:
    """A backdoored model: its targets flagged and nothing else; a clean one: nothing."""
    return sorted(flagged) == sorted(targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--art-steps", type=int, default=None, help="ART's steps (default 1000)")
    parser.add_argument("--fresh", action="store_true", help="measure again models measured before")
    parser.add_argument(
        "--threads", type=int, default=1, help="TensorFlow threads, for both (default 1)"
    )
    args = parser.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    out = REPO / "bench" / "results"
    steps = args.art_steps or 1000
    # At ART's defaults a model takes over an hour, so each model's row is kept as soon as
    # it is measured and a rerun (after a kill) measures only the models still missing.
    done = out / "art_neural_cleanse.partial"
    done.mkdir(parents=True, exist_ok=True)
    rows = []
    for model_id in args.models.split(","):
        kept = done / f"{args.profile}.{model_id}.steps{steps}.json"
        if kept.is_file() and not args.fresh:
            rows.append(json.loads(kept.read_text()))
            print(model_id, "measured before:", kept, flush=True)
            continue
        model, clean, targets = load(args.profile, model_id)
        ours = harness_nc(model, clean)
        print(model_id, "harness", ours["seconds"], ours["flagged"], flush=True)
        theirs = art_nc(model, clean, args.art_steps)
        print(model_id, "art", theirs["seconds"], theirs["flagged"], flush=True)
        row = {
            "model": model_id,
            "targets": targets,
            "harness": ours,
            "art": theirs,
            "processor": processor(),
        }
        kept.write_text(json.dumps(row, indent=2))
        rows.append(row)
    measured = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    (out / "art_neural_cleanse.json").write_text(
        json.dumps(
            {
                "profile": args.profile,
                "measured": measured,
                "art_steps": steps,
                "threads": args.threads,
                "rows": rows,
            },
            indent=2,
        )
    )
    table = [
        f"| model | true targets | harness (s) | harness flags | ART, {steps} steps (s) "
        "| ART flags | ART's MAD | speed-up | CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        h, a = r["harness"], r["art"]
        mark = {True: "right", False: "wrong"}
        table.append(
            f"| {r['model']} | {r['targets'] or 'none (clean)'} | {h['seconds']:.1f} "
            f"| {h['flagged']} ({mark[right(h['flagged'], r['targets'])]}) "
            f"| {a['seconds']:.1f} | {a['flagged']} ({mark[right(a['flagged'], r['targets'])]}) "
            f"| {a['mad']:.2f} | {a['seconds'] / h['seconds']:.0f}x "
            f"| {r.get('processor', 'not recorded')} |"
        )
    table += [
        "",
        f"Profile `{args.profile}`, TensorFlow on {args.threads} thread(s) for both, "
        f"measured {measured}.",
    ]
    (out / "art_neural_cleanse.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    from harness.errors import HarnessError

    try:
        main()
    except HarnessError as exc:  # an unknown profile or model id: one line, no traceback
        sys.exit(f"art_neural_cleanse: {exc}")
