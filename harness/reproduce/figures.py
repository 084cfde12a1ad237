"""The reproduction figures: one claim of a source paper per function, measured over the
stored task records and registered with the submission variants it needs.

Sources: BackFuzz ("BackFuzz: An Automated Backdoor Detection Tool", a DLFuzz-based
backdoor fuzzing report); Neural Cleanse (Wang et al., S&P 2019); Xiong, Xu, Zhong, Li,
"Escaping Backdoor Attack Detection of Deep Learning" (IFIP SEC 2020); Fine-Pruning (Liu,
Dolan-Gavitt, Garg, RAID 2018); STRIP (Gao et al., ACSAC 2019); and the CSAW-HackML 2020
course project report (Liao Hu, "Final Project Report", NYU EL-GY-9163). Each figure's
``source`` string names its paper in the rendered table (docs/REPRODUCTION.md).

Xiong et al.'s per-instance protocol (``stealthy_evasion``) is in
``harness.reproduce.stealthy`` and the rows of the attacks of 2019-2023 (SIG, the
label-consistent attack, Refool, WaNet, Adaptive-Blend) in ``harness.reproduce.recent``;
both are registered here, in their place in the table. The reading of detection records
they share is in ``harness.reproduce.detections``."""

from __future__ import annotations

import numpy as np

from harness.api import Track
from harness.reproduce.base import (
    CLEAN,
    FigureResult,
    Results,
    Variant,
    figure,
    mean_of_ok,
    not_measured,
    percent,
)
from harness.reproduce.detections import flagged, largest_index
from harness.reproduce.recent import VARIANTS as RECENT_VARIANTS
from harness.reproduce.recent import recent_attacks
from harness.reproduce.stealthy import (
    DEEPINSPECT,
    NC_ORIGINAL,
    NC_STEALTHY,
    RANDOM,
    stealthy_evasion,
)
from harness.results import TaskRecord
from harness.tracks.detect import DetectOutputs
from harness.tracks.repair import RepairOutcome

# -- BackFuzz ---------------------------------------------------------------------------------
A2A = "badnets_pixel_a2a"
_FUZZ = (Track.FUZZ,)
BACKFUZZ = Variant("backfuzz", "backfuzz", _FUZZ, (A2A, CLEAN))
BACKFUZZ_5 = Variant("backfuzz@occlusion=5", "backfuzz", _FUZZ, (A2A,), {"occlusion": 5})
BACKFUZZ_10 = Variant("backfuzz@occlusion=10", "backfuzz", _FUZZ, (A2A,), {"occlusion": 10})
BACKFUZZ_ALL = (BACKFUZZ, BACKFUZZ_5, BACKFUZZ_10)
BACKFUZZ_DIFF = Variant(
    "backfuzz@differential", "backfuzz", _FUZZ, (A2A,), {"strategy": "differential"}, oracle=True
)


@figure(BACKFUZZ)
def backfuzz_activation(res: Results) -> FigureResult:
    src, paper = "BackFuzz report", "54 % on the all-to-all BadNet vs 0 % on a clean model"
    bad, clean = (
        res.of("backfuzz", Track.FUZZ.value, A2A),
        res.of("backfuzz", Track.FUZZ.value, CLEAN),
    )
    if not bad or not clean:
        return not_measured("backfuzz-activation", src, paper, "all-to-all BadNet and clean model")
    b, c = mean_of_ok(bad, "activation_rate"), mean_of_ok(clean, "activation_rate")
    holds = b is not None and c is not None and b >= c + 0.2
    return FigureResult(
        "backfuzz-activation",
        src,
        paper,
        f"{percent(b)} vs {percent(c)} (mean of {len(clean)} clean models)",
        holds,
    )


@figure(*BACKFUZZ_ALL)
def backfuzz_occlusion(res: Results) -> FigureResult:
    src, paper = "BackFuzz report", "5x5 occlusion 79 % and 10x10 72 % vs unmodified 54 %"
    plain, five, ten = (
        mean_of_ok(res.of(v.name, Track.FUZZ.value, A2A), "activation_rate") for v in BACKFUZZ_ALL
    )
    if plain is None or five is None or ten is None:
        return not_measured("backfuzz-occlusion", src, paper, "all-to-all BadNet")
    return FigureResult(
        "backfuzz-occlusion",
        src,
        paper,
        f"5x5 {percent(five)}, 10x10 {percent(ten)} vs unmodified {percent(plain)}",
        five > plain,
    )


