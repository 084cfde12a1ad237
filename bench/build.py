"""Benchmark: what the zoo builder adds around training, and a cached rebuild.

Side by side in one process, alternating, ``--repeats`` times each:

- ``harness``: ``harness.zoo.builder.build_entry`` of a `tiny` profile entry into a scratch
  store: the held-out splits, the seeded fit, the attack's poisoning, the clean accuracy
  and ASR on the test sets, the public bundle and the private truth written to disk;
- ``bare``: the same architecture built and fitted with ``model.fit`` on as many images of
  the same data, for the same epochs and batch size, and nothing else.

Then a cached rebuild: ``harness zoo build --profile PROFILE`` in a fresh process once the
profile is built (every model found by its content hash; what `make demo` does the second
time), ``--repeats`` times.

    .venv/bin/python bench/build.py [--profile default] [--repeats 2]

Writes bench/results/build.{json,md} and prints the Markdown table. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENTRIES = ("mnist-clean-a-s1-v1", "mnist-badnets-patch3-t0-v1")


def harness_build(entry, data) -> float:  # noqa: ANN001
    from harness.zoo.builder import build_entry
    from harness.zoo.store import ZooStore

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_entry(entry, data, ZooStore(Path(tmp)))
        return time.perf_counter() - start


def bare_fit(entry, data) -> float:  # noqa: ANN001
    import keras

    from harness.zoo.architectures import build_architecture

    n = entry.train_size or len(data.x_train)
    x, y = data.x_train[:n], data.y_train[:n]
    start = time.perf_counter()
    keras.utils.set_random_seed(entry.seed)
    model = build_architecture(entry.arch, data.input_shape, data.num_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(entry.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=entry.epochs, batch_size=entry.batch_size, shuffle=True, verbose=0)
    return time.perf_counter() - start


def cached_rebuild(profile: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "harness.cli", "zoo", "build", "--profile", profile, "-w", "1"],
        check=True,
        capture_output=True,
        env={**os.environ, "HARNESS_PROGRESS": "0"},
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # as a zoo build worker
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from harness.data import load_dataset
    from harness.zoo.spec import load_profile

    tiny = {e.id: e for e in load_profile("tiny").entries}
    rows = []
    for entry_id in ENTRIES:
        entry = tiny[entry_id]
        data = load_dataset(entry.dataset)
        bare_fit(entry, data)  # warm Keras and TensorFlow's kernels
        harness_s, bare_s = [], []
        for _ in range(args.repeats):
            harness_s.append(harness_build(entry, data))
            bare_s.append(bare_fit(entry, data))
        row = {
            "entry": entry_id,
            "images": (entry.train_size or len(data.x_train)) * entry.epochs,
            "harness_s": statistics.median(harness_s),
            "bare_s": statistics.median(bare_s),
        }
        row["ratio"] = row["harness_s"] / row["bare_s"]
        rows.append(row)
        print(row, flush=True)
    rebuild = [cached_rebuild(args.profile) for _ in range(args.repeats)]
    measured = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "measured": measured,
        "rows": rows,
        "cached_rebuild": {"profile": args.profile, "seconds": statistics.median(rebuild)},
    }
    (out / "build.json").write_text(json.dumps(result, indent=2))
    table = [
        "| entry (tiny profile) | images fitted | harness build (s) | bare model.fit (s) | ratio |",
        "|---|---|---|---|---|",
    ]
    table += [
        f"| {r['entry']} | {r['images']} | {r['harness_s']:.1f} | {r['bare_s']:.1f} | "
        f"{r['ratio']:.2f}x |"
        for r in rows
    ]
    table += [
        "",
        f"Cached rebuild of `{args.profile}` (`harness zoo build`, a fresh process): "
        f"{statistics.median(rebuild):.2f} s (median of {len(rebuild)}).",
    ]
    (out / "build.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
