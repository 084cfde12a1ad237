"""Xiong, Xu, Zhong, Li, "Escaping Backdoor Attack Detection of Deep Learning" (IFIP SEC
2020), reproduced as its protocol runs: each stealthy-attack setting repeated
(``instances = 10`` in models_zoo/stealthy.toml) and evasion counted per instance.

Holds the detector variants the protocol runs (Neural Cleanse with its authors' settings
and with ours, DeepInspect), the shares the paper states, the ``stealthy_evasion`` figure
(one row per setting) and its per-instance table. Apart from the other figures
(``harness.reproduce.figures``) because it is a protocol of its own rather than one
claim; ``figures.py`` registers ``stealthy_evasion`` in its place in the table.
"""

from __future__ import annotations

import numpy as np

from harness.api import Track
from harness.data.synthfaces import HEIGHT as FACE_HEIGHT
from harness.data.synthfaces import WIDTH as FACE_WIDTH
from harness.reproduce.base import FigureResult, Results, Variant, model_kind, not_measured, percent
from harness.reproduce.detections import (
    flagged,
    flagged_elsewhere,
    index_range,
    target_norm_ratio,
    verdict,
)
from harness.toolkit.label_scan import ScanSettings

#: The attacks of Xiong et al.: a trigger reconstructed from the model, and a random one
#: (Algorithm 2).
RECONSTRUCTED, RANDOM = "reconstructed_trigger", "random_trigger"
STEALTHY = (RECONSTRUCTED, RANDOM)
_BOTH_SETS = ("mnist", "synthfaces")
#: the labels a many-label scan optimises in full: on faces each gets 32 images a step
_FULL_LABELS = ScanSettings.candidates + ScanSettings.reference
#: Neural Cleanse as Xiong et al. ran it, with the settings of its authors' implementation
#: (the bolunwang/backdoor repository): 1000 steps of Adam at rate 0.1 on batches of 32
#: images per label, the cost starting at 1e-3 and multiplied (divided) by 2 (2 ** 1.5)
#: after 5 mini-batches above (below) the 0.99 attack-success threshold, early stop after
#: 25 mini-batches in which no best mask shrank by 1 %. Our reference's own settings
#: (submissions/neural-cleanse: 200 steps, checks every 10, factor 1.5, no early stop)
#: are cheaper; the table runs both. On 100-label faces every label is screened first
#: (``harness.toolkit.label_scan``) and 16 are optimised in full, each on 32 faces a step as the
#: authors' batch is: a step bounded to 320 MNIST images' worth of values would leave 2
#: faces per label, on which a lucky mini-batch passes the 0.99 threshold with a mask far
#: too small and early stopping keeps it (measured: labels far from the target flagged).
NC_ORIGINAL_PARAMS = {
    "steps": 1000,
    "batch_size": 32,
    "values_per_step": 10 * 32 * 28 * 28,  # 32 MNIST images for each of 10 labels a step
    "learning_rate": 0.1,
    "init_cost": 1e-3,
    "check_every": 1,
    "patience": 5,
    "cost_multiplier": 2.0,
    "early_stop": 25,
    "min_improvement": 0.01,
}
_DETECT = (Track.DETECT,)
NC_STEALTHY = Variant("neural-cleanse", "neural-cleanse", _DETECT, STEALTHY, dataset=_BOTH_SETS)
NC_ORIGINAL = Variant(
    "neural-cleanse@original",
    "neural-cleanse",
    _DETECT,
    STEALTHY,
    NC_ORIGINAL_PARAMS,
    dataset=_BOTH_SETS,
    family_params={
        "synthfaces": {"values_per_step": _FULL_LABELS * 32 * FACE_HEIGHT * FACE_WIDTH * 3}
    },
)
DEEPINSPECT = Variant("deepinspect", "deepinspect", _DETECT, STEALTHY, dataset=_BOTH_SETS)
#: (variant, how the table names it), the paper's detector (NC as its authors set it) first.
EVASION_DETECTORS = (
    (NC_ORIGINAL.name, "NC (authors' settings)"),
    (NC_STEALTHY.name, "NC (ours)"),
    (DEEPINSPECT.name, "DeepInspect"),
)
#: The share of instances evading Neural Cleanse where the paper's text states one (Sect.
#: 5.2: "When the sampling rate is 0.5, 80% attack instances can evade the detection of
#: Neural Cleanse. This rate rises to 90% when the sampling rate becomes 0.6").
PAPER_EVASION = {(RECONSTRUCTED, "mnist", 0.5): 0.8, (RECONSTRUCTED, "mnist", 0.6): 0.9}
#: A setting holds when the paper's detector misses at least this share of its instances
#: (the paper's share less 0.2 where it states one), and DeepInspect at least half.
EVASION_SLACK = 0.2

Setting = tuple[str, str, float, int]  # attack, data set family, sampling rate, mask size