@figure(BACKFUZZ, BACKFUZZ_DIFF)
def backfuzz_differential(res: Results) -> FigureResult:
    """BackFuzz picks neurons from activations on poisoned data: an oracle run here."""
    src, paper = "BackFuzz report", "differential neurons 53 %, about the unmodified 54 %"
    diff = mean_of_ok(res.of(BACKFUZZ_DIFF.name, Track.FUZZ.value, A2A), "activation_rate")
    plain = mean_of_ok(res.of(BACKFUZZ.name, Track.FUZZ.value, A2A), "activation_rate")
    clean = mean_of_ok(res.of(BACKFUZZ.name, Track.FUZZ.value, CLEAN), "activation_rate")
    if diff is None or plain is None or clean is None:
        return not_measured(
            "backfuzz-differential", src, paper, "all-to-all BadNet and clean model"
        )
    return FigureResult(
        "backfuzz-differential",
        src,
        paper,
        f"differential (oracle, 100 poisoned inputs) {percent(diff)} vs unmodified {percent(plain)}",
        diff >= clean + 0.2 and abs(diff - plain) <= 0.15,
    )


# -- Neural Cleanse, and the attack of Xiong et al. that evades it ----------------------------
PATCH = "badnets_patch"
NC = Variant("neural-cleanse", "neural-cleanse", (Track.DETECT,), (PATCH, RANDOM, CLEAN))


@figure(NC)
def nc_flags_patch(res: Results) -> FigureResult:
    src = "Wang et al. 2019 / Xiong et al. 2020"
    paper = "BadNets patch flagged (index > 2, right target)"
    patch, clean = (
        res.of(NC.name, Track.DETECT.value, PATCH),
        res.of(NC.name, Track.DETECT.value, CLEAN),
    )
    if not patch or not clean:
        return not_measured("nc-flags-patch", src, paper, "patch BadNet and clean model")
    right = [
        flagged(r)
        and DetectOutputs.of(r).target_labels[0] in res.models[r.model_id].truth().targets
        for r in patch
    ]
    false_alarms = sum(flagged(r) for r in clean)
    return FigureResult(
        "nc-flags-patch",
        src,
        paper,
        f"{sum(right)}/{len(patch)} patch models flagged with the right target "
        f"(index {', '.join(largest_index(r) for r in patch)}); "
        f"{false_alarms}/{len(clean)} clean models flagged",
        all(right) and false_alarms == 0,
    )


#: A row measured on fewer instances than the paper's 10 per setting says where the full
#: protocol is: one instance is one sample of a share.
PROTOCOL_POINTER = (
    "; too few instances for a share: the paper's 10 per setting are figure "
    "stealthy-evasion on the stealthy profiles (docs/REPRODUCTION-stealthy.md)"
)


@figure(NC)
def nc_random_trigger_evades(res: Results) -> FigureResult:
    src = "Xiong et al. 2020, Algorithm 2"
    paper = "random trigger evades NC in 90 % of instances (rate 0.6)"
    recs = res.of(NC.name, Track.DETECT.value, RANDOM)
    if not recs:
        return not_measured("nc-random-trigger-evades", src, paper, "random-trigger model")
    evaded = [not flagged(r) for r in recs]
    return FigureResult(
        "nc-random-trigger-evades",
        src,
        paper,
        f"evades in {sum(evaded)}/{len(recs)} instances "
        f"(index {', '.join(largest_index(r) for r in recs)})"
        + ("" if len(recs) >= 10 else PROTOCOL_POINTER),
        sum(evaded) > len(recs) / 2,
    )


# -- Xiong et al.'s protocol: each stealthy setting repeated, evasion counted per instance ------
# (harness/reproduce/stealthy.py; registered here, for its place in the table)
figure(NC_STEALTHY, NC_ORIGINAL, DEEPINSPECT)(stealthy_evasion)


# -- Fine-Pruning (Liu et al. 2018) -----------------------------------------------------------
AWARE = "pruning_aware"
_REPAIR = (Track.REPAIR,)
FP = Variant("fine-pruning@no-goodnet", "fine-pruning", _REPAIR, (PATCH, AWARE), {"goodnet": False})
PRUNE_ONLY = Variant(
    "fine-pruning@prune-only",
    "fine-pruning",
    _REPAIR,
    (AWARE,),
    {"mode": "prune-only", "goodnet": False},
)


def _ca_drop(recs: list[TaskRecord]) -> float | None:
    # A repair that ran stored both (``score_repair``); skip one that did not.
    done = [RepairOutcome.of(r) for r in recs if r.status == "ok"]
    drops = [o.ca_before - o.ca for o in done if o.ca_before is not None and o.ca is not None]
    return float(np.mean(drops)) if drops else None


