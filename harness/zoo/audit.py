"""Leakage audit: can the public bundle alone, without running the model, tell a clean
model from a backdoored one?

Features come from what a submission receives, read as files: the bundle's file sizes,
the zip members' names, sizes and timestamps, the model config (layer names and
structure), the card as the sandbox stages it (with an anonymous id), and per-tensor weight statistics (mean, std, mean |w|, max |w|,
L2 norm, kurtosis) read straight from the weights file. Simple classifiers (logistic
regression and a depth-3 random forest) are scored by repeated stratified k-fold cross
validation; the audit fails when any of them reaches ROC-AUC above ``AUC_LIMIT``.
A Trojan-detection contest once leaked its labels through BatchNorm counters; this is
the check that ours does not.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.runner import anonymous_id, staged_card
from harness.zoo.records import TruthRecord
from harness.zoo.store import ZooModel

AUC_LIMIT = 0.6
STATS = ("mean", "std", "mean_abs", "max_abs", "l2", "kurtosis")


def _tensor_stats(w: np.ndarray) -> list[float]:
    w = np.asarray(w, np.float64).ravel()
    std = w.std()
    kurt = float(np.mean((w - w.mean()) ** 4) / std**4) if std > 0 else 0.0
    return [w.mean(), std, np.abs(w).mean(), np.abs(w).max(), np.linalg.norm(w), kurt]


def _weights(raw: bytes) -> dict[str, np.ndarray]:
    import h5py

    found: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(raw), "r") as f:
        f.visititems(
            lambda name, obj: (
                found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return found


def bundle_features(public_dir: Path) -> dict[str, float]:
    """Numeric features of one public bundle (a name -> value map; names vary by shape)."""
    feats: dict[str, float] = {}
    for f in sorted(public_dir.iterdir()):
        if f.name == "card.json":
            continue  # a submission sees the card rewritten with an anonymous id (below)
        feats[f"file_size:{f.name}"] = f.stat().st_size
        feats[f"file_mtime:{f.name}"] = f.stat().st_mtime
    staged = staged_card(public_dir, anonymous_id("audit", "model"))  # what a run stages
    feats["file_size:card.json"] = len(staged)
    feats["card_hash"] = int(hashlib.sha256(staged.encode()).hexdigest()[:8], 16)
    with zipfile.ZipFile(public_dir / "model.keras") as z:
        for info in z.infolist():
            feats[f"zip_size:{info.filename}"] = info.file_size
            feats[f"zip_time:{info.filename}"] = float("".join(f"{v:02d}" for v in info.date_time))
        config = json.loads(z.read("config.json"))
        weights = _weights(z.read("model.weights.h5"))
    layers = config["config"]["layers"]
    names = [layer["config"]["name"] for layer in layers]
    feats["layers"] = len(layers)
    feats["structure"] = int(hashlib.sha256("|".join(names).encode()).hexdigest()[:8], 16)
    feats["params"] = sum(w.size for w in weights.values())
    everything = np.concatenate([w.ravel() for w in weights.values()]) if weights else np.zeros(1)
    for stat, value in zip(STATS, _tensor_stats(everything), strict=True):
        feats[f"all:{stat}"] = value
    for path, w in weights.items():
        for stat, value in zip(STATS, _tensor_stats(w), strict=True):
            feats[f"{path}:{stat}"] = value
    return feats


#: Feature groups, reported apart so that a failing audit says where the signal is.
WEIGHT_PREFIXES = ("layers/", "all:")


def is_weight_feature(name: str) -> bool:
    return name.startswith(WEIGHT_PREFIXES)


@dataclass(frozen=True)
class AuditResult:
    aucs: dict[str, float]  # classifier -> mean cross-validated ROC-AUC, every feature
    n_clean: int
    n_backdoored: int
    n_features: int
    #: group -> aucs: the feature groups alone, each data set's models alone and, where
    #: the models include clean counterparts, the role comparisons of ROLE_PAIRS
    by_group: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        return max(self.aucs.values())

    @property
    def passed(self) -> bool:
        return self.worst <= AUC_LIMIT


def feature_matrix(models: list[ZooModel]) -> tuple[np.ndarray, list[str]]:
    rows = [bundle_features(m.public_dir) for m in models]
    names = sorted(set().union(*rows))
    x = np.array([[row.get(n, 0.0) for n in names] for row in rows], np.float64)
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return x, names


def cross_validated_aucs(
    x: np.ndarray, y: np.ndarray, *, folds: int = 5, repeats: int = 20, seed: int = 0
) -> dict[str, float]:
    """Mean out-of-fold ROC-AUC of each simple classifier over repeated stratified k-fold."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import RepeatedStratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = max(2, min(folds, int(np.bincount(y).min())))
    makers = {
        "logistic_regression": lambda: make_pipeline(
            StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)
        ),
        "random_forest": lambda: RandomForestClassifier(
            n_estimators=100, max_depth=3, random_state=seed
        ),
    }
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    splits = list(splitter.split(x, y))
    aucs = {}
    for name, make in makers.items():
        per_repeat = []
        for r in range(repeats):
            scores = np.zeros(len(y))
            for train, test in splits[r * folds : (r + 1) * folds]:
                clf = make().fit(x[train], y[train])
                scores[test] = clf.predict_proba(x[test])[:, 1]
            per_repeat.append(roc_auc_score(y, scores))
        aucs[name] = float(np.mean(per_repeat))
    return aucs


