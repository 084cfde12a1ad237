"""The `recent-attacks` rows of `harness reproduce` (SIG, label-consistent, Refool, WaNet,
Adaptive-Blend against Neural Cleanse, STRIP and Fine-Pruning), on fabricated records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.reproduce import FIGURES, markdown
from harness.reproduce.base import Results
from harness.reproduce.recent import (
    FP_RECENT,
    NC_RECENT,
    PRUNE_RECENT,
    RECENT,
    STRIP_RECENT,
    recent_attacks,
)
from harness.results import ModelFacts, TaskRecord


@dataclass
class _Truth:
    attack: str
    asr: float | None
    ca: float = 0.98
    poisoned: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    targets: list[int] = field(default_factory=lambda: [0])


@dataclass
class _Card:
    dataset: str = "mnist"


@dataclass
class _Model:
    attack: str
    asr: float | None = 0.95

    def truth(self) -> _Truth:
        return _Truth(self.attack, self.asr, poisoned=self.attack != "none")

    def card(self) -> _Card:
        return _Card()


def _record(
    sub: str, model: str, track: str, scores: dict, outputs: dict | None = None
) -> TaskRecord:
    return TaskRecord(
        "r", sub, "h", False, model, "mh", track, "ok", outputs or {}, scores, None, None, 1.0,
        "bwrap", ModelFacts(True, "backdoored", "mnist", "wanet", (0,)),
    )  # fmt: skip


def _nc(model: str, flagged: bool) -> TaskRecord:
    score = 0.9 if flagged else 0.2
    outputs = {
        "score": score,
        "target_labels": [0],
        "extra": {"anomaly_index": [3.0 if flagged else 1.0]},
    }
    return _record(NC_RECENT.name, model, "detect", {"score": score}, outputs)


def _zoo(asr: dict[str, float]) -> dict[str, _Model]:
    models = {f"{a}-{i}": _Model(a, asr.get(a, 0.95)) for a in RECENT for i in range(5)}
    return models | {f"clean-{i}": _Model("none", None) for i in range(5)}


def _records(
    models: dict[str, _Model], nc_flags: dict[str, int], strip_auc: float, pruned: float = 0.9
) -> list:
    records = [_nc(f"clean-{i}", False) for i in range(5)]
    for attack in RECENT:
        for i in range(5):
            m = f"{attack}-{i}"
            records.append(_nc(m, i < nc_flags.get(attack, 0)))
            records.append(_record(STRIP_RECENT.name, m, "filter", {"filter_auc": strip_auc}))
            records.append(_record(FP_RECENT.name, m, "repair", {"asr": 0.4, "asr_before": 0.95}))
            records.append(_record(PRUNE_RECENT.name, m, "repair", {"asr": pruned}))
    return records


def test_each_attack_is_a_row_and_wanet_holds_only_while_it_evades():
    models = _zoo({"refool": 0.5})
    rows = recent_attacks(Results(_records(models, {"wanet": 2}, 0.6), models))  # type: ignore[arg-type]
    by = {r.name: r for r in rows}
    assert list(by) == [f"{a.replace('_', '-')}-vs-defenses" for a in RECENT]
    wanet = by["wanet-vs-defenses"]
    assert wanet.holds is True
    assert "5 instances" in wanet.measured and "NC flags 2/5 (0/5 clean)" in wanet.measured
    assert "STRIP AUC 0.600" in wanet.measured
    assert "pruning alone 90.0 %, after Fine-Pruning 40.0 %" in wanet.measured
    assert by["refool-vs-defenses"].holds is False  # a mean ASR of 0.5 did not take
    assert by["sig-vs-defenses"].holds is True and len(by["sig-vs-defenses"].details) == 5
    # Caught by Neural Cleanse on 3 of 5, or by STRIP: WaNet's claim no longer holds.
    caught = recent_attacks(Results(_records(models, {"wanet": 3}, 0.6), models))  # type: ignore[arg-type]
    assert {r.name: r for r in caught}["wanet-vs-defenses"].holds is False
    seen = recent_attacks(Results(_records(models, {}, 0.9), models))  # type: ignore[arg-type]
    assert {r.name: r for r in seen}["wanet-vs-defenses"].holds is False
    pruned = recent_attacks(Results(_records(models, {}, 0.6, pruned=0.2), models))  # type: ignore[arg-type]
    assert {r.name: r for r in pruned}["wanet-vs-defenses"].holds is False
    assert "wanet `wanet-0`" in markdown(rows, "harness reproduce")


def test_a_profile_without_the_attacks_says_so():
    rows = recent_attacks(Results([], {}))
    assert all(r.holds is None and "not measured" in r.measured for r in rows)
    assert "recent-attacks" in FIGURES