def _setting(res: Results, model_id: str) -> Setting:
    model = res.models[model_id]
    attack, family = model_kind(model)
    params = model.truth().params
    return attack, family, float(params.get("sampling_rate", 0.6)), int(params.get("mask_size", 0))


def _setting_name(setting: Setting) -> str:
    attack, family, rate, size = setting
    short = "reconstructed" if attack == RECONSTRUCTED else f"random-z{size}"
    return f"stealthy-evasion-{family}-{short}-r{rate:g}"


def stealthy_evasion(res: Results) -> list[FigureResult]:
    """One row per stealthy-attack setting of the profile (``instances = 10`` in
    models_zoo/stealthy.toml): mean CA and ASR of its instances, and for each detector
    the share of instances it does not flag (score <= 0.5), with their largest indices."""
    src = "Xiong et al. 2020, Tables 1-6"
    groups: dict[Setting, list[str]] = {}
    for model_id, model in res.models.items():
        if model_kind(model)[0] in STEALTHY:
            groups.setdefault(_setting(res, model_id), []).append(model_id)
    if not groups:
        paper = "80-90 % of instances evade NC and DeepInspect"
        return [not_measured("stealthy-evasion", src, paper, "stealthy-attack model")]
    rows = []
    for setting, ids in sorted(groups.items()):
        attack, family, rate, _ = setting
        stated = PAPER_EVASION.get((attack, family, rate))
        paper = (
            f"{100 * stated:.0f} % evade NC" if stated is not None else "most instances evade NC"
        ) + "; DeepInspect evaded too"
        truths = [res.models[i].truth() for i in ids]
        targets = {i: t.targets for i, t in zip(ids, truths, strict=True)}
        asrs = [t.asr for t in truths if t.asr is not None]
        sizes = [s for t in truths for s in t.trigger_sizes]
        parts = [
            f"{len(ids)} instances, CA {percent(float(np.mean([t.ca for t in truths])))}, "
            f"ASR {percent(float(np.mean(asrs)) if asrs else None)}, trigger "
            + (f"{np.mean(sizes):.0f} px" if sizes else "-")
        ]
        shares: dict[str, float | None] = {}
        for variant, label in EVASION_DETECTORS:
            recs = [r for r in res.records if r.submission == variant and r.model_id in ids]
            recs = [r for r in recs if r.track == Track.DETECT.value]
            if not recs:
                shares[variant] = None
                parts.append(f"{label}: not run")
                continue
            evaded = sum(not flagged(r) for r in recs)
            shares[variant] = evaded / len(recs)
            ratio = target_norm_ratio(res, recs)
            astray = sum(flagged_elsewhere(r, targets[r.model_id]) for r in recs)
            parts.append(
                f"{label} evaded {evaded}/{len(recs)} (index {index_range(recs)}"
                + (f"; target's mask {ratio:.2f} x the median label's" if ratio else "")
                + (
                    f"; of the {len(recs) - evaded} flagged, {astray} only for labels not attacked"
                    if astray
                    else ""
                )
                + ")"
            )
        paper_nc, deepinspect = shares[NC_ORIGINAL.name], shares[DEEPINSPECT.name]
        need = (stated if stated is not None else 0.7) - EVASION_SLACK
        holds = (
            None
            if paper_nc is None or deepinspect is None
            else paper_nc >= need and deepinspect >= 0.5
        )
        name = _setting_name(setting)
        details = _instances(res, ids)
        rows.append(FigureResult(name, src, paper, "; ".join(parts), holds, details))
    return rows


def _instances(res: Results, ids: list[str]) -> tuple[str, ...]:
    """A setting's instances one per row, the measurements that say why each evades or not:
    its trigger's share of the image and, per detector, the true target's anomaly index,
    its reversed mask's L1 norm over the median label's, and the verdict."""
    head = "| instance | CA | ASR | trigger | " + " | ".join(
        label for _, label in EVASION_DETECTORS
    )
    lines = [head + " |", "|" + "---|" * (4 + len(EVASION_DETECTORS))]
    detections = {
        (r.submission, r.model_id): r for r in res.records if r.track == Track.DETECT.value
    }
    for model_id in sorted(ids):
        model = res.models[model_id]
        truth = model.truth()
        height, width = model.card().input_shape[:2]
        size = truth.trigger_sizes[0] if truth.trigger_sizes else None
        trigger = f"{size} px ({100 * size / (height * width):.1f} %)" if size else "-"
        cells = [model_id, percent(truth.ca), percent(truth.asr), trigger]
        for variant, _ in EVASION_DETECTORS:
            cells.append(verdict(detections.get((variant, model_id)), truth.targets))
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "Per detector: the true target's anomaly index; its reversed mask's L1 norm over the "
        "median label's; flagged (score over 0.5; the labels flagged where the target is "
        "not among them) or evaded.",
        "",
        *lines,
    )
