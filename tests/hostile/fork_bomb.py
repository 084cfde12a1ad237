"""Fork bomb on architecture-a models: a small interpreter whose every process forks
again, forever, and spins.

Contained by the worker's process cap (a pids cgroup): forks fail with EAGAIN at the cap,
the machine keeps its pid space, and the wall clock ends the task. (The bomb runs in a
fresh interpreter rather than the worker's own process: each fork of a process holding
TensorFlow copies a gigabyte of page tables, so that bomb reaches the cap only slowly on a
loaded machine; this one reaches it in a second.) Architecture-b models get a normal
answer, so the test also sees the worker come back for the next model."""

import subprocess
import sys

from harness.api import Detection

TRACKS = ["detect"]
RESOURCES = {"wall_seconds_per_model": 10}
BOMB = """
import os, time
refused = 0
while True:
    try:
        os.fork()
    except OSError as exc:
        refused += 1
        if refused == 1:
            os.write(2, f"fork refused: {exc.strerror}\\n".encode())
        time.sleep(0.001)
"""


class Entry:
    def detect(self, model, clean):
        if model.get_layer("conv_1").get_weights()[0].shape[0] == 5:
            return Detection(score=0.0)
        subprocess.run([sys.executable, "-c", BOMB])
        return Detection(score=1.0)
