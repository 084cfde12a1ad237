"""Thread bomb: starts threads until the system refuses one, then answers.

Threads count against the same process cap as forks, so the bomb stops at the cap (well
below what would hurt the machine) and the task itself goes on."""

import threading
import time

from harness.api import Detection

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        started = 0
        try:
            for _ in range(100_000):
                threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
                started += 1
        except RuntimeError as exc:
            print(f"thread refused after {started}: {exc}", flush=True)
        return Detection(score=0.0, extra={"threads": started})
