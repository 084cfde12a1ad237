"""meta-weights: a learned detector, after the meta-classifiers that learn from labelled
training models (MNTD: Xu, Wang, Li, Borisov, Gunter, Li, "Detecting AI Trojans Using Meta
Neural Analysis", IEEE S&P 2021; ULP: Kolouri et al., CVPR 2020; the Trojan Detection
Challenge 2022's baseline).

``configure`` runs once over the labelled training split (``harness zoo release``): for
each training model it computes the features below, then fits a logistic regression
(scikit-learn, standardised features) of "backdoored" on them and writes its numbers to
``weights.npz`` (no pickle). ``detect`` computes the same features for the model in hand
and answers the regression's probability.

Features (each invariant to the order of the labels, so models with different targets
compare):

- the last layer's weight signature: per-label L2 norms of its kernel's columns and its
  biases, as robust z-scores ((v - median) / (1.4826 MAD)); the largest two and the gap
  between them (a backdoor's target often gets an outsized column);
- every kernel's spread: the mean and the largest over layers of each kernel's standard
  deviation and excess kurtosis (models trained with poisoned data differ in shape);
- jumbo queries (MNTD): ``queries`` fixed random inputs in the input range, the same for
  every model: the share of them the commonest label takes and the entropy of the mean
  prediction;
- a patch probe: ``probe_images`` clean images with a random ``patch`` x ``patch`` block of
  random values: the share sent to the commonest label other than their own.

Weight statistics differ between architectures (a 1283-class face net's kernels are not an
MNIST net's), so each feature is standardised within its architecture before the one
regression is fitted: per *family* (input shape and number of labels) where the training
split holds at least two models of that family, over the whole split otherwise, as MNTD
fits a meta-classifier per task. A model of a family the split never showed is
standardised with the whole split's numbers.

The target label answered is the label with the largest column-norm z-score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.api import CleanData, Detection, configured_dir, training_models
from harness.toolkit.reverse import anomaly_index

FEATURES = (
    "norm_z_top",
    "norm_z_second",
    "norm_z_gap",
    "bias_z_top",
    "kernel_std_mean",
    "kernel_std_max",
    "kernel_kurtosis_mean",
    "kernel_kurtosis_max",
    "query_mode_share",
    "query_entropy",
    "probe_flip_share",
)


def _robust_z(values: np.ndarray) -> np.ndarray:
    """How far above the median each value lies, in MAD units: Neural Cleanse's anomaly
    index with the sign turned (large weights, not small masks, are what stands out here);
    all zeros when the values do not spread."""
    return -anomaly_index(values)


def _last_kernel(model: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The kernel (d x C) and bias of the model's last layer that has both."""
    for layer in reversed(model.layers):
        weights = layer.get_weights()
        if len(weights) >= 2 and weights[0].ndim == 2:
            return np.asarray(weights[0]), np.asarray(weights[1])
    return None


def _kernel_shapes(model: Any) -> tuple[list[float], list[float]]:
    stds, kurts = [], []
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or weights[0].ndim < 2:
            continue
        w = np.asarray(weights[0], np.float64).ravel()
        std = float(w.std())
        stds.append(std)
        kurts.append(float(((w - w.mean()) ** 4).mean() / max(std**4, 1e-24) - 3.0))
    return stds, kurts


def family(clean: CleanData) -> str:
    """The architecture family a model belongs to: its input shape and number of labels."""
    return "x".join(str(int(d)) for d in clean.input_shape) + f"/{int(clean.num_classes)}"


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    return x.mean(axis=0), scale


def _standardise(vector: np.ndarray, name: str, units: dict[str, np.ndarray]) -> np.ndarray:
    """``vector`` in the units of family ``name`` (the whole split's for a family it held
    fewer than two models of): the same for the training rows and the model in hand."""
    names = [str(n) for n in units["families"]]
    if name in names:
        k = names.index(name)
        return (vector - units["family_mean"][k]) / units["family_scale"][k]
    return (vector - units["mean"]) / units["scale"]


