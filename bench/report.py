"""Gather the latest benchmark tables (bench/results/*.md) into docs/PERFORMANCE.md.

    .venv/bin/python bench/report.py

Each benchmark writes its own JSON and Markdown table; this page puts them together with
what each measures, the machine it ran on and when (benchmarks record the time in their
JSON), and bench/notes.md: what the profiles say about the targets not met. Run by
`make bench` after the benchmarks.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"

#: name -> (title, what it measures)
SECTIONS = {
    "scaling": (
        "A run's overhead and Dask workers",
        "`bench/scaling.py`: the null submission's detect and repair tasks on the first N "
        "models of a profile through the real runner (sandbox, staging, scoring, SQLite), "
        "in one process and on an embedded Dask LocalCluster, beside a bare script that "
        "loads each model and predicts its test sets in one process (the least any scorer "
        "does). The null submission answers at once, so the difference is the harness's "
        "own cost: sandbox starts (about 4 s each: a TensorFlow import), loading each "
        "model in the sandbox as well as for scoring, and the Dask workers' start.",
    ),
    "scaling-neural-cleanse": (
        "Dask workers on long tasks",
        "`bench/scaling.py --submission neural-cleanse`: the same comparison with the "
        "reference Neural Cleanse (detect and repair, 20-60 s a model) instead of the null "
        "submission, so the cluster's start is a small part of each run: what a second "
        "worker buys on this machine.",
    ),
    "build": (
        "Building the zoo",
        "`bench/build.py`: `build_entry` of two `tiny` entries (a clean model and a patch "
        "BadNet: splits, seeded fit, poisoning, CA/ASR on the test sets, bundle and truth "
        "written) beside a bare `model.fit` of the same architecture on as many images of "
        "the same data, one TensorFlow thread each; and a cached rebuild of the profile "
        "(`harness zoo build` in a fresh process, every model found by its content hash).",
    ),
    "art_neural_cleanse": (
        "Neural Cleanse: the reference against ART's",
        "`bench/art_neural_cleanse.py`: the reference submission's `detect` "
        "(submissions/neural-cleanse, in-process) beside the Adversarial Robustness "
        "Toolbox's `KerasNeuralCleanse` (ART 1.20, its defaults unless the table says "
        "otherwise) on the same MNIST patch BadNet and clean model (profile under the "
        "table), with the same clean split, on the same TensorFlow threads: time to a "
        "verdict, the labels each flags, and whether that is right. At ART's defaults a "
        "model takes hours, so `make bench` reuses a row measured before (each row names "
        "the processor it ran on); `--fresh` measures again.",
    ),
    "predict_throughput": (
        "Predictions inside the sandbox",
        "`bench/predict_throughput.py`: the same model (the first MNIST model of `default`), "
        "the same 20,000 inputs (its clean split, tiled), the same batches of 256 and the "
        "same timing code (`bench/throughput_probe/`) in this process with TensorFlow on one "
        "thread, and inside a sandbox worker (bwrap, whose cgroup holds it to one core, and "
        "unisolated); interleaved, best of three passes each. Target: sandboxed / bare "
        ">= 0.95.",
    ),
    "many_classes": (
        "Many classes: the contest's 1283 identities",
        "`make test-slow` runs every reference submission on the two `faces-1283` DeepID nets (a clean one and the sunglasses BadNet, 1283 SynthFaces identities, the contest's clean split of 9 images per identity: 11,547 images), on this 2-core machine, 2 Dask workers, every task in bwrap. Seconds per task (clean / sunglasses), each against the submission's own budget; all 28 tasks answered (24 min 44 s in all):",
    ),
    "sandbox_overhead": (
        "The sandbox",
        "`bench/sandbox_overhead.py`: a sandbox worker's start (a TensorFlow import) and the "
        "null submission's median task on the tiny zoo, under bwrap and unisolated.",
    ),
}


def _machine() -> str:
    cpu = ""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu or platform.processor()}, {cores} cores, Python {platform.python_version()}"


def main() -> None:
    parts = [
        "# Performance",
        "",
        "Made by `make bench` (`bench/report.py` gathers the tables each benchmark wrote "
        "under `bench/results/`). Ratios are measured side by side in one run; no test "
        "asserts a time.",
        "",
    ]
    for name, (title, what) in SECTIONS.items():
        md, js = RESULTS / f"{name}.md", RESULTS / f"{name}.json"
        if not md.is_file():
            continue
        extra = ""
        if js.is_file():
            meta = json.loads(js.read_text())
            if "profile" in meta:
                extra += f" Profile `{meta['profile']}`."
            if "measured" in meta:
                extra += f" Measured {meta['measured']}."
        parts += [f"## {title}", "", f"{what}{extra}", "", md.read_text()]
    notes = REPO / "bench" / "notes.md"
    if notes.is_file():
        parts += [notes.read_text()]
    parts += [f"Machine: {_machine()}.", ""]
    target = REPO / "docs" / "PERFORMANCE.md"
    target.write_text("\n".join(parts))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
