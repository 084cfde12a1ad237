"""DeepInspect (Chen, Fu, Zhao, Koushanfar, IJCAI 2019): data-free Trojan detection.

1. Model inversion: recover substitute inputs for every class from the model alone, by
   gradient descent on the input to maximise the class's softmax output, with a small
   total-variation regulariser (optionally the clean split joins them: ``use_clean``).
2. Trigger generation: one conditional generator G(z, t) (a small Keras model) learns, for
   every label t at once, a perturbation that sends substitute inputs of other classes to
   t when added to them; a soft hinge on the perturbation's L1 norm keeps it small.
3. Anomaly test: a backdoor target needs a much smaller perturbation than the other labels.
   The per-label L1 norms go through the MAD outlier test (anomaly index = (median - L1) /
   (1.4826 MAD)); labels with an index above ``anomaly_threshold`` are flagged. The score is
   a logistic in the largest index, 0.5 at the threshold. With ``log_norms`` (default) the
   test runs on log L1, since the norms spread multiplicatively (a harness choice; false
   gives the paper's test on raw norms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.api import CleanData, Detection
from harness.toolkit.reverse import anomaly_index

#: Labels measured together in ``DeepInspect._measure`` (eval_noise x eval_images stamped
#: images each: 64 labels x 64 = 4096 images at the defaults).
MEASURE_CHUNK = 64


@dataclass(frozen=True)
class LabelTriggers:
    """Per label: the generated perturbations' mean L1 norm and their success rate."""

    l1: np.ndarray
    success: np.ndarray


