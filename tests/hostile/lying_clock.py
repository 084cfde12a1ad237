"""Takes longer than its time budget, and tells the harness it took no time: it replaces
the worker's clock (it shares the worker's process) so that the seconds the worker reports
come out negative, which the harness reads as "not reported".

The conformance suite times each task on the harness's side: check_time_budget fails
with the time it measured."""

import sys
import time
import types

from harness.api import Detection

TRACKS = ["detect"]
RESOURCES = {"wall_seconds_per_model": 4}


class Entry:
    def detect(self, model, clean):
        time.sleep(5.0)
        worker = sys.modules["__main__"]  # the worker runs as python -m harness.execution.worker
        worker.time = types.SimpleNamespace(perf_counter=lambda: 0.0)
        return Detection(score=0.5)