@figure(FP)
def fine_pruning_patch(res: Results) -> FigureResult:
    src, paper = "Liu et al. 2018", "BadNets patch: ASR under 10 % with CA drop under 5 %"
    recs = res.of(FP.name, Track.REPAIR.value, PATCH)
    if not recs:
        return not_measured("fine-pruning-patch", src, paper, "patch BadNet")
    asr, drop = mean_of_ok(recs, "asr"), _ca_drop(recs)
    return FigureResult(
        "fine-pruning-patch",
        src,
        paper,
        f"ASR {percent(mean_of_ok(recs, 'asr_before'))} -> {percent(asr)}, CA drop {percent(drop)}",
        asr is not None and drop is not None and asr < 0.10 and drop < 0.05,
    )


FP_STRONG = Variant(
    "fine-pruning@lr=0.01",
    "fine-pruning",
    _REPAIR,
    (AWARE,),
    {"goodnet": False, "learning_rate": 0.01},
)


@figure(FP, PRUNE_ONLY, FP_STRONG)
def pruning_aware(res: Results) -> FigureResult:
    """Liu et al. fine-tune with the defender's clean data; ours is 50 images a class, where
    the default step (0.005) leaves part of the pruning-aware backdoor: both are shown."""
    src = "Liu et al. 2018"
    paper = "pruning alone fails on the pruning-aware attack; fine-pruning removes it"
    pruned, fine = (
        res.of(PRUNE_ONLY.name, Track.REPAIR.value, AWARE),
        res.of(FP.name, Track.REPAIR.value, AWARE),
    )
    strong = res.of(FP_STRONG.name, Track.REPAIR.value, AWARE)
    if not pruned or not fine or not strong:
        return not_measured("pruning-aware", src, paper, "pruning-aware model")
    a_prune, a_fine, a_strong = (mean_of_ok(r, "asr") for r in (pruned, fine, strong))
    return FigureResult(
        "pruning-aware",
        src,
        paper,
        f"ASR {percent(mean_of_ok(pruned, 'asr_before'))} -> pruning only {percent(a_prune)}; "
        f"fine-pruning {percent(a_fine)} (step 0.005), {percent(a_strong)} (step 0.01, "
        f"CA drop {percent(_ca_drop(strong))})",
        a_prune is not None and a_strong is not None and a_prune >= 0.5 and a_strong < 0.10,
    )


# -- STRIP (Gao et al. 2019) ------------------------------------------------------------------
STRIP = Variant("strip", "strip", (Track.FILTER,), (PATCH,))


@figure(STRIP)
def strip_far(res: Results) -> FigureResult:
    src, paper = "Gao et al. 2019", "FAR under 1 % at 1 % FRR on BadNets"
    recs = res.of(STRIP.name, Track.FILTER.value, PATCH)
    if not recs:
        return not_measured("strip-far", src, paper, "patch BadNet")
    far = mean_of_ok(recs, "far_at_1frr")
    return FigureResult(
        "strip-far",
        src,
        paper,
        f"FAR {percent(far)} at 1 % FRR (AUC {mean_of_ok(recs, 'filter_auc') or 0:.3f})",
        far is not None and far < 0.05,
    )


# -- The attacks of 2019-2023: SIG, label-consistent, Refool, WaNet, Adaptive-Blend --------------
# (harness/reproduce/recent.py: one row per attack over the recent-attacks profile)
figure(*RECENT_VARIANTS)(recent_attacks)


# -- CSAW decision GoodNet (the CSAW-HackML course project report) ----------------------------
FACE_ATTACKS = (
    "sunglasses",
    "lipstick",
    "face_multi_trigger_multi_target",
    "face_multi_trigger_single_target",
)
GOODNET = Variant("csaw-goodnet", "csaw-goodnet", _REPAIR, FACE_ATTACKS, dataset="synthfaces")


@figure(GOODNET)
def goodnet_rates(res: Results) -> FigureResult:
    src = "Hu, CSAW-HackML report, Table 6"
    paper = "sunglasses: clean CSR 90.4 %, DTR 7.7 %; poisoned ATR 0.7 %, DTR 78.9 %"
    recs = [
        r for a in FACE_ATTACKS for r in res.of(GOODNET.name, Track.REPAIR.value, a, "synthfaces")
    ]
    if not recs:
        return not_measured("goodnet-rates", src, paper, "face BadNet")
    csr, dtr = mean_of_ok(recs, "csr_clean"), mean_of_ok(recs, "dtr_clean")
    atr, dtr_p = mean_of_ok(recs, "atr_poisoned"), mean_of_ok(recs, "dtr_poisoned")
    return FigureResult(
        "goodnet-rates",
        src,
        paper,
        f"{len(recs)} face BadNets: clean CSR {percent(csr)}, DTR {percent(dtr)}; "
        f"poisoned ATR {percent(atr)}, DTR {percent(dtr_p)}",
        csr is not None and atr is not None and csr >= 0.85 and atr <= 0.05,
    )
