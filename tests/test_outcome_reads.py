"""Views read a task's outcome and a detection's outputs through typed accessors
(``Outcome.of``, ``outcome_of``, ``outcome_field``, ``DetectOutputs.of``), on fabricated
task records: the right track, a wrong track's clear error, and failed records that stored
little or nothing read as they did when the views read the JSON by key."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.api import Track
from harness.errors import HarnessError
from harness.registry import UnknownName
from harness.reproduce.base import mean_of_ok
from harness.reproduce.detections import flagged, flagged_elsewhere, norm_ratio, verdict
from harness.results import ModelFacts, TaskRecord
from harness.tracks import KINDS, outcome_field, outcome_of
from harness.tracks.base import Outcome, WrongTrack
from harness.tracks.detect import DETECT, DetectOutcome, DetectOutputs, pack_mask
from harness.tracks.filter import FilterOutcome
from harness.tracks.fuzz import FuzzOutcome
from harness.tracks.repair import RepairOutcome

DETECT_NAME, REPAIR_NAME = Track.DETECT.value, Track.REPAIR.value


def record(**changes) -> TaskRecord:
    base = TaskRecord(
        run_id="r1",
        submission="null",
        submission_hash="s" * 16,
        oracle=False,
        model_id="mnist-badnets-1",
        model_hash="m" * 16,
        track=DETECT_NAME,
        status="ok",
        outputs={"score": 0.75, "target_labels": [3, 5], "trigger": False, "extra": {}},
        scores={"score": 0.75, "missing": False, "target_given": True},
        error=None,
        stderr_tail=None,
        seconds=1.5,
        isolation="bwrap",
        facts=ModelFacts(True, "backdoored", "mnist", "badnets_patch", (3,)),
    )
    return dataclasses.replace(base, **changes)


def failed(track: str, scores: dict, outputs: dict | None = None) -> TaskRecord:
    return record(track=track, status="failed", scores=scores, outputs=outputs or {})


def test_of_reads_the_track_s_own_outcome():
    o = DetectOutcome.of(record())
    assert (o.score, o.missing, o.target_given, o.trigger_iou) == (0.75, False, True, None)
    rep = RepairOutcome.of(record(track=REPAIR_NAME, scores={"ca": 0.9, "ca_before": 0.95}))
    assert (rep.ca, rep.ca_before, rep.asr) == (0.9, 0.95, None)
    for kind in KINDS:  # every registered kind bound its outcome to its own track
        assert kind.outcome.of(record(track=kind.name, scores={})) == kind.outcome()


@pytest.mark.parametrize(
    ("cls", "track"),
    [
        (DetectOutcome, Track.REPAIR.value),
        (RepairOutcome, Track.DETECT.value),
        (FilterOutcome, Track.FUZZ.value),
        (FuzzOutcome, Track.FILTER.value),
    ],
)
def test_of_refuses_another_track_s_record(cls, track):
    with pytest.raises(WrongTrack, match=rf"{cls.__name__} read from a '{track}' task"):
        cls.of(record(track=track, scores={}))


def test_the_base_outcome_is_no_track_s():
    with pytest.raises(TypeError, match="no track's outcome"):
        Outcome.of(record())


def test_failed_records_read_as_their_defaults():
    # A failed detection stores a coin flip; one that stored nothing still reads 0.5 typed,
    # and only ``outcome_field`` tells "not stored" (None) apart, as ``.get`` did.
    assert DetectOutcome.of(failed(DETECT_NAME, {"score": 0.5, "missing": True})).score == 0.5
    bare = failed(DETECT_NAME, {})
    assert DetectOutcome.of(bare).score == 0.5
    assert outcome_field(bare, "score") is None
    assert RepairOutcome.of(failed(REPAIR_NAME, {})) == RepairOutcome()
    assert FuzzOutcome.of(failed(Track.FUZZ.value, {})).activation_rate is None


def test_unknown_stored_scores_are_refused_not_dropped():
    with pytest.raises(HarnessError, match="does not know"):
        DetectOutcome.of(record(scores={"score": 0.5, "from_the_future": 1.0}))


def test_outcome_of_dispatches_by_the_record_s_track():
    assert outcome_of(record()) == DetectOutcome(score=0.75, missing=False, target_given=True)
    filt = record(track=Track.FILTER.value, scores={"filter_auc": 0.8})
    assert outcome_of(filt) == FilterOutcome(filter_auc=0.8)
    with pytest.raises(UnknownName):
        outcome_of(record(track="no-such-track"))


def test_outcome_field_is_what_was_stored():
    assert outcome_field(record(), "score") == 0.75
    assert outcome_field(record(), "trigger_iou") is None  # a field not stored
    assert outcome_field(record(), "filter_auc") is None  # another track's field
    rep = record(track=REPAIR_NAME, scores={"ca": 0.9, "asr": 0.1})
    assert outcome_field(rep, "asr") == 0.1


def test_detect_outputs_of_an_ok_detection():
    mask = np.zeros((4, 4))
    mask[1:3, 1:3] = 1.0
    extra = {"anomaly_index": [0.5, 3.0], "l1_norms": [4.0, 1.0, 4.0]}
    rec = record(outputs={"target_labels": [3, 5], "trigger_mask": pack_mask(mask), "extra": extra})
    out = DetectOutputs.of(rec)
    assert out.target_labels == (3, 5)
    assert out.trigger_mask is not None and np.array_equal(out.trigger_mask, mask)
    assert out.extra == extra


@pytest.mark.parametrize(
    "outputs",
    [{}, {"target_labels": None, "trigger": False, "extra": {}}, {"extra": [1, 2]}],
)
def test_detect_outputs_without_labels_mask_or_extra(outputs):
    out = DetectOutputs.of(record(outputs=outputs))
    assert (out.target_labels, out.trigger_mask, out.extra) == ((), None, {})


def test_detect_outputs_refuse_another_track():
    with pytest.raises(WrongTrack, match="DetectOutputs"):
        DetectOutputs.of(record(track=REPAIR_NAME))


def test_reproduction_reads_detections_typed():
    ok = record(outputs={"target_labels": [5], "extra": {"l1_norms": [2.0, 4.0, 4.0]}})
    assert flagged(ok) and flagged_elsewhere(ok, [0])
    assert verdict(ok, [0]) == "mask 0.50x, flagged (label 5)"
    assert not flagged(record(scores={"score": 0.5}))  # not over 0.5
    assert not flagged(record(outputs={"target_labels": []}))  # no label named
    assert not flagged(failed(DETECT_NAME, {"score": 0.9}, {"target_labels": [5]}))
    assert verdict(failed(DETECT_NAME, {}), [0]) == "failed"
    assert norm_ratio(record(outputs={}), [0]) is None


def test_mean_of_ok_reads_outcome_fields_of_the_tasks_that_ran():
    recs = [
        record(track=REPAIR_NAME, scores={"asr": 0.2}),
        record(track=REPAIR_NAME, scores={"asr": 0.4}),
        record(track=REPAIR_NAME, scores={"ca": 0.9}),  # no ASR: a clean model
        failed(REPAIR_NAME, {}),
    ]
    assert mean_of_ok(recs, "asr") == pytest.approx(0.3)
    assert mean_of_ok(recs, "der") is None


def test_report_cells_and_roc_scores_read_typed():
    from harness.report.plots import _detect_scores
    from harness.report.site_sections import model_cell, model_columns

    recs = [record(), failed(DETECT_NAME, {})]
    assert model_columns(DETECT, recs) == ["score", "target_given"]
    assert model_cell(recs[0], "score") == "0.750" and model_cell(recs[0], "target_given") == "yes"
    assert model_cell(recs[1], "score") == "-"  # stored none: never the 0.5 default
    clean = dataclasses.replace(recs[1], facts=ModelFacts(False, "clean", "mnist", None, ()))
    labels, scores = _detect_scores([recs[0], clean])
    assert labels == [1, 0] and scores.tolist() == [0.75, 0.5]


def test_grading_per_model_lines_read_outcome_fields():
    from harness.grading.points import line_points
    from harness.grading.rubric import Line, Scale

    line = Line("asr", Track.REPAIR, "asr", 4.0, Scale(linear=(1.0, 0.0)), True, "backdoored")
    recs = [
        record(track=REPAIR_NAME, model_id="a", scores={"asr": 0.25}),
        record(track=REPAIR_NAME, model_id="b", status="failed", scores={}),
    ]
    got = line_points(line, recs, [])
    assert got.value == 0.25 and got.points == pytest.approx(4.0 * (0.75 + 0.0) / 2)
    assert got.detail.endswith("(failed)")
