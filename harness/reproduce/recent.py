"""The attacks 2019-2023 defense papers are judged against, each against the reference
defenses its paper (or the defense papers since) measured it with: Neural Cleanse (Wang et
al., S&P 2019) on the detect track, STRIP (Gao et al., ACSAC 2019) on the filter track and
Fine-Pruning (Liu, Dolan-Gavitt, Garg, RAID 2018) on the repair track.

One row per attack, over the instances of the ``recent-attacks`` profile (five of each,
models_zoo/recent-attacks.toml): the attack's CA and ASR (mean, and the range over its
instances), how many instances Neural Cleanse flags (and how many of the clean models of
the same training), STRIP's filter AUC and the ASR left after Fine-Pruning, beside what
the attack's paper reports (``PAPER``). A row holds when the backdoor takes as its paper
says (mean ASR at least ``TAKES``) and the paper's evasion claim holds where it makes one
(``EVADES``: Neural Cleanse flags at most half the instances, STRIP's AUC stays under
``STRIP_CAUGHT``, and pruning alone, as WaNet's paper ran it, leaves an ASR of at least
``PRUNING_MISSES``; the ASR after the full Fine-Pruning, with its fine-tuning, is shown
beside it). What the paper claims against a defense we do not run is quoted, not
measured. The per-instance lines under the table give each instance's numbers.
"""

from __future__ import annotations

import numpy as np

from harness.api import Track
from harness.reproduce.base import (
    CLEAN,
    FigureResult,
    Results,
    Variant,
    mean_of_ok,
    not_measured,
    percent,
)
from harness.reproduce.detections import flagged, largest_index
from harness.results import TaskRecord
from harness.tracks import outcome_field

#: The five attacks, in the matrix's order (clean-label, warping, adaptive).
RECENT = ("sig", "label_consistent", "refool", "wanet", "adaptive_blend")
NC_RECENT = Variant("neural-cleanse", "neural-cleanse", (Track.DETECT,), (*RECENT, CLEAN))
STRIP_RECENT = Variant("strip", "strip", (Track.FILTER,), RECENT)
FP_RECENT = Variant(
    "fine-pruning@no-goodnet", "fine-pruning", (Track.REPAIR,), RECENT, {"goodnet": False}
)
#: Pruning without the fine-tuning: what WaNet's paper measured ("Fine-Pruning" there plots
#: the accuracies against the number of neurons pruned).
PRUNE_RECENT = Variant(
    "fine-pruning@prune-only",
    "fine-pruning",
    (Track.REPAIR,),
    RECENT,
    {"mode": "prune-only", "goodnet": False},
)
VARIANTS = (NC_RECENT, STRIP_RECENT, FP_RECENT, PRUNE_RECENT)
#: A backdoor "takes" at this mean ASR over the instances.
TAKES = 0.8
#: STRIP catches an attack whose filter AUC reaches this (0.5: chance).
STRIP_CAUGHT = 0.75

#: (source, what the paper reports) per attack. Where a paper's text was not at hand its
#: claim is quoted from its abstract, and a number from the authors' own repository is
#: marked so (docs/REPRODUCTION-recent.md says which).
PAPER: dict[str, tuple[str, str]] = {
    "sig": (
        "Barni, Kallas, Tondi 2019",
        "a backdoor planted without poisoning any label (MNIST, GTSRB)",
    ),
    "label_consistent": (
        "Turner, Tsipras, Madry 2019",
        "hardened target-class images + a faint 4-corner trigger, labels kept (CIFAR-10)",
    ),
    "refool": (
        "Liu, Ma, Bailey, Lu 2020",
        "ASR >= 75.16 % injecting < 3.27 % of the training data (5 data sets)",
    ),
    "wanet": (
        "Nguyen, Tran 2021",
        "MNIST CA 99.52 %, ASR 99.86 % (authors' README); NC, STRIP, pruning miss it",
    ),
    "adaptive_blend": (
        "Qi et al. 2023",
        "bypasses latent-separation defenses at a low poisoning rate (CIFAR-10)",
    ),
}
#: The attacks whose paper claims Neural Cleanse, STRIP and pruning miss them (measured here).
EVADES = frozenset({"wanet"})
#: Pruning misses a backdoor that keeps at least this ASR.
PRUNING_MISSES = 0.5


