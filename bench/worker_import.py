"""Benchmark: the TensorFlow + Keras import a sandbox worker makes at every start
(``harness.execution.worker.import_tensorflow``), in fresh processes of one or more Python
interpreters measured side by side, alternating, with the ml_dtypes version each has.

    .venv/bin/python bench/worker_import.py [--repeats 5] [--python OTHER/bin/python ...]

Each interpreter must import this checkout's ``harness`` (run it from the repository root).
Why it exists: ml_dtypes 0.7.0 (TensorFlow's dependency) takes 0.6 s of CPU to import where
0.6.0 takes milliseconds, and every worker start pays it; pyproject.toml holds it below 0.7.
Writes bench/results/worker_import.{json,md} and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Run in a fresh process: the import the worker makes, timed in wall and CPU seconds.
PROBE = """
import json, time
w, c = time.perf_counter(), time.process_time()
from harness.execution.worker import import_tensorflow
import_tensorflow(1)
wall, cpu = time.perf_counter() - w, time.process_time() - c
import ml_dtypes
print(json.dumps({"wall": wall, "cpu": cpu, "ml_dtypes": ml_dtypes.__version__}))
"""
#: ml_dtypes alone, after NumPy (the part of the import above it accounts for).
ML_DTYPES = """
import json, time
import numpy
c = time.process_time()
import ml_dtypes
print(json.dumps({"cpu": time.process_time() - c}))
"""


def once(python: str, code: str) -> dict:
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [python, "-s", "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
        env={**env, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--python", action="append", default=[], help="another interpreter")
    args = ap.parse_args()
    pythons = [sys.executable, *args.python]
    runs: dict[str, list[dict]] = {p: [] for p in pythons}
    for _ in range(args.repeats):  # alternate, so drift on a noisy machine hits all alike
        for p in pythons:
            r = once(p, PROBE)
            r["ml_dtypes_cpu"] = once(p, ML_DTYPES)["cpu"]
            runs[p].append(r)
    rows = []
    for p, rs in runs.items():
        rows.append({
            "python": p,
            "ml_dtypes": rs[0]["ml_dtypes"],
            "import_ml_dtypes_cpu_s": statistics.median(r["ml_dtypes_cpu"] for r in rs),
            "worker_import_wall_s": statistics.median(r["wall"] for r in rs),
            "worker_import_cpu_s": statistics.median(r["cpu"] for r in rs),
            "repeats": len(rs),
        })  # fmt: skip
    lines = [
        "| ml_dtypes | import ml_dtypes (CPU s) | worker TF+Keras import (wall s) | (CPU s) |",
        "|---|---|---|---|",
        *(
            f"| {r['ml_dtypes']} | {r['import_ml_dtypes_cpu_s']:.3f} | "
            f"{r['worker_import_wall_s']:.2f} | {r['worker_import_cpu_s']:.2f} |"
            for r in rows
        ),
    ]
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    md = f"# Worker import ({when}, medians of {args.repeats})\n\n" + "\n".join(lines) + "\n"
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "worker_import.json").write_text(json.dumps({"when": when, "rows": rows}, indent=1))
    (out / "worker_import.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
