"""The track registry: every track has one owner, and nothing else spells track names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.api import Track
from harness.tracks import (
    KINDS,
    PRODUCERS,
    TrackKind,
    kind_of,
    required_methods,
    tasks_for,
    worker_calls,
)
from harness.tracks.repair import EXPORT

HARNESS = Path(__file__).resolve().parents[1] / "harness"

#: String constants equal to a track name that are not track names, with why.
NOT_TRACK_NAMES = {
    ("cli/common.py", "export"): "the `harness export` command group",
    ("cli/zoo.py", "target"): "`--poisoned-labels target`: a label kind of imported data",
    ("zoo/importer.py", "target"): "a label kind of imported poisoned data",
    ("results/schema.py", "attack"): "the attack family column of a task's model",
    ("results/records.py", "attack"): "the attack family column, read and written by name",
    ("zoo/report.py", "attack"): "the attack family of a zoo model",
    ("zoo/splits.py", "attack"): "the attack family in a released model's truth",
    ("report/site.py", "attack"): "the attack family of a zoo model",
    ("report/attack_track.py", "attack"): "the attack track table's column of hand-in names",
}


def _literals(path: Path, names: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    }


def test_no_track_name_is_spelled_outside_the_track_modules_and_the_api():
    names = {t.value for t in Track} | {EXPORT}
    found = {}
    for path in sorted(HARNESS.rglob("*.py")):
        rel = path.relative_to(HARNESS).as_posix()
        if rel.startswith("tracks/") or rel == "api.py":
            continue
        for name in _literals(path, names):
            if (rel, name) not in NOT_TRACK_NAMES:
                found.setdefault(rel, []).append(name)
    assert not found, f"use the Track enum or harness.tracks instead of literals: {found}"


def test_every_track_has_one_kind_and_every_kind_a_worker_call():
    assert {t for k in KINDS for t in k.answers} | set(PRODUCERS) == set(Track)
    assert not {t for k in KINDS for t in k.answers} & set(PRODUCERS)
    assert len({t for k in KINDS for t in k.answers}) == sum(len(k.answers) for k in KINDS)
    calls = worker_calls()
    assert set(calls) == {k.name for k in KINDS} | {EXPORT}
    assert all(calls[k.name] == (k.call, k.keeps_weights) for k in KINDS)
    for kind in KINDS:
        assert kind.table.rank_by[0] in kind.table.columns
        assert kind_of(kind.answers[0]) is kind


def test_detect_answers_target_and_trigger_in_one_task():
    tasks = tasks_for([Track.TARGET, Track.TRIGGER, Track.FUZZ], list(Track))
    assert [k.name for k in tasks] == [Track.DETECT.value, Track.FUZZ.value]
    assert tasks_for([Track.REPAIR], [Track.DETECT]) == []
    assert required_methods([Track.FILTER, Track.REPAIR]) == {
        "fit_filter",
        "flag",
        "repair",
        "predict",
    }


@pytest.mark.parametrize("track", list(Track))
def test_track_parse_accepts_each_value(track):
    assert Track.parse(f" {track.value.upper()} ") is track


def test_every_reported_metric_has_a_direction_and_a_rule():
    from harness.scoring.metrics import METRICS

    for kind in KINDS:
        names = [m.name for m in kind.metrics]
        assert len(names) == len(set(names)), kind
        assert set(kind.table.columns) <= {*names, "failures"}, kind
        assert set(kind.same_seed.keys) <= {f for f in kind.outcome.__dataclass_fields__} | {
            "score",
            "target_labels",
        }
        for metric in kind.metrics:
            assert metric.name in METRICS  # direction and description
            # a rule other than a plain mean is the kind's own to compute
            assert metric.rule == "mean" or type(kind).compute is not TrackKind.compute


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_an_outcome_reads_back_from_its_json_and_refuses_what_it_does_not_know(kind):
    from harness.errors import HarnessError

    outcome = kind.outcome()
    assert kind.outcome.from_json(outcome.to_json()) == outcome
    with pytest.raises(HarnessError, match="a_later_field"):
        kind.outcome.from_json({**outcome.to_json(), "a_later_field": 1})
    assert None not in outcome.to_json().values()
