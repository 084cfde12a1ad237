"""Benchmark: what the harness adds around a run, and what more workers buy.

For the first N models of a profile (each N of --counts), side by side in one process:

- ``bare``: the least any scorer does, in this process: load each model with Keras and
  predict its clean and poisoned test sets;
- ``harness w1``: the null submission's detect and repair tasks on those models through
  the real runner (sandbox start, staging, the worker's calls, scoring, the SQLite store)
  in one process (``--workers 1``);
- ``harness wK``: the same on an embedded Dask LocalCluster of K workers (--workers).

    .venv/bin/python bench/scaling.py [--profile default] [--counts 5,10,20] [--workers 2]
        [--submission null]

``--submission neural-cleanse`` measures what more workers buy on long tasks (minutes per
model, where the cluster's start no longer counts) instead of the harness's own cost.
Writes bench/results/scaling.{json,md} (``scaling-NAME`` for another submission) and prints
the Markdown table. The ratios are
measured in one run, on one machine state; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.api import Track
from harness.execution.runner import run_submissions
from harness.executors import open_executor
from harness.paths import harness_home
from harness.results import ResultsStore
from harness.submission.manifest import load_submission
from harness.zoo.store import ZooModel, ZooStore

REPO = Path(__file__).resolve().parent.parent


def bare(models: list[ZooModel]) -> float:
    """Load each model and predict its test sets, in this process."""
    import keras

    start = time.perf_counter()
    for m in models:
        model = keras.models.load_model(m.public_dir / "model.keras", compile=False)
        sets = m.test_sets()
        for x in (sets.x, sets.x_poisoned):
            if len(x):
                np.argmax(model.predict(x, batch_size=512, verbose=0), axis=1)
    return time.perf_counter() - start


def harness_run(profile: str, ids: list[str], workers: int, submission: str = "null") -> float:
    """The null submission through the runner, from a cold per-model labels cache (what a
    first run on a fresh machine pays; later runs find each model's labels cached)."""
    for m in ZooStore().models(profile):
        if m.id in ids:
            (harness_home() / "cache" / "labels" / f"{m.hash}.npz").unlink(missing_ok=True)
    spec = load_submission(REPO / "submissions" / submission)
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultsStore(Path(tmp) / "results.sqlite")
        start = time.perf_counter()
        with open_executor(workers) as executor:
            summary = run_submissions(
                [spec],
                profile,
                [Track.DETECT, Track.REPAIR],
                store,
                model_ids=ids,
                executor=executor,
            )
        took = time.perf_counter() - start
    assert summary.failed == 0 and summary.done == 2 * len(ids), summary
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--counts", default="5,10,20")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--submission", default="null", help="a folder of submissions/")
    args = parser.parse_args()
    name = "scaling" if args.submission == "null" else f"scaling-{args.submission}"
    models = ZooStore().models(args.profile)
    counts = [min(int(c), len(models)) for c in args.counts.split(",")]
    bare(models[:1])  # warm Keras and the file cache, as the harness runs will be
    rows = []
    for n in counts:
        chosen = models[:n]
        ids = [m.id for m in chosen]
        row = {"models": n, "tasks": 2 * n, "bare_s": bare(chosen)}
        row["w1_s"] = harness_run(args.profile, ids, 1, args.submission)
        row[f"w{args.workers}_s"] = harness_run(args.profile, ids, args.workers, args.submission)
        row["w1_over_bare"] = row["w1_s"] / row["bare_s"]
        row["speedup"] = row["w1_s"] / row[f"w{args.workers}_s"]
        rows.append(row)
        print(row, flush=True)
    measured = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(
        json.dumps(
            {
                "profile": args.profile,
                "submission": args.submission,
                "measured": measured,
                "rows": rows,
            },
            indent=2,
        )
    )
    k = args.workers
    table = [
        f"| models | tasks | bare (s) | harness, 1 worker (s) | harness, {k} workers (s) "
        f"| 1 worker / bare | {k} workers speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    table += [
        f"| {r['models']} | {r['tasks']} | {r['bare_s']:.1f} | {r['w1_s']:.1f} | "
        f"{r[f'w{k}_s']:.1f} | {r['w1_over_bare']:.2f}x | {r['speedup']:.2f}x |"
        for r in rows
    ]
    (out / f"{name}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
