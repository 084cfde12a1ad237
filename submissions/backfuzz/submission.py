"""BackFuzz ("BackFuzz: An Automated Backdoor Detection Tool"): DLFuzz (Guo et al., ESEC/FSE
2018) re-purposed to find inputs that trigger a backdoor.

For each seed image the DLFuzz loop runs ``iterations`` steps of gradient ascent on

    obj = predict_weight * sum(top_k other logits) - original logit
          + neuron_weight * sum(selected neurons' activations)

(the objective of DLFuzz's MNIST ``gen_diff.py``; Figure 8 of the BackFuzz report), each
step adding ``step`` times the RMS-normalised gradient, confined to a random ``occlusion``
square if set (DeepXplore's occlusion constraint, applied after normalising, as BackFuzz
does). A mutated input whose label differs from the one the loop started from is a
generated input (DLFuzz saves exactly these); one that grows neuron coverage by more than
``coverage_gain / (i + 1)`` (i = the seed image's position) with an L2 ratio
``||x_gen - x|| / ||x||`` below ``max_l2_ratio`` is queued for more fuzzing.

Batched: a batch of seeds is fuzzed at once in one tf.GradientTape graph. Coverage gain is
credited per input against the coverage held before the step (the sequential original
credits inputs one after another); everything else follows the per-seed loop.
"""

from __future__ import annotations

import numpy as np

from harness.api import CleanData, Detection, GeneratedInputs

STRATEGIES = ("rare", "frequent", "high-weight", "differential")
SKIPPED_LAYERS = ("InputLayer", "Flatten", "Dropout", "Reshape")


class BackFuzz:
    def __init__(
        self,
        strategy: str = "rare",
        occlusion: int = 0,
        neuron_count: int = 5,
        threshold: float = 0.5,
        iterations: int = 5,
        step: float = 0.02,
        predict_weight: float = 0.5,
        neuron_weight: float = 0.5,
        top_k: int = 4,
        coverage_gain: float = 0.01,
        max_l2_ratio: float = 0.02,
        max_rounds: int = 3,
        batch_size: int = 100,
        detect_budget: int = 400,
        detect_center: float = 0.55,
        detect_gain: float = 20.0,
        random_seed: int = 0,
    ) -> None:
        self.strategy = strategy
        self.occlusion = occlusion
        self.neuron_count = neuron_count
        self.threshold = threshold
        self.iterations = iterations
        self.step = step
        self.predict_weight = predict_weight
        self.neuron_weight = neuron_weight
        self.top_k = top_k
        self.coverage_gain = coverage_gain
        self.max_l2_ratio = max_l2_ratio
        self.max_rounds = max_rounds
        self.batch_size = batch_size
        self.detect_budget = detect_budget
        self.detect_center = detect_center
        self.detect_gain = detect_gain
        self.random_seed = random_seed
        _check_params(self)

    # -- fuzz track -----------------------------------------------------------------------
    def generate(self, model, clean: CleanData, budget: int) -> GeneratedInputs:
        fuzzer = _Fuzzer(self, model, clean)
        found = fuzzer.run(int(budget))
        self.stats_ = fuzzer.stats
        return found

    # -- detect track ---------------------------------------------------------------------
    def detect(self, model, clean: CleanData) -> Detection:
        """Fuzz, then score how concentrated the induced (seed label -> new label) changes are."""
        found = self.generate(model, clean, self.detect_budget)
        new = _labels(model, found.x) if len(found.x) else np.zeros(0, np.int64)
        src = np.asarray(clean.y)[found.seed_index]
        stats = transition_stats(src, new, clean.num_classes)
        targets = stats.pop("targets")
        z = self.detect_gain * (stats["concentration"] - self.detect_center)
        return Detection(
            score=float(1.0 / (1.0 + np.exp(-z))),
            target_labels=targets or None,
            extra=stats | self.stats_,
        )


#: Pseudo-inputs spread evenly over the new labels: a handful of generated inputs that
#: happen to agree cannot look concentrated.
PRIOR_INPUTS = 10.0


