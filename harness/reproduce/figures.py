"""The reproduction figures: one claim of a source paper per function, measured over the
stored task records and registered with the submission variants it needs.

Sources: BackFuzz ("BackFuzz: An Automated Backdoor Detection Tool", a DLFuzz-based
backdoor fuzzing report); Neural Cleanse (Wang et al., S&P 2019); Xiong, Xu, Zhong, Li,
"Escaping Backdoor Attack Detection of Deep Learning" (IFIP SEC 2020); Fine-Pruning (Liu,
Dolan-Gavitt, Garg, RAID 2018); STRIP (Gao et al., ACSAC 2019); and the CSAW-HackML 2020
course project report (Liao Hu, "Final Project Report", NYU EL-GY-9163). Each figure's
``source`` string names its paper in the rendered table (docs/REPRODUCTION.md)."""

from __future__ import annotations

import numpy as np

from harness.api import Track
from harness.data.synthfaces import HEIGHT as FACE_HEIGHT
from harness.data.synthfaces import WIDTH as FACE_WIDTH
from harness.reproduce.base import (
    CLEAN,
    FigureResult,
    Results,
    Variant,
    figure,
    mean_of_ok,
    model_kind,
    not_measured,
    percent,
)
from harness.results import TaskRecord
from harness.toolkit.label_scan import ScanSettings

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
PATCH, RANDOM = "badnets_patch", "random_trigger"
NC = Variant("neural-cleanse", "neural-cleanse", (Track.DETECT,), (PATCH, RANDOM, CLEAN))


def _flagged(rec: TaskRecord) -> bool:
    return (
        rec.status == "ok" and bool(rec.outputs.get("target_labels")) and rec.scores["score"] > 0.5
    )


def _index(rec: TaskRecord) -> str:
    """The largest anomaly index a detector reported in ``extra["anomaly_index"]``."""
    values = (rec.outputs.get("extra") or {}).get("anomaly_index")
    if not isinstance(values, list) or not values:
        return "-"
    return f"{max(float(v) for v in values):.2f}"


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
        _flagged(r) and r.outputs["target_labels"][0] in res.models[r.model_id].truth().targets
        for r in patch
    ]
    false_alarms = sum(_flagged(r) for r in clean)
    return FigureResult(
        "nc-flags-patch",
        src,
        paper,
        f"{sum(right)}/{len(patch)} patch models flagged with the right target "
        f"(index {', '.join(_index(r) for r in patch)}); "
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
    evaded = [not _flagged(r) for r in recs]
    return FigureResult(
        "nc-random-trigger-evades",
        src,
        paper,
        f"evades in {sum(evaded)}/{len(recs)} instances "
        f"(index {', '.join(_index(r) for r in recs)})"
        + ("" if len(recs) >= 10 else PROTOCOL_POINTER),
        sum(evaded) > len(recs) / 2,
    )


# -- Xiong et al.'s protocol: each stealthy setting repeated, evasion counted per instance ------
RECONSTRUCTED = "reconstructed_trigger"
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


@figure(NC_STEALTHY, NC_ORIGINAL, DEEPINSPECT)
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
            evaded = sum(not _flagged(r) for r in recs)
            shares[variant] = evaded / len(recs)
            ratio = _target_norm_ratio(res, recs)
            astray = sum(_flagged_elsewhere(r, targets[r.model_id]) for r in recs)
            parts.append(
                f"{label} evaded {evaded}/{len(recs)} (index {_index_range(recs)}"
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
            cells.append(_verdict(detections.get((variant, model_id)), truth.targets))
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "Per detector: the true target's anomaly index; its reversed mask's L1 norm over the "
        "median label's; flagged (score over 0.5; the labels flagged where the target is "
        "not among them) or evaded.",
        "",
        *lines,
    )


def _flagged_elsewhere(rec: TaskRecord, targets: list[int]) -> bool:
    """Flagged, but for labels the attack did not target (a model-level detection that
    did not find the backdoor: on 100-label faces some labels stand out naturally)."""
    return _flagged(rec) and not set(targets) & set(rec.outputs["target_labels"])


def _verdict(rec: TaskRecord | None, targets: list[int]) -> str:
    if rec is None:
        return "not run"
    if rec.status != "ok":
        return "failed"
    parts = []
    index = (rec.outputs.get("extra") or {}).get("anomaly_index")
    if targets and isinstance(index, list) and len(index) > targets[0]:
        parts.append(f"index {float(index[targets[0]]):.2f}")
    ratio = _norm_ratio(rec, targets)
    if ratio is not None:
        parts.append(f"mask {ratio:.2f}x")
    if not _flagged(rec):
        parts.append("evaded")
    elif _flagged_elsewhere(rec, targets):
        parts.append(f"flagged (label {', '.join(map(str, rec.outputs['target_labels']))})")
    else:
        parts.append("flagged")
    return ", ".join(parts)


def _norm_ratio(rec: TaskRecord, targets: list[int]) -> float | None:
    """The true target's reversed-mask L1 norm over the median label's (below 1: the
    target's trigger is smaller than most, what the outlier test looks for), from the norms
    a detector reported (Neural Cleanse's ``l1_norms``, DeepInspect's ``l1``)."""
    extra = rec.outputs.get("extra") or {}
    norms = extra.get("l1_norms", extra.get("l1"))
    if not isinstance(norms, list) or not targets or len(norms) <= max(targets):
        return None
    values = np.asarray([float(v) for v in norms])
    median = float(np.median(values))
    return float(values[targets[0]]) / median if median > 0 else None


def _target_norm_ratio(res: Results, recs: list[TaskRecord]) -> float | None:
    """The mean over instances of ``_norm_ratio``."""
    ratios = [
        ratio
        for r in recs
        if (ratio := _norm_ratio(r, res.models[r.model_id].truth().targets)) is not None
    ]
    return float(np.mean(ratios)) if ratios else None


def _index_range(recs: list[TaskRecord]) -> str:
    """The range of the largest anomaly index over the instances' detections."""
    values = [float(v) for r in recs if (v := _index(r)) != "-"]
    if not values:
        return "-"
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


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
    drops = [r.scores["ca_before"] - r.scores["ca"] for r in recs if r.status == "ok"]
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