#: Role comparisons (positive side first), over the data-poisoning attacks' models and the
#: plain clean ones, data set by data set: where the signal comes from. A counterpart
#: trains on its attack's stamped images with their true labels
#: (harness.attacks.counterpart), so "counterparts vs plain clean" is the data pipeline
#: alone and "backdoored vs counterparts" the backdoor alone. (Pruning-aware and TrojanNet
#: are left out: their counterparts share their shape, not the plain models'.)
ROLE_PAIRS = (("backdoored", "counterpart"), ("counterpart", "clean"))
_ROLE_NAMES = {"backdoored": "backdoored", "counterpart": "counterparts", "clean": "plain clean"}


def _role_groups(
    truths: list[TruthRecord], x: np.ndarray, datasets: np.ndarray, repeats: int
) -> dict[str, dict[str, float]]:
    from harness.attacks import RECIPES

    roles = np.array([t.role for t in truths])
    own = {name for name, recipe in RECIPES.items() if recipe.builds_own_counterpart}
    data_poisoning = np.array([t.attack not in own for t in truths])
    groups = {}
    for dataset in sorted(set(datasets)):
        for positive, negative in ROLE_PAIRS:
            rows = (datasets == dataset) & data_poisoning & np.isin(roles, (positive, negative))
            side = (roles[rows] == positive).astype(np.int64)
            if min(np.bincount(side, minlength=2)) >= 2:
                name = f"{dataset}: {_ROLE_NAMES[positive]} vs {_ROLE_NAMES[negative]}"
                groups[name] = cross_validated_aucs(x[rows], side, repeats=repeats)
    return groups


def audit_models(models: list[ZooModel], *, repeats: int = 20) -> AuditResult:
    """Run the audit over built models (their truth gives the labels, never the features)."""
    known = [(m, t) for m in models if (t := m.truth()).poisoned is not None]  # not imported
    models, truths = [m for m, _ in known], [t for _, t in known]
    labels = np.array([int(t.poisoned) for t in truths], dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("the audit needs models whose truth is known")
    if labels.min() == labels.max() or min(np.bincount(labels)) < 2:
        raise ValueError("the audit needs at least two clean and two backdoored models")
    x, names = feature_matrix(models)
    aucs = cross_validated_aucs(x, labels, repeats=repeats)
    weights = np.array([is_weight_feature(n) for n in names])
    by_group = {
        f"{group} alone": cross_validated_aucs(x[:, cols], labels, repeats=repeats)
        for group, cols in (("metadata", ~weights), ("weight statistics", weights))
        if cols.any()
    }
    datasets = np.array([m.card().dataset for m in models])
    if len(set(datasets)) > 1:  # one data set's models alone, where it has both labels
        for name in sorted(set(datasets)):
            rows = datasets == name
            if min(np.bincount(labels[rows], minlength=2)) >= 2:
                by_group[f"{name} models alone"] = cross_validated_aucs(
                    x[rows], labels[rows], repeats=repeats
                )
    by_group.update(_role_groups(truths, x, datasets, repeats))
    return AuditResult(aucs, int((labels == 0).sum()), int(labels.sum()), len(names), by_group)