def transition_stats(src: np.ndarray, new: np.ndarray, num_classes: int) -> dict:
    """How one-sided the induced label changes are (README, "Detect").

    ``map_share``: share of generated inputs that go to their source label's most common new
    label (all-to-all backdoors: y -> t(y)); ``sink_share``: share that go to the single most
    common new label (single-target backdoors). ``concentration``: the larger of the two,
    shrunk towards chance (1 / (N - 1)) with ``PRIOR_INPUTS`` pseudo-inputs.
    """
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (src, new), 1.0)
    np.fill_diagonal(counts, 0.0)
    total = float(counts.sum())
    chance = 1.0 / (num_classes - 1)
    if total == 0:
        return {"map_share": 0.0, "sink_share": 0.0, "concentration": chance, "targets": []}
    map_share = float(counts.max(axis=1).sum() / total)
    into = counts.sum(axis=0)
    sink_share = float(into.max() / total)
    best = max(map_share, sink_share)
    concentration = (best * total + chance * PRIOR_INPUTS) / (total + PRIOR_INPUTS)
    rows = np.flatnonzero(counts.sum(axis=1) > 0)
    dominant = np.zeros(num_classes)  # inputs carried by each row's dominant transition
    np.add.at(dominant, np.argmax(counts[rows], axis=1), counts[rows].max(axis=1))
    if sink_share >= map_share:
        targets = [int(np.argmax(into))]
    else:
        targets = [int(t) for t in np.argsort(-dominant, kind="stable") if dominant[t] > 0]
    return {
        "map_share": map_share,
        "sink_share": sink_share,
        "concentration": float(concentration),
        "targets": targets,
    }


def _check_params(p: BackFuzz) -> None:
    """All parameter validation, in one place."""
    if p.strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {p.strategy!r}")
    for name in ("occlusion",):
        if not isinstance(getattr(p, name), int) or getattr(p, name) < 0:
            raise ValueError(f"{name} must be an integer >= 0 (0 = no occlusion square)")
    for name in ("neuron_count", "iterations", "top_k", "max_rounds", "batch_size"):
        if not isinstance(getattr(p, name), int) or getattr(p, name) < 1:
            raise ValueError(f"{name} must be an integer >= 1, not {getattr(p, name)!r}")
    if not isinstance(p.detect_budget, int) or p.detect_budget < 1:
        raise ValueError(f"detect_budget must be an integer >= 1, not {p.detect_budget!r}")
    for name in ("step", "max_l2_ratio", "detect_gain"):
        if not getattr(p, name) > 0:
            raise ValueError(f"{name} must be > 0, not {getattr(p, name)!r}")
    for name in ("predict_weight", "neuron_weight", "coverage_gain"):
        if not getattr(p, name) >= 0:
            raise ValueError(f"{name} must be >= 0, not {getattr(p, name)!r}")
    if not 0.0 < p.detect_center < 1.0:
        raise ValueError(f"detect_center must lie in (0, 1), not {p.detect_center!r}")
    if not 0.0 <= p.threshold < 1.0:
        raise ValueError(f"threshold must lie in [0, 1), not {p.threshold!r}")


def _labels(model, x: np.ndarray) -> np.ndarray:
    return np.argmax(model.predict(x, verbose=0, batch_size=256), axis=1)


