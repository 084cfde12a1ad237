"""The report's plots (PNG, matplotlib's Agg backend, no display needed): the attack x
defense heatmaps, ROC curves per data set, CA vs ASR before and after repair, recovered vs
true trigger masks, and fuzzing's activation rates.

Each function draws one figure from stored records and returns False, writing nothing,
when the run holds nothing to draw.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.report.matrix import Family, Matrix
from harness.report.numbers import human
from harness.results import TaskRecord
from harness.scoring import metrics as formulas
from harness.tracks.detect import DETECT, DetectOutcome, DetectOutputs
from harness.tracks.fuzz import FUZZ, FuzzOutcome
from harness.tracks.repair import REPAIR, RepairOutcome

#: Colour map of the matrices: red = evaded (chance or worse), green = caught.
HEAT_CMAP = "RdYlGn"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heat_colour(goodness: float | None) -> str:
    """The matrices' colour for a cell (grey when not measured), as #rrggbb."""
    if goodness is None:
        return "#e5e5e5"
    import matplotlib

    cmap = matplotlib.colormaps[HEAT_CMAP]
    return str(matplotlib.colors.to_hex(cmap(0.1 + 0.8 * goodness)))


def _save(fig: Any, path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return True


def heatmap(cols: list[Family], m: Matrix, path: Path) -> bool:
    """One track metric's matrix: a row per submission, a column per attack family,
    the groups separated by white lines and named above."""
    if not cols or not m.rows:
        return False
    plt = _pyplot()
    values = np.array([[m.cells.get((s, f.attack)) for f in cols] for s in m.rows], dtype=object)
    good = np.array(
        [[np.nan if v is None else m.heat.goodness(v) for v in row] for row in values], dtype=float
    )
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(cols), 1.4 + 0.42 * len(m.rows)))
    cmap = plt.get_cmap(HEAT_CMAP).with_extremes(bad="#e5e5e5")
    ax.imshow(0.1 + 0.8 * good, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, human(m.heat.metric, v), ha="center", va="center", fontsize=7)
    ax.set_xticks(
        range(len(cols)),
        [f.attack.replace("_", " ") for f in cols],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_yticks(range(len(m.rows)), m.rows, fontsize=8)
    start = 0
    for j in range(1, len(cols) + 1):
        if j == len(cols) or cols[j].group != cols[start].group:
            ax.text(
                (start + j - 1) / 2,
                -0.75,
                cols[start].group,
                ha="center",
                fontsize=8,
                weight="bold",
            )
            if j < len(cols):
                ax.axvline(j - 0.5, color="white", linewidth=3)
            start = j
    ax.set_title(m.title, fontsize=9, pad=24)
    return _save(fig, path)


def _detect_scores(recs: list[TaskRecord]) -> tuple[list[int], np.ndarray]:
    known = [r for r in recs if r.facts.poisoned is not None]
    # A task that ran always stored its score; a failed one counts as missing (0.5).
    raw = [DetectOutcome.of(r).score if r.status == "ok" else None for r in known]
    scores, _ = formulas.fill_missing_scores(raw)
    return [int(bool(r.facts.poisoned)) for r in known], scores


def roc_curves(records: list[TaskRecord], dataset: str, path: Path) -> bool:
    """ROC curves of every detector on one data set's models (a failed task's score 0.5)."""
    from sklearn.metrics import roc_curve

    subs = sorted({r.submission for r in records if r.track == DETECT.name})
    curves = []
    for sub in subs:
        labels, scores = _detect_scores(
            [r for r in records if r.track == DETECT.name and r.submission == sub]
        )
        if len(set(labels)) == 2:
            fpr, tpr, _ = roc_curve(labels, scores)
            curves.append((sub, fpr, tpr, formulas.roc_auc(labels, scores)))
    if not curves:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1)
    for sub, fpr, tpr, auc in curves:
        ax.step(fpr, tpr, where="post", label=f"{sub} (AUC {auc:.2f})")
    ax.set_xlabel("false positive rate (clean models flagged)")
    ax.set_ylabel("true positive rate (backdoored models flagged)")
    ax.set_title(f"Detection ROC on {dataset}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def ca_asr(records: list[TaskRecord], submission: str, path: Path) -> bool:
    """CA and ASR of each model before (hollow) and after (filled) the submission's repair."""
    recs = [
        r
        for r in records
        if r.track == REPAIR.name and r.submission == submission and r.status == "ok"
    ]
    outcomes = [(RepairOutcome.of(r), r.facts.poisoned) for r in recs]
    pts = [(o.ca_before, o.asr_before, o.ca, o.asr, poisoned) for o, poisoned in outcomes]
    back = [p for p in pts if p[4] and None not in p[:4]]
    clean = [p for p in pts if p[4] is False and p[0] is not None and p[2] is not None]
    if not back and not clean:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    for ca_b, asr_b, ca_a, asr_a, _ in back:
        ax.annotate(
            "",
            (ca_a, asr_a),
            (ca_b, asr_b),
            arrowprops={"arrowstyle": "->", "color": "#888888", "lw": 0.8},
        )
    if back:
        b = np.array([p[:4] for p in back], dtype=float)
        ax.scatter(
            b[:, 0], b[:, 1], facecolors="none", edgecolors="#c0392b", label="backdoored, before"
        )
        ax.scatter(b[:, 2], b[:, 3], color="#c0392b", label="backdoored, after")
    if clean:
        c = np.array([p[:4] for p in clean], dtype=float)
        ax.scatter(
            c[:, 0],
            np.zeros(len(c)),
            facecolors="none",
            edgecolors="#2471a3",
            marker="s",
            label="clean, before",
        )
        ax.scatter(c[:, 2], np.zeros(len(c)), color="#2471a3", marker="s", label="clean, after")
    cas = [float(v) for p in back + clean for v in (p[0], p[2]) if v is not None]
    ax.set_xlim(max(0.0, min(cas) - 0.05), 1.01)
    ax.set_ylim(-0.04, 1.04)
    ax.set_xlabel("clean accuracy (CA)")
    ax.set_ylabel("attack success rate (ASR)")
    ax.set_title(f"{submission}: before and after repair", fontsize=10)
    ax.legend(fontsize=7, loc="center left")
    return _save(fig, path)


def trigger_masks(
    records: list[TaskRecord],
    submission: str,
    true_mask: Callable[[str], np.ndarray | None],
    path: Path,
) -> bool:
    """Per backdoored model: its true trigger mask (``true_mask(model_id)``; None when the
    zoo is not here) and the mask the submission reconstructed."""
    recs = [
        r
        for r in records
        if r.track == DETECT.name
        and r.submission == submission
        and r.facts.poisoned
        and DetectOutputs.of(r).trigger_mask is not None
    ]
    if not recs:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(recs), figsize=(1.5 * len(recs) + 0.6, 3.4), squeeze=False)
    for j, r in enumerate(recs):
        truth = true_mask(r.model_id)
        for i, (mask, what) in enumerate(
            ((truth, "true"), (DetectOutputs.of(r).trigger_mask, "recovered"))
        ):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if mask is None:
                ax.text(
                    0.5,
                    0.5,
                    "not here",
                    ha="center",
                    va="center",
                    fontsize=7,
                    transform=ax.transAxes,
                )
            else:
                ax.imshow(mask, cmap="gray", vmin=0, vmax=1)
            if j == 0:
                ax.set_ylabel(what, fontsize=8)
        iou = DetectOutcome.of(r).trigger_iou
        axes[0][j].set_title(f"{r.facts.attack}\nIoU {human('trigger_iou', iou)}", fontsize=6)
    fig.suptitle(f"{submission}: true vs recovered trigger masks", fontsize=9)
    return _save(fig, path)


def activation_rates(records: list[TaskRecord], submission: str, path: Path) -> bool:
    """The submission's backdoor activation rate on every model, backdoored models red,
    clean ones (the false-positive baseline) blue."""
    recs = sorted(
        (
            r
            for r in records
            if r.track == FUZZ.name and r.submission == submission and r.facts.poisoned is not None
        ),
        key=lambda r: (not r.facts.poisoned, r.facts.attack or "", r.model_id),
    )
    if not recs:
        return False
    plt = _pyplot()
    rates = [float(FuzzOutcome.of(r).activation_rate or 0.0) for r in recs]
    colours = ["#c0392b" if r.facts.poisoned else "#2471a3" for r in recs]
    fig, ax = plt.subplots(figsize=(1.0 + 0.32 * len(recs), 3.2))
    ax.bar(range(len(recs)), rates, color=colours)
    ax.set_xticks(range(len(recs)), [r.model_id for r in recs], rotation=75, ha="right", fontsize=6)
    ax.set_ylim(0, 1)
    ax.set_ylabel("backdoor activation rate")
    ax.set_title(
        f"{submission}: activation rate per model (red backdoored, blue clean)", fontsize=9
    )
    return _save(fig, path)
