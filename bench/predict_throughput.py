"""Benchmark: prediction throughput inside the sandbox vs a bare ``tf.function``.

The same model (the first MNIST model of a profile), the same inputs (its clean split
tiled to 20,000 images), the same batches of 256 and the same timing code
(bench/throughput_probe): once in this process, with TensorFlow on one thread, and once
inside a sandbox worker (bwrap, and unisolated), whose cgroup holds it to one core. Runs
interleaved, best of three passes each; the ratio is sandboxed / bare (target: >= 0.95).

    .venv/bin/python bench/predict_throughput.py [--profile tiny] [--repeats 3]

Writes bench/results/predict_throughput.{json,md} and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBE = REPO / "bench" / "throughput_probe"


def bare(model_dir: Path, images: int) -> float:
    import keras

    sys.path.insert(0, str(PROBE))
    from submission import throughput, tiled  # the probe's own timing code

    from harness.execution.worker import clean_data

    model = keras.saving.load_model(model_dir / "model.keras", compile=False, safe_mode=True)
    return throughput(model, tiled(clean_data(model_dir).x, images), 256, 3)


def sandboxed(model, backend: str) -> float:
    from harness.execution.task import SubmissionRunner
    from harness.sandbox.limits import SandboxLimits
    from harness.submission.manifest import load_submission
    from harness.tracks import by_name

    spec = load_submission(PROBE)
    with tempfile.TemporaryDirectory() as tmp:
        runner = SubmissionRunner(spec, backend, SandboxLimits(), Path(tmp))
        try:
            res = runner.run("bench", model, by_name("detect"))
        finally:
            runner.close()
    assert res.status == "ok", res.error
    return float(res.outputs["extra"]["images_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from harness.executors.tf_runtime import import_tensorflow

    import_tensorflow(1)  # one thread, as every sandbox worker runs
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    models = [m for m in build_profile(load_profile(args.profile)) if m.card().dataset == "mnist"]
    model = models[0]
    from harness.zoo.inbox import stage_inbox

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        stage_inbox(staged, model, "bench", None)  # the very bundle a worker gets
        for rep in range(args.repeats):  # interleaved: the same machine state for each
            rows.append({"how": "bare tf.function", "repeat": rep, "ips": bare(staged, 20000)})
            for backend in ("bwrap", "process"):
                rows.append({"how": backend, "repeat": rep, "ips": sandboxed(model, backend)})
    summary = {
        how: statistics.median(r["ips"] for r in rows if r["how"] == how)
        for how in ("bare tf.function", "bwrap", "process")
    }
    ratios = {f"{b} / bare": summary[b] / summary["bare tf.function"] for b in ("bwrap", "process")}
    measured = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "predict_throughput.json").write_text(
        json.dumps(
            {
                "measured": measured,
                "model": model.id,
                "rows": rows,
                "summary": summary,
                "ratios": ratios,
            },
            indent=2,
        )  # fmt: skip
    )
    table = ["| where | images/s (median of best-of-3) |", "|---|---|"]
    table += [f"| {how} | {ips:,.0f} |" for how, ips in summary.items()]
    table += [f"| ratio {k} | {v:.3f} |" for k, v in ratios.items()]
    (out / "predict_throughput.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