class DeepInspect:
    #: the seed drawn from the task's seed for this detect() (when ``seed`` is -1)
    _drawn: int | None = None

    def __init__(
        self,
        inverted_images: int = 100,
        inversion_steps: int = 200,
        inversion_lr: float = 0.1,
        tv_weight: float = 0.01,
        use_clean: bool = False,
        generator_steps: int = 600,
        batch_size: int = 64,
        noise_dim: int = 8,
        hidden: int = 64,
        generator_lr: float = 0.01,
        pert_weight: float = 0.02,
        hinge: float = 0.0,
        eval_noise: int = 4,
        eval_images: int = 16,
        log_norms: bool = True,
        anomaly_threshold: float = 2.0,
        score_slope: float = 2.0,
        seed: int = -1,
        values_per_step: int = 64 * 28 * 28,
        inverted_values: int = 100 * 28 * 28,
        min_images: int = 16,
        measure_images: int = 20_000,
    ) -> None:
        self.inverted_images = inverted_images
        self.inversion_steps = inversion_steps
        self.inversion_lr = inversion_lr
        self.tv_weight = tv_weight
        self.use_clean = use_clean
        self.generator_steps = generator_steps
        self.batch_size = batch_size
        self.noise_dim = noise_dim
        self.hidden = hidden
        self.generator_lr = generator_lr
        self.pert_weight = pert_weight
        self.hinge = hinge
        self.eval_noise = eval_noise
        self.eval_images = eval_images
        self.log_norms = log_norms
        self.anomaly_threshold = anomaly_threshold
        self.score_slope = score_slope
        self.seed = seed
        self.values_per_step = values_per_step
        self.inverted_values = inverted_values
        self.min_images = min_images
        self.measure_images = measure_images

    def _validate(self) -> None:
        """All parameter checks, in one place (one ValueError naming the parameter)."""
        positive_ints = (
            "inverted_images",
            "batch_size",
            "noise_dim",
            "hidden",
            "eval_noise",
            "eval_images",
            "values_per_step",
            "inverted_values",
            "min_images",
            "measure_images",
        )
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, not {getattr(self, name)}")
        for name in ("inversion_steps", "generator_steps"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        for name in ("inversion_lr", "generator_lr", "score_slope"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)}")
        for name in ("tv_weight", "pert_weight", "hinge"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        if not isinstance(self.seed, int) or self.seed < -1:
            raise ValueError(f"seed must be an integer >= -1, not {self.seed!r}")
        for name in ("use_clean", "log_norms"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")

    # -- detect / target tracks -----------------------------------------------------------
    def _seed(self) -> int:
        """``seed``, or with ``seed = -1`` the one this detect() drew from the task's seed
        (the harness seeds NumPy per task: each replicate of `--seeds` differs)."""
        return self.seed if self.seed >= 0 else (self._drawn or 0)

    def detect(self, model: Any, clean: CleanData) -> Detection:
        self._validate()
        if self.seed < 0:
            self._drawn = int(np.random.randint(0, 2**31 - 1))
        x_sub, y_sub = self.invert(model, clean)
        if self.use_clean:
            x_sub = np.concatenate([x_sub, np.asarray(clean.x, np.float32)])
            y_sub = np.concatenate([y_sub, np.asarray(clean.y, np.int64)])
        found = self.generate_triggers(model, x_sub, y_sub, clean.num_classes, clean.input_range)
        norms = np.log(np.maximum(found.l1, 1e-12)) if self.log_norms else found.l1
        index = anomaly_index(norms)
        order = np.argsort(-index, kind="stable")
        flagged = [int(t) for t in order if index[t] > self.anomaly_threshold]
        top = float(index.max())
        score = 1.0 / (1.0 + np.exp(-self.score_slope * (top - self.anomaly_threshold)))
        return Detection(
            score=float(score),
            target_labels=flagged or [int(np.argmax(index))],
            extra={
                "anomaly_index": [round(float(a), 4) for a in index],
                "l1": [round(float(v), 4) for v in found.l1],
                "success": [round(float(s), 4) for s in found.success],
                "flagged": flagged,
            },
        )

    def images(self, input_shape: tuple[int, ...]) -> tuple[int, int]:
        """(substitute inputs to invert, generator batch) for inputs of ``input_shape``.

        ``inverted_images`` and ``batch_size`` hold for 28x28x1 inputs. A step's cost grows
        with the input's size, so both are also capped in input values (``inverted_values``,
        ``values_per_step``), but never below ``min_images``: on 55x47x3 faces 16 of each
        (2 substitute inputs per class of a 10-identity model) instead of 100 and 64."""
        values = math.prod(input_shape)

        def capped(count: int, budget: int) -> int:  # never above count itself
            return max(min(count, budget // values), min(int(self.min_images), count))

        return (
            capped(int(self.inverted_images), int(self.inverted_values)),
            capped(int(self.batch_size), int(self.values_per_step)),
        )

    # -- 1. model inversion ---------------------------------------------------------------
    def invert(self, model: Any, clean: CleanData) -> tuple[np.ndarray, np.ndarray]:
        """Substitute inputs per class, maximising that class's output from random noise:
        ``images()[0]`` in all, as many per class as that allows (at least one). With more
        classes than that (a 1283-identity face model), one image each for as many classes
        drawn at random: the generator needs inputs of classes other than its target, not
        of every class, and the cost stays bounded."""
        import tensorflow as tf

        n = clean.num_classes
        total = self.images(clean.input_shape)[0]
        per_class = max(1, math.ceil(total / n))
        h, w, c = clean.input_shape
        lo, hi = clean.input_range
        rng = np.random.default_rng(self._seed())
        if n > total:
            y = np.sort(rng.choice(n, total, replace=False)).astype(np.int64)
        else:
            y = np.repeat(np.arange(n, dtype=np.int64), per_class)
        raw = tf.Variable(rng.normal(0.0, 0.5, (len(y), h, w, c)).astype(np.float32))
        labels = tf.constant(y)
        opt = tf.keras.optimizers.Adam(self.inversion_lr)
        tv_weight = float(self.tv_weight)

        def image() -> Any:
            return lo + (hi - lo) * tf.sigmoid(raw)

        @tf.function
        def step() -> None:
            with tf.GradientTape() as tape:
                x = image()
                ce = tf.keras.losses.sparse_categorical_crossentropy(labels, model(x))
                tv = tf.image.total_variation(x) / float(h * w * c)
                loss = tf.reduce_sum(ce + tv_weight * tv / (hi - lo))
            opt.apply_gradients([(tape.gradient(loss, raw), raw)])

        for _ in range(int(self.inversion_steps)):
            step()
        return image().numpy().astype(np.float32), y

    # -- 2. conditional trigger generator -------------------------------------------------
    def build_generator(self, shape: tuple[int, ...], num_classes: int, scale: float) -> Any:
        """G(z, t): noise and a one-hot label in, a perturbation in [-scale, scale] out."""
        import keras
        from keras import layers

        size = int(np.prod(shape))
        z = keras.Input((self.noise_dim,), name="z")
        t = keras.Input((num_classes,), name="label")
        init = keras.initializers.GlorotUniform
        hidden = layers.Dense(
            self.hidden,
            activation="relu",
            kernel_initializer=init(seed=self._seed()),
            name="hidden",
        )(layers.Concatenate(name="z_label")([z, t]))
        out = layers.Dense(
            size,
            activation="tanh",
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01, seed=self._seed() + 1),
            name="perturbation",
        )(layers.Concatenate(name="hidden_label")([hidden, t]))
        out = layers.Rescaling(scale, name="scale")(layers.Reshape(shape, name="image")(out))
        return keras.Model([z, t], out, name="deepinspect_generator")

    def generate_triggers(
        self,
        model: Any,
        x_sub: np.ndarray,
        y_sub: np.ndarray,
        num_classes: int,
        input_range: tuple[float, float],
    ) -> LabelTriggers:
        """Train one conditional generator for all labels; measure each label's trigger."""
        import tensorflow as tf

        lo, hi = input_range
        gen = self.build_generator(tuple(x_sub.shape[1:]), num_classes, hi - lo)
        opt = tf.keras.optimizers.Adam(self.generator_lr)
        weight, hinge = float(self.pert_weight), float(self.hinge)

        def attack(x: Any, z: Any, t: Any) -> tuple[Any, Any]:
            delta = gen([z, tf.one_hot(t, num_classes)], training=True)
            l1 = tf.reduce_sum(tf.abs(delta), axis=(1, 2, 3))
            return model(tf.clip_by_value(x + delta, lo, hi)), l1

        @tf.function
        def step(x: Any, z: Any, t: Any, other: Any) -> None:
            with tf.GradientTape() as tape:
                probs, l1 = attack(x, z, t)
                ce = tf.keras.losses.sparse_categorical_crossentropy(t, probs)
                pert = tf.nn.relu(l1 - hinge)
                loss = tf.reduce_sum(other * ce) / tf.maximum(tf.reduce_sum(other), 1.0)
                loss += weight * tf.reduce_mean(pert)
            grads = tape.gradient(loss, gen.trainable_variables)
            opt.apply_gradients(zip(grads, gen.trainable_variables, strict=True))

        rng = np.random.default_rng(self._seed() + 2)
        b = self.images(x_sub.shape[1:])[1]
        for _ in range(int(self.generator_steps)):
            i = rng.integers(0, len(x_sub), b)
            t = rng.integers(0, num_classes, b)
            z = rng.normal(0, 1, (b, self.noise_dim)).astype(np.float32)
            other = (y_sub[i] != t).astype(np.float32)
            step(x_sub[i], z, t.astype(np.int64), other)
        return self._measure(model, gen, x_sub, y_sub, num_classes, input_range)

    def eval_inputs(self, num_classes: int) -> int:
        """Substitute inputs a label's trigger is measured on: ``eval_images``, fewer (at
        least 2) where all labels would stamp more than ``measure_images`` in all."""
        budget = int(self.measure_images) // (num_classes * int(self.eval_noise))
        return min(int(self.eval_images), max(2, budget))

    def _measure(
        self,
        model: Any,
        gen: Any,
        x_sub: np.ndarray,
        y_sub: np.ndarray,
        num_classes: int,
        input_range: tuple[float, float],
    ) -> LabelTriggers:
        """Each label's mean perturbation norm and success rate: ``eval_noise`` noise draws
        on ``eval_images`` substitute inputs of other classes, fewer inputs (at least 2)
        where all labels together would stamp more than ``measure_images`` (the 82,000 of a
        1283-class net at the defaults). Labels are measured in chunks of MEASURE_CHUNK, a
        few graph calls each, whatever the class count."""
        lo, hi = input_range
        rng = np.random.default_rng(self._seed() + 3)
        k, m = int(self.eval_noise), self.eval_inputs(num_classes)
        noise, picks = [], []
        for t in range(num_classes):  # every draw first, in the order of the per-label loop
            noise.append(rng.normal(0, 1, (k, self.noise_dim)).astype(np.float32))
            pool = np.flatnonzero(y_sub != t)
            picks.append(rng.choice(pool, m, replace=len(pool) < m))
        l1, success = np.zeros(num_classes), np.zeros(num_classes)
        eye = np.eye(num_classes, dtype=np.float32)
        for start in range(0, num_classes, MEASURE_CHUNK):
            ts = np.arange(start, min(num_classes, start + MEASURE_CHUNK))
            onehot = np.repeat(eye[ts], k, axis=0)
            z = np.concatenate([noise[t] for t in ts])
            delta = np.asarray(gen.predict([z, onehot], verbose=0, batch_size=256))
            delta = delta.reshape((len(ts), k, *x_sub.shape[1:]))
            l1[ts] = np.abs(delta).sum(axis=(2, 3, 4)).mean(axis=1)
            x = x_sub[np.stack([picks[t] for t in ts])]  # (labels, m, H, W, C)
            stamped = np.clip(x[:, None] + delta[:, :, None], lo, hi)
            out = model.predict(stamped.reshape((-1, *x_sub.shape[1:])), verbose=0, batch_size=256)
            hit = np.argmax(out, axis=1).reshape(len(ts), k * m) == ts[:, None]
            success[ts] = hit.mean(axis=1)
        return LabelTriggers(l1=l1, success=success)