class _Fuzzer:
    """One DLFuzz run over ``clean.x`` (the seeds); the model is only read."""

    def __init__(self, cfg: BackFuzz, model, clean: CleanData) -> None:
        import keras
        import tensorflow as tf

        self.cfg, self.clean = cfg, clean
        self.rng = np.random.default_rng(cfg.random_seed)
        self.x = np.asarray(clean.x, np.float32)
        self.low, self.high = (float(v) for v in clean.input_range)
        h, w = self.x.shape[1:3]
        if cfg.occlusion > min(h, w):
            raise ValueError(f"occlusion {cfg.occlusion} is larger than the {h}x{w} image")
        self.layers = [
            layer for layer in model.layers if type(layer).__name__ not in SKIPPED_LAYERS
        ]
        last = model.layers[-1]
        self.dense_softmax = (
            isinstance(last, keras.layers.Dense)
            and getattr(last.activation, "__name__", "") == "softmax"
        )
        tail = last.input if self.dense_softmax else model.outputs[0]
        self.probe = keras.Model(model.inputs, [layer.output for layer in self.layers] + [tail])
        self.last = last
        self.num_logits = int(model.outputs[0].shape[-1])
        self.shapes = [tuple(layer.output.shape[1:]) for layer in self.layers]
        self.sizes = [s[-1] for s in self.shapes]
        self.times = np.zeros(sum(self.sizes), np.int64)  # DLFuzz's model_layer_times
        self.masks = self._static_masks(clean)
        self.stats = {"seeds_fuzzed": 0, "queued": 0, "generated": 0}
        self._grad = tf.function(self._covered_logits_grad, reduce_retracing=True)
        self._forward = tf.function(self._covered_logits, reduce_retracing=True)

    # -- the DLFuzz loop ------------------------------------------------------------------
    def run(self, budget: int) -> GeneratedInputs:
        order = self.rng.permutation(len(self.x))
        corners = self._corners(len(self.x))
        out_x: list[np.ndarray] = []
        out_i: list[int] = []
        for start in range(0, len(order), self.cfg.batch_size):
            if len(out_i) >= budget:
                break
            seeds = order[start : start + self.cfg.batch_size]
            queue = [(int(s), start + k, self.x[s]) for k, s in enumerate(seeds)]
            self.stats["seeds_fuzzed"] += len(seeds)
            for _ in range(self.cfg.max_rounds):
                if not queue or len(out_i) >= budget:
                    break
                queue = self._fuzz(queue, corners, out_x, out_i, budget)
                self.stats["queued"] += len(queue)
        self.stats["generated"] = len(out_i)
        x = np.stack(out_x) if out_x else np.zeros((0, *self.x.shape[1:]), np.float32)
        return GeneratedInputs(x=x.astype(np.float32), seed_index=np.asarray(out_i, np.int64))

    def _fuzz(self, queue, corners, out_x, out_i, budget):
        """Mutate each queued input ``iterations`` times; return the next queue."""
        seed_idx = np.array([q[0] for q in queue])
        position = np.array([q[1] for q in queue])
        x = np.stack([q[2] for q in queue]).astype(np.float32)
        orig = self.x[seed_idx]
        area = self._area_mask(corners[seed_idx], x.shape)
        covered, logits = (t.numpy() for t in self._forward(x))
        self.times += covered.sum(axis=0)
        orig_label = np.argmax(logits, axis=1)
        objective = self._objective_inputs(orig_label, self._top_others(logits, orig_label))
        gain_floor = self.cfg.coverage_gain / (position + 1)
        grad = self._grad(x, *objective)[2].numpy()
        following = []
        for t in range(self.cfg.iterations):
            rms = np.sqrt(np.mean(grad**2, axis=(1, 2, 3), keepdims=True))
            x = np.clip(x + self.cfg.step * area * grad / (rms + 1e-5), self.low, self.high)
            if t + 1 < self.cfg.iterations:
                covered, logits, grad = (r.numpy() for r in self._grad(x, *objective))
            else:
                covered, logits = (r.numpy() for r in self._forward(x))
            before = self.times > 0
            gain = (covered & ~before).sum(axis=1) / len(before)
            self.times += covered.sum(axis=0)
            ratio = _l2(x - orig) / np.maximum(_l2(orig), 1e-12)
            label = np.argmax(logits, axis=1)
            for j in np.flatnonzero(label != orig_label):
                if len(out_i) < budget:
                    out_x.append(x[j].copy())
                    out_i.append(int(seed_idx[j]))
            for j in np.flatnonzero((gain > gain_floor) & (ratio < self.cfg.max_l2_ratio)):
                following.append((int(seed_idx[j]), int(position[j]), x[j].copy()))
        return following

    def _objective_inputs(self, orig_label: np.ndarray, others: np.ndarray) -> tuple:
        import tensorflow as tf

        onehot = np.eye(self.num_logits, dtype=np.float32)[orig_label]
        masks = [tf.constant(m) for m in self._neuron_masks(len(orig_label))]
        return tf.constant(onehot), tf.constant(others), masks

    def _logits(self, tail):
        import tensorflow as tf

        if self.dense_softmax:
            return tf.matmul(tail, self.last.kernel) + self.last.bias
        return tf.math.log(tf.maximum(tail, 1e-12))

    def _covered_logits(self, x):
        import tensorflow as tf

        outs = self.probe(x, training=False)
        covered = tf.concat([self._covered(a) for a in outs[:-1]], axis=1)
        return covered, self._logits(outs[-1])

    def _covered_logits_grad(self, x, orig_onehot, others, neuron_masks):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            outs = self.probe(x, training=False)
            acts, logits = outs[:-1], self._logits(outs[-1])
            obj = self.cfg.predict_weight * tf.reduce_sum(logits * others, axis=1)
            obj -= tf.reduce_sum(logits * orig_onehot, axis=1)
            for act, mask in zip(acts, neuron_masks, strict=True):
                flat = tf.reshape(act * mask, (tf.shape(x)[0], -1))
                obj += self.cfg.neuron_weight * tf.reduce_sum(flat, axis=1)
            total = tf.reduce_sum(obj)  # inputs are independent: per-input gradients
        grad = tape.gradient(total, x)
        covered = tf.concat([self._covered(a) for a in acts], axis=1)
        return covered, logits, grad

    def _covered(self, act):
        """DLFuzz's update_coverage: min-max scale the layer output per input, then a
        neuron (channel) is covered when its mean scaled value exceeds ``threshold``."""
        import tensorflow as tf

        flat = tf.reshape(act, (tf.shape(act)[0], -1))
        low = tf.reduce_min(flat, axis=1)
        span = tf.maximum(tf.reduce_max(flat, axis=1) - low, 1e-12)
        rank = len(act.shape)
        shape = [-1] + [1] * (rank - 1)
        scaled = (act - tf.reshape(low, shape)) / tf.reshape(span, shape)
        means = tf.reduce_mean(scaled, axis=list(range(1, rank - 1))) if rank > 2 else scaled
        return means > self.cfg.threshold

    # -- neuron selection -----------------------------------------------------------------
    def _neuron_masks(self, n: int) -> list[np.ndarray]:
        """Per-input masks over every layer's output; the objective sums act * mask."""
        if self.strategy_is("differential"):
            return [np.broadcast_to(m, (n, *m.shape[1:])) for m in self.masks]
        masks = [np.zeros((n, *s), np.float32) for s in self.shapes]
        offsets = np.cumsum([0, *self.sizes])
        for j in range(n):
            for flat in self._pick():
                layer = int(np.searchsorted(offsets, flat, side="right") - 1)
                channel = int(flat - offsets[layer])
                spatial = int(np.prod(self.shapes[layer][:-1]))
                masks[layer][j, ..., channel] = 1.0 / spatial  # mean over the channel
        return masks

    def strategy_is(self, name: str) -> bool:
        return self.cfg.strategy == name

    def _pick(self) -> np.ndarray:
        """DLFuzz's neuron_selection for one input: ``neuron_count`` neuron indices."""
        times, k = self.times, self.cfg.neuron_count
        if self.strategy_is("high-weight"):
            pool = self.masks_high_weight
            return self.rng.choice(pool, size=min(k, len(pool)), replace=False)
        weight = times if self.strategy_is("frequent") else times.max() - times
        if weight.sum() == 0:  # nothing covered yet: DLFuzz's random_strategy
            uncovered = np.flatnonzero(times == 0)
            return self.rng.choice(uncovered if len(uncovered) else np.arange(len(times)), 1)
        k = min(k, int(np.count_nonzero(weight)))
        return self.rng.choice(len(times), size=k, replace=False, p=weight / weight.sum())

    def _static_masks(self, clean: CleanData) -> list[np.ndarray]:
        """Masks fixed for the whole run: differential neurons, or high-weight candidates."""
        if self.strategy_is("high-weight"):
            self.masks_high_weight = self._high_weight_pool()
        if not self.strategy_is("differential"):
            return []
        if clean.poisoned is None:
            raise ValueError(
                "strategy 'differential' needs poisoned samples (clean.poisoned): run it as an "
                'oracle submission (oracle = true in submission.toml) or pick strategy = "rare"'
            )
        return differential_masks(self, np.asarray(clean.poisoned, np.float32))

    def _high_weight_pool(self) -> np.ndarray:
        """DLFuzz's neuron_select_high_weight: the top 10 % neurons by mean positive kernel."""
        scores: list[float] = []
        for layer, size in zip(self.layers, self.sizes, strict=True):
            weights = layer.get_weights()
            if weights and weights[0].shape[-1] == size:
                mean_w = weights[0].reshape(-1, size).mean(axis=0)
                scores.extend(float(v) if v > 0 else -np.inf for v in mean_w)
            else:
                scores.extend([-np.inf] * size)
        scores_arr = np.array(scores)
        top = max(1, int(0.1 * len(scores_arr)))
        ranked = np.argsort(-scores_arr, kind="stable")[:top]
        return ranked[np.isfinite(scores_arr[ranked])]

    # -- occlusion ------------------------------------------------------------------------
    def _corners(self, n: int) -> np.ndarray:
        """Top-left corner of each seed's occlusion square, drawn so it fits the image."""
        size = self.cfg.occlusion
        h, w = self.x.shape[1:3]
        if size == 0:
            return np.zeros((n, 2), np.int64)
        return np.stack(
            [self.rng.integers(0, h - size + 1, n), self.rng.integers(0, w - size + 1, n)], 1
        )

    def _area_mask(self, corners: np.ndarray, shape) -> np.ndarray:
        size = self.cfg.occlusion
        if size == 0:
            return np.ones((shape[0], 1, 1, 1), np.float32)
        area = np.zeros((shape[0], shape[1], shape[2], 1), np.float32)
        for j, (top, left) in enumerate(corners):
            area[j, top : top + size, left : left + size] = 1.0
        return area

    def _top_others(self, logits: np.ndarray, orig_label: np.ndarray) -> np.ndarray:
        """One-hot rows of the ``top_k`` classes ranked just below the original label."""
        ranked = np.argsort(-logits, axis=1, kind="stable")
        others = np.zeros(logits.shape, np.float32)
        for j in range(len(logits)):
            picked = [c for c in ranked[j] if c != orig_label[j]][: self.cfg.top_k]
            others[j, picked] = 1.0
        return others


