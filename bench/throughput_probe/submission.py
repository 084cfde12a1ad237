"""Times the model's batched predictions on its clean split, tiled to ``images`` inputs,
exactly as bench/predict_throughput.py times them outside the sandbox (``throughput``)."""

import numpy as np

from harness.api import Detection


def throughput(model, x, batch, repeats):
    """Best images/s of ``repeats`` passes of a compiled forward pass over ``x``."""
    import time

    import tensorflow as tf

    forward = tf.function(lambda b: model(b, training=False), reduce_retracing=True)
    forward(x[:batch])  # trace once, outside the clock
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            forward(x[i : i + batch]).numpy()
        best = max(best, len(x) / (time.perf_counter() - start))
    return best


def tiled(x, images):
    reps = -(-images // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:images], dtype=np.float32)


class ThroughputProbe:
    def __init__(self, images=20000, batch=256, repeats=3):
        self.images, self.batch, self.repeats = images, batch, repeats

    def detect(self, model, clean):
        x = tiled(clean.x, self.images)
        rate = throughput(model, x, self.batch, self.repeats)
        return Detection(score=0.5, extra={"images_per_s": rate})
