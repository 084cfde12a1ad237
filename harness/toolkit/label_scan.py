"""Neural Cleanse over every label of a model, many labels included.

Neural Cleanse (Wang, Yao, Shan, Li, Viswanath, Zheng, Zhao; IEEE S&P 2019) optimises one
trigger per label (``harness.toolkit.reverse.reverse_engineer``) and flags the labels whose
trigger norms are outliers. ``scan_labels`` runs it over a whole model within a bounded
cost per step: up to ``ScanSettings.full_labels`` labels every label in full; beyond, as
the paper did on its 1283-label YouTube Face model, a short screening of every label
first. A submission can ``from harness.toolkit.label_scan import scan_labels``.

Kept apart from ``harness.toolkit.reverse``: the reconstructed-trigger attack builds its models
with that module, so any edit to it would retrain those models in every zoo.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.toolkit.reverse import (
    ReversedTrigger,
    ReverseSettings,
    anomaly_index,
    reverse_engineer,
)


def anomaly_index_against(
    l1_norms: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Neural Cleanse's outlier score, ``harness.toolkit.reverse.anomaly_index``, with the median
    and MAD taken from ``reference`` when given (a sample of the labels, as
    ``scan_labels`` uses on many classes), else from ``l1_norms`` themselves."""
    if reference is None:
        return anomaly_index(np.asarray(l1_norms, np.float64).tolist())
    norms = np.asarray(l1_norms, np.float64)
    ref = np.asarray(reference, np.float64)
    median = np.median(ref)
    mad = 1.4826 * np.median(np.abs(ref - median))
    if mad == 0:
        return np.zeros_like(norms)
    return (median - norms) / mad


def per_label_batch(batch_size: int, images_per_step: int, labels: int) -> int:
    """Clean images per label and step: ``batch_size``, shrunk so that all labels together
    stay within ``images_per_step`` (what keeps 100-class face models affordable)."""
    return max(1, min(batch_size, images_per_step // labels))


@dataclass(frozen=True)
class ScanSettings:
    """How ``scan_labels`` covers a model with many labels.

    Neural Cleanse (Wang et al., S&P 2019) cuts its cost on the 1283-label YouTube Face
    model this way: a short optimisation for every label first, then the full one only for
    the few labels whose screened triggers came out smallest. The anomaly index needs the
    norms of ordinary labels too, and the shortlist alone is biased towards small ones, so
    here (a harness choice) a random sample of the other labels gets the same full
    optimisation and sets the median and MAD. Up to ``full_labels`` labels every label is
    optimised in full, as the paper's default procedure does. At the defaults a 1283-label
    model costs 1283 x 2 x 30 stamped images to screen and 16 x 16 x 300 to optimise in
    full: about 1.6 times a 10-label model's full optimisation at 32 images per label.
    """

    full_labels: int = 32  # at most this many labels: no screening
    screen_steps: int = 30  # optimisation steps of the screening, per label
    screen_batch: int = 2  # clean images per label and screening step
    candidates: int = 6  # the smallest screened triggers, optimised in full
    reference: int = 10  # other labels drawn at random, optimised in full
    full_batch: int = 16  # at most this many clean images per label and full step


@dataclass(frozen=True)
class LabelScan:
    """Every label's trigger norm and anomaly index, and the triggers optimised in full."""

    triggers: dict[int, ReversedTrigger]  # the labels optimised in full
    l1: np.ndarray  # (K,): the full optimisation's norm, else the screening's
    index: np.ndarray  # (K,): anomaly index against the reference labels
    reference: list[int]  # labels whose norms set the median and MAD
    screened: bool  # whether screening ran (more than ScanSettings.full_labels labels)
    per_label_batch: int  # clean images per label and step of the full optimisation


def scan_labels(
    model: Any,
    x_clean: np.ndarray,
    num_classes: int,
    settings: ReverseSettings,
    input_range: tuple[float, float] = (0.0, 1.0),
    scan: ScanSettings | None = None,
    images_per_step: int = 640,
) -> LabelScan:
    """Neural Cleanse over every label of a model (see ScanSettings): each label's trigger
    norm and anomaly index. ``settings.batch_size`` is the most clean images per label and
    step; no step optimises more than ``images_per_step`` stamped images (labels x images
    per label, at least one each), which bounds a step's cost whatever the class count."""
    scan = scan or ScanSettings()
    labels = list(range(num_classes))

    def batch_for(n_labels: int) -> int:
        return per_label_batch(settings.batch_size, images_per_step, n_labels)

    if num_classes <= scan.full_labels:
        batch = batch_for(num_classes)
        full = dataclasses.replace(settings, batch_size=batch)
        found = reverse_engineer(model, x_clean, labels, full, input_range)
        l1 = np.array([r.l1 for r in found])
        triggers = {r.target: r for r in found}
        return LabelScan(triggers, l1, anomaly_index(l1.tolist()), labels, False, batch)
    screen = dataclasses.replace(
        settings,
        steps=scan.screen_steps,
        batch_size=scan.screen_batch,
        check_every=5,
        patience=2,
        early_stop=0,
    )
    chunk = max(1, images_per_step // scan.screen_batch)
    l1 = np.empty(num_classes)
    for start in range(0, num_classes, chunk):
        for r in reverse_engineer(
            model, x_clean, labels[start : start + chunk], screen, input_range
        ):
            l1[r.target] = r.l1  # a label no mask held for keeps its last (larger) mask
    candidates = [int(k) for k in np.argsort(l1, kind="stable")[: scan.candidates]]
    rest = np.setdiff1d(labels, candidates)
    rng = np.random.default_rng(settings.seed + 2)
    picked = rng.choice(rest, min(scan.reference, len(rest)), replace=False)
    reference = sorted(int(k) for k in picked)
    chosen = candidates + reference
    batch = min(scan.full_batch, batch_for(len(chosen)))
    full = dataclasses.replace(settings, batch_size=batch)
    found = reverse_engineer(model, x_clean, chosen, full, input_range)
    for r in found:
        l1[r.target] = r.l1
    index = anomaly_index_against(l1, l1[reference])
    return LabelScan({r.target: r for r in found}, l1, index, reference, True, batch)