def _spread(recs: list[TaskRecord], res: Results, field: str) -> str:
    """Mean (min-max) of a truth field over the instances' models."""
    values = [getattr(res.models[r.model_id].truth(), field) for r in recs]
    values = [float(v) for v in values if isinstance(v, int | float)]
    if not values:
        return "-"
    return f"{percent(float(np.mean(values)))} ({percent(min(values))}-{percent(max(values))})"


def _instance_line(
    attack: str, res: Results, model_id: str, by_track: dict[Track, dict[str, TaskRecord]]
) -> str:
    truth = res.models[model_id].truth()
    nc = by_track[Track.DETECT].get(model_id)
    strip = by_track[Track.FILTER].get(model_id)
    fp = by_track[Track.REPAIR].get(model_id)
    auc = outcome_field(strip, "filter_auc") if strip and strip.status == "ok" else None
    after = outcome_field(fp, "asr") if fp and fp.status == "ok" else None
    return (
        f"- {attack} `{model_id}`: CA {percent(truth.ca)}, ASR {percent(truth.asr)}; "
        f"NC {'flagged' if nc and flagged(nc) else 'not flagged'} "
        f"(index {largest_index(nc) if nc else '-'}); "
        f"STRIP AUC {'-' if auc is None else f'{float(auc):.3f}'}; "
        f"ASR after Fine-Pruning {percent(None if after is None else float(after))}"
    )


def attack_row(attack: str, res: Results) -> FigureResult:
    """One attack's row (see the module's docstring)."""
    name = f"{attack.replace('_', '-')}-vs-defenses"
    src, paper = PAPER[attack]
    nc = res.of(NC_RECENT.name, Track.DETECT.value, attack)
    if not nc:
        return not_measured(name, src, paper, f"{attack} model")
    clean = res.of(NC_RECENT.name, Track.DETECT.value, CLEAN)
    strip = res.of(STRIP_RECENT.name, Track.FILTER.value, attack)
    fp = res.of(FP_RECENT.name, Track.REPAIR.value, attack)
    pruned = mean_of_ok(res.of(PRUNE_RECENT.name, Track.REPAIR.value, attack), "asr")
    asr = float(np.mean([res.models[r.model_id].truth().asr or 0.0 for r in nc]))
    n_flagged = sum(flagged(r) for r in nc)
    auc = mean_of_ok(strip, "filter_auc")
    measured = (
        f"{len(nc)} instances: CA {_spread(nc, res, 'ca')}, ASR {_spread(nc, res, 'asr')}; "
        f"NC flags {n_flagged}/{len(nc)} ({sum(flagged(r) for r in clean)}/{len(clean)} clean); "
        f"STRIP AUC {'-' if auc is None else f'{auc:.3f}'}; ASR after pruning alone "
        f"{percent(pruned)}, after Fine-Pruning {percent(mean_of_ok(fp, 'asr'))}"
    )
    holds = asr >= TAKES
    if attack in EVADES:
        missed = n_flagged <= len(nc) / 2 and auc is not None and auc < STRIP_CAUGHT
        holds = holds and missed and pruned is not None and pruned >= PRUNING_MISSES
    by_track = {
        Track.DETECT: {r.model_id: r for r in nc},
        Track.FILTER: {r.model_id: r for r in strip},
        Track.REPAIR: {r.model_id: r for r in fp},
    }
    details = tuple(_instance_line(attack, res, r.model_id, by_track) for r in nc)
    return FigureResult(name, src, paper, measured, holds, details)


def recent_attacks(res: Results) -> list[FigureResult]:
    """A row per attack of ``RECENT``."""
    return [attack_row(attack, res) for attack in RECENT]
