"""The stealthy-attack rows of `harness reproduce` (Xiong et al. 2020's protocol: each
setting repeated, evasion counted per instance), on fabricated detections and truths."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.reproduce import FIGURES, markdown
from harness.reproduce.base import Results
from harness.reproduce.stealthy import (
    DEEPINSPECT,
    NC_ORIGINAL,
    NC_STEALTHY,
    stealthy_evasion,
)
from harness.results import ModelFacts, TaskRecord


@dataclass
class _Truth:
    attack: str
    params: dict[str, Any]
    ca: float = 0.98
    asr: float | None = 0.99
    poisoned: bool = True
    targets: list[int] = field(default_factory=lambda: [2])
    trigger_sizes: list[int] = field(default_factory=lambda: [36])


@dataclass
class _Card:
    dataset: str = "mnist"
    input_shape: list[int] = field(default_factory=lambda: [28, 28, 1])


@dataclass
class _Model:
    """What the figure reads of a zoo model: its truth and card."""

    attack: str
    params: dict[str, Any] = field(default_factory=dict)
    dataset: str = "mnist"

    def truth(self) -> _Truth:
        return _Truth(self.attack, self.params)

    def card(self) -> _Card:
        return _Card(self.dataset)


def _detection(sub: str, model: str, index: float, labels: tuple[int, ...] = (2,)) -> TaskRecord:
    flagged = index > 2
    return TaskRecord(
        "r", sub, "h", False, model, "mh", "detect", "ok",
        {"score": 0.9 if flagged else 0.2, "target_labels": list(labels),
         "extra": {"anomaly_index": [0.1, 0.2, index, 0.0], "l1_norms": [10.0, 20.0, 5.0, 40.0]}},
        {"score": 0.9 if flagged else 0.2}, None, None, 1.0, "bwrap",
        ModelFacts(True, "backdoored", "mnist", "random_trigger", (2,)),
    )  # fmt: skip


def test_each_setting_is_a_row_with_each_detectors_evasion_share():
    models = {
        f"rec-{i}": _Model("reconstructed_trigger", {"sampling_rate": 0.6}) for i in range(10)
    }
    models |= {f"z36-{i}": _Model("random_trigger", {"sampling_rate": 0.6, "mask_size": 36})
               for i in range(4)}  # fmt: skip
    models["clean"] = _Model("none")
    records = []
    for i in range(10):  # the authors' NC misses 9 of 10, ours 5, DeepInspect all
        records.append(_detection(NC_ORIGINAL.name, f"rec-{i}", 3.0 if i == 0 else 1.0))
        records.append(_detection(NC_STEALTHY.name, f"rec-{i}", 3.0 if i < 5 else 1.5))
        records.append(_detection(DEEPINSPECT.name, f"rec-{i}", 0.5))
    for i in range(4):  # random z36: both NCs catch 3 of 4, DeepInspect was not run
        for sub in (NC_ORIGINAL.name, NC_STEALTHY.name):
            records.append(_detection(sub, f"z36-{i}", 5.0 if i else 1.0))
    rows = {r.name: r for r in stealthy_evasion(Results(records, models))}  # type: ignore[arg-type]
    assert set(rows) == {
        "stealthy-evasion-mnist-reconstructed-r0.6",
        "stealthy-evasion-mnist-random-z36-r0.6",
    }
    rec = rows["stealthy-evasion-mnist-reconstructed-r0.6"]
    assert rec.paper.startswith("90 % evade NC") and rec.holds is True
    assert "10 instances, CA 98.0 %, ASR 99.0 %, trigger 36 px" in rec.measured
    assert "target's mask 0.33 x the median label's" in rec.measured  # 5 / median 15
    assert "NC (authors' settings) evaded 9/10 (index 1.00-3.00; target" in rec.measured
    assert "NC (ours) evaded 5/10" in rec.measured and "DeepInspect evaded 10/10" in rec.measured
    z36 = rows["stealthy-evasion-mnist-random-z36-r0.6"]
    assert "NC (authors' settings) evaded 1/4" in z36.measured
    assert "DeepInspect: not run" in z36.measured and z36.holds is None
    # per instance: the measurements that say why each evades or not
    assert rec.details[-10].startswith("| rec-0 | 98.0 % | 99.0 % | 36 px (4.6 %) | ")
    assert rec.details[-10].endswith(
        "| index 3.00, mask 0.33x, flagged | index 3.00, mask 0.33x, flagged "
        "| index 0.50, mask 0.33x, evaded |"
    )
    assert z36.details[-4].endswith("| index 1.00, mask 0.33x, evaded | not run |")
    assert "## stealthy-evasion-mnist-random-z36-r0.6: per instance" in markdown(
        list(rows.values()), "harness reproduce"
    )


def test_a_model_flagged_for_labels_it_was_not_attacked_on_says_which():
    """On 100-label faces a detector can flag a model for labels the attack did not target:
    the instance counts as flagged (the model-level verdict) and its row names the labels."""
    models = {"rec": _Model("reconstructed_trigger", {"sampling_rate": 0.6})}
    records = [
        _detection(NC_ORIGINAL.name, "rec", 3.0, labels=(3, 0)),
        _detection(NC_STEALTHY.name, "rec", 3.0),
    ]
    (row,) = stealthy_evasion(Results(records, models))  # type: ignore[arg-type]
    authors = "NC (authors' settings) evaded 0/1 (index 3.00; target's mask 0.33 x the median"
    assert f"{authors} label's; of the 1 flagged, 1 only for labels not attacked)" in row.measured
    assert "NC (ours) evaded 0/1 (index 3.00; target's mask 0.33 x the median label's)" in (
        row.measured
    )
    assert row.details[-1].endswith(
        "| index 3.00, mask 0.33x, flagged (label 3, 0) | index 3.00, mask 0.33x, flagged "
        "| not run |"
    )


def test_a_profile_without_stealthy_models_says_so_and_the_variants_differ_only_in_settings():
    (row,) = stealthy_evasion(Results([], {"clean": _Model("none")}))  # type: ignore[dict-item]
    assert row.holds is None and "not measured" in row.measured
    variants = {v.name: v for v in FIGURES["stealthy-evasion"][0]}
    assert variants[NC_ORIGINAL.name].folder == variants[NC_STEALTHY.name].folder
    assert variants[NC_ORIGINAL.name].params["steps"] == 1000
    assert ("random_trigger", "synthfaces") in variants[DEEPINSPECT.name].kinds


def test_the_one_instance_random_trigger_row_points_at_the_protocol():
    from harness.reproduce.figures import NC, nc_random_trigger_evades

    random = {f"z36-{i}": _Model("random_trigger", {"mask_size": 36}) for i in range(10)}
    one = nc_random_trigger_evades(Results([_detection(NC.name, "z36-0", 3.18)], random))  # type: ignore[arg-type]
    assert one.measured.startswith("evades in 0/1 instances (index 3.18); too few instances")
    assert "stealthy-evasion" in one.measured and one.holds is False
    ten = [_detection(NC.name, f"z36-{i}", 1.0 if i < 6 else 3.0) for i in range(10)]
    row = nc_random_trigger_evades(Results(ten, random))  # type: ignore[arg-type]
    assert row.measured.startswith("evades in 6/10") and "too few" not in row.measured
    assert row.holds is True