def differential_masks(fuzzer: _Fuzzer, poisoned: np.ndarray) -> list[np.ndarray]:
    """BackFuzz's "differential neurons" strategy: in each convolutional layer, the output
    elements (position, channel) whose activation rate (the share of inputs with
    activation > 0) is higher on the poisoned samples than on the clean split by at least
    half the layer's largest gap; at most ``neuron_count`` per layer. Fixed for the whole
    run."""
    import keras

    if len(poisoned) == 0:  # an oracle run on a clean model: nothing to contrast
        return [np.zeros((1, *shape), np.float32) for shape in fuzzer.shapes]
    rates = []
    for data in (fuzzer.x, poisoned):
        outs = fuzzer.probe.predict(data, verbose=0, batch_size=256)[:-1]
        rates.append([(o > 0).mean(axis=0) for o in outs])
    masks = []
    for layer, clean_rate, bad_rate in zip(fuzzer.layers, *rates, strict=True):
        mask = np.zeros((1, *clean_rate.shape), np.float32)
        gap = (bad_rate - clean_rate).ravel()
        if isinstance(layer, keras.layers.Conv2D) and gap.max() > 0:
            top = np.argsort(-gap, kind="stable")[: fuzzer.cfg.neuron_count]
            top = top[gap[top] >= 0.5 * gap.max()]
            mask.reshape(-1)[top] = 1.0
        masks.append(mask)
    return masks


def _l2(d: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(d.reshape(len(d), -1) ** 2, axis=1))