class MetaWeights:
    #: the fitted regression (configured_dir()/weights.npz), read on first use
    _fit: dict[str, np.ndarray] | None = None

    def __init__(
        self,
        queries: int = 64,
        probe_images: int = 64,
        patch: int = 4,
        regularization: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.queries = queries
        self.probe_images = probe_images
        self.patch = patch
        self.regularization = regularization
        self.seed = seed
        for name in ("queries", "probe_images", "patch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, not {value!r}")
        if not regularization > 0:
            raise ValueError(f"regularization must be > 0, not {regularization!r}")

    # -- features ------------------------------------------------------------------------
    def features(self, model: Any, clean: CleanData) -> tuple[np.ndarray, int]:
        """(the feature vector in ``FEATURES`` order, the suspected target label)."""
        rng = np.random.default_rng(self.seed)  # the same queries for every model
        lo, hi = clean.input_range
        shape = clean.input_shape
        last = _last_kernel(model)
        if last is None:
            norm_z = bias_z = np.zeros(clean.num_classes)
        else:
            kernel, bias = last
            norm_z = _robust_z(np.linalg.norm(kernel, axis=0))
            bias_z = _robust_z(bias)
        top = np.sort(norm_z)[::-1]
        second = float(top[1]) if len(top) > 1 else 0.0
        stds, kurts = _kernel_shapes(model)
        queries = rng.uniform(lo, hi, (self.queries, *shape)).astype(np.float32)
        answers = np.asarray(model.predict_on_batch(queries))
        labels = np.argmax(answers, axis=1)
        mode_share = np.bincount(labels, minlength=clean.num_classes).max() / len(labels)
        mean = answers.mean(axis=0).clip(1e-12, 1.0)
        entropy = float(-(mean * np.log(mean)).sum() / np.log(max(clean.num_classes, 2)))
        flip = self._probe(model, clean, rng)
        vector = np.array(
            [
                float(top[0]),
                second,
                float(top[0]) - second,
                float(np.max(bias_z)),
                float(np.mean(stds)) if stds else 0.0,
                float(np.max(stds)) if stds else 0.0,
                float(np.mean(kurts)) if kurts else 0.0,
                float(np.max(kurts)) if kurts else 0.0,
                float(mode_share),
                entropy,
                flip,
            ]
        )
        return np.nan_to_num(vector, nan=0.0, posinf=1e6, neginf=-1e6), int(np.argmax(norm_z))

    def _probe(self, model: Any, clean: CleanData, rng: np.random.Generator) -> float:
        """The share of patched clean images sent to the commonest label not their own."""
        n = min(self.probe_images, len(clean.x))
        if n == 0:
            return 0.0
        pick = rng.choice(len(clean.x), n, replace=False)
        x = np.array(clean.x[pick], np.float32)
        h, w = x.shape[1:3]
        size = min(self.patch, h, w)
        lo, hi = clean.input_range
        for i in range(n):
            r, c = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            x[i, r : r + size, c : c + size] = rng.uniform(lo, hi, (size, size, x.shape[3]))
        labels = np.argmax(np.asarray(model.predict_on_batch(x)), axis=1)
        moved = labels[labels != clean.y[pick]]
        if len(moved) == 0:
            return 0.0
        return float(np.bincount(moved).max() / n)

    # -- configure -----------------------------------------------------------------------
    def configure(self, training_dir: Path, out_dir: Path) -> None:
        """Features of every training model, a logistic regression fitted on them."""
        from sklearn.linear_model import LogisticRegression

        rows, labels, families = [], [], []
        for item in training_models(training_dir):
            clean = item.clean()
            vector, _ = self.features(item.load(), clean)
            rows.append(vector)
            labels.append(int(item.poisoned))
            families.append(family(clean))
        x, y = np.array(rows).reshape(len(rows), len(FEATURES)), np.array(labels)
        mean, scale = _moments(x) if len(x) else (np.zeros(len(FEATURES)), np.ones(len(FEATURES)))
        names = sorted({f for f in families if families.count(f) >= 2})
        moments = [_moments(x[[f == name for f in families]]) for name in names]
        units = {
            "mean": mean,
            "scale": scale,
            "families": np.array(names, dtype=str),
            "family_mean": np.array([m for m, _ in moments]).reshape(len(names), len(FEATURES)),
            "family_scale": np.array([s for _, s in moments]).reshape(len(names), len(FEATURES)),
        }
        standard = np.array([_standardise(v, f, units) for v, f in zip(x, families, strict=True)])
        if len(set(labels)) < 2:  # one class only: answer its share
            coef, intercept = np.zeros(len(FEATURES)), np.array([0.0])
            prior = float(np.mean(y)) if len(y) else 0.5
            intercept[0] = np.log(max(prior, 1e-6) / max(1 - prior, 1e-6))
        else:
            fit = LogisticRegression(C=self.regularization, max_iter=1000)
            fit.fit(standard.reshape(len(y), len(FEATURES)), y)
            coef, intercept = fit.coef_[0], fit.intercept_
        np.savez(
            out_dir / "weights.npz",
            **units,
            coef=coef,
            intercept=intercept,
            features=np.array(FEATURES),
            models=np.array(len(y)),
            backdoored=np.array(int(y.sum())),
        )

    # -- detect --------------------------------------------------------------------------
    def _weights(self) -> dict[str, np.ndarray]:
        if self._fit is None:
            folder = configured_dir()
            if folder is None:
                raise RuntimeError("meta-weights needs its configure step (configure = true)")
            keys = ("mean", "scale", "coef", "intercept", "families", "family_mean", "family_scale")
            with np.load(folder / "weights.npz") as npz:
                self._fit = {k: npz[k] for k in keys}
        return self._fit

    def detect(self, model: Any, clean: CleanData) -> Detection:
        fit = self._weights()
        vector, target = self.features(model, clean)
        z = float(_standardise(vector, family(clean), fit) @ fit["coef"] + fit["intercept"][0])
        score = 1.0 / (1.0 + np.exp(-max(-50.0, min(50.0, z))))
        return Detection(
            score=float(score),
            target_labels=[target],
            extra={
                "features": dict(zip(FEATURES, (round(float(v), 4) for v in vector), strict=True))
            },
        )
