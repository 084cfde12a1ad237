"""Benchmark: what the sandbox costs. Worker start-up (TensorFlow import) and per-task time of
the null submission on the tiny zoo, bwrap vs process backends, measured side by side.

    .venv/bin/python bench/sandbox_overhead.py [--repeats 3]

Writes bench/results/sandbox_overhead.{json,md} and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from pathlib import Path

from harness.execution.task import SubmissionRunner
from harness.sandbox.limits import SandboxLimits
from harness.submission.manifest import load_submission
from harness.tracks import by_name
from harness.zoo.builder import build_profile
from harness.zoo.spec import load_profile

REPO = Path(__file__).resolve().parent.parent


def measure(backend: str, models: list, track: str) -> dict[str, float]:
    spec = load_submission(REPO / "submissions" / "null")
    with tempfile.TemporaryDirectory() as tmp:
        runner = SubmissionRunner(spec, backend, SandboxLimits(), Path(tmp))
        start = time.perf_counter()
        runner.worker.start()
        startup = time.perf_counter() - start
        per_task = []
        for model in models:
            t = time.perf_counter()
            res = runner.run("bench", model, by_name(track))
            assert res.status == "ok", res.error
            per_task.append(time.perf_counter() - t)
        runner.close()
    return {"startup_s": startup, "task_s": statistics.median(per_task)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    models = build_profile(load_profile("tiny"))
    rows = []
    for track in ("detect", "repair"):
        for rep in range(args.repeats):
            for backend in ("bwrap", "process"):  # interleaved: same machine state for both
                rows.append(
                    {
                        "backend": backend,
                        "track": track,
                        "repeat": rep,
                        **measure(backend, models, track),
                    }
                )
    summary = {}
    for track in ("detect", "repair"):
        for backend in ("bwrap", "process"):
            sel = [r for r in rows if r["backend"] == backend and r["track"] == track]
            summary[f"{backend}/{track}"] = {
                k: statistics.median(r[k] for r in sel) for k in ("startup_s", "task_s")
            }
    for track in ("detect", "repair"):
        b, p = summary[f"bwrap/{track}"], summary[f"process/{track}"]
        summary[f"ratio/{track}"] = {k: b[k] / p[k] for k in b}
    measured = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sandbox_overhead.json").write_text(
        json.dumps({"measured": measured, "rows": rows, "summary": summary}, indent=2)
    )
    table = ["| backend/track | worker start-up (s) | median task (s) |", "|---|---|---|"]
    table += [f"| {k} | {v['startup_s']:.3f} | {v['task_s']:.3f} |" for k, v in summary.items()]
    (out / "sandbox_overhead.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
