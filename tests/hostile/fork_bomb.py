"""Fork bomb on architecture-a models: every process forks again, forever, and spins.

Contained by the worker's process cap (a pids cgroup): forks fail with EAGAIN at the cap,
the machine keeps its pid space, and the wall clock ends the task. Architecture-b models
get a normal answer, so the test also sees the worker come back for the next model."""

import os
import time

from harness.api import Detection

TRACKS = ["detect"]
RESOURCES = {"wall_seconds_per_model": 12}


class Entry:
    def detect(self, model, clean):
        if model.get_layer("conv_1").get_weights()[0].shape[0] == 5:
            return Detection(score=0.0)
        refused = 0
        while True:
            try:
                os.fork()
            except OSError as exc:
                refused += 1
                if refused == 1:
                    os.write(2, f"fork refused: {exc.strerror}\n".encode())
                time.sleep(0.001)
