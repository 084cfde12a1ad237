"""The reports of a run on fabricated task records (no submission is run): the Markdown
against its golden file, numbers for people, ranks, the attack x defense matrix, and the
HTML site's pages, links and plots. The site in a real browser: test_report_browser.py."""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.errors import FailureKind
from harness.report import load_run
from harness.report.markdown import render_markdown
from harness.report.matrix import matrices
from harness.report.numbers import human, seconds
from harness.report.site import render_site
from harness.report.view import ranking, runtimes
from harness.results import ModelFacts, ResultsStore, TaskRecord
from harness.tracks.detect import DETECT, pack_mask, unpack_mask

GOLDEN = Path(__file__).parent / "golden" / "LEADERBOARD.md"
NOW = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc)

#: model id -> its facts: two MNIST BadNets (a patch, a stealthy random trigger), two clean
#: MNIST models, a face BadNet and a clean face model.
MODELS = {
    "m-patch": ModelFacts(True, "backdoored", "mnist", "badnets_patch", (0,)),
    "m-random": ModelFacts(True, "backdoored", "mnist", "random_trigger", (2,)),
    "m-clean1": ModelFacts(False, "clean", "mnist", "none", ()),
    "m-clean2": ModelFacts(False, "clean", "mnist", "none", ()),
    "f-sun": ModelFacts(True, "backdoored", "synthfaces-10", "sunglasses", (0,)),
    "f-clean": ModelFacts(False, "clean", "synthfaces-10", "none", ()),
}
#: P(backdoored) per detector: alpha catches the patch and the sunglasses, misses the
#: random trigger; beta says 0.5 everywhere; gamma is an oracle that is always right.
DETECTIONS = {
    "alpha": {
        "m-patch": 0.9,
        "m-random": 0.2,
        "m-clean1": 0.3,
        "m-clean2": 0.4,
        "f-sun": 0.8,
        "f-clean": 0.1,
    },
    "beta": dict.fromkeys(MODELS, 0.5),
    "gamma": {m: 1.0 if f.poisoned else 0.0 for m, f in MODELS.items()},
}


def task(sub: str, model: str, track: str, scores: dict, **kw) -> TaskRecord:
    return TaskRecord(
        "r1", sub, "h-" + sub, sub == "gamma", model, "mh", track, kw.pop("status", "ok"),
        kw.pop("outputs", {}), scores, kw.pop("error", None), None, kw.pop("seconds", 2.0),
        "bwrap", MODELS[model], budget=kw.pop("budget", 60.0), failure=kw.pop("failure", None),
    )  # fmt: skip


def _repair(model: str) -> dict:
    f = MODELS[model]
    if not f.poisoned:
        return {"ca": 0.95, "ca_before": 0.97}
    return {"ca": 0.96, "ca_before": 0.98, "asr": 0.05, "asr_before": 1.0, "der": 0.965}


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    s = ResultsStore(tmp_path / "results.sqlite")
    s.ensure_run("r1", "fabricated", "zoohash", "harness run alpha beta gamma --run-id r1")
    for sub, scores in DETECTIONS.items():
        for model, score in scores.items():
            if sub == "beta" and model == "f-sun":  # a timeout: counts as 0.5
                s.write_task(
                    task(sub, model, "detect", {"score": 0.5, "missing": True}, status="failed",
                         error="wall-clock limit of 60 s exceeded", seconds=None,
                         failure=FailureKind.TIMEOUT)
                )  # fmt: skip
                continue
            out = {"score": score}
            if sub == "alpha" and MODELS[model].poisoned:
                out["trigger_mask"] = pack_mask(_square(4))
            s.write_task(task(sub, model, "detect", {"score": score}, outputs=out, seconds=3.0))
    for model in MODELS:
        s.write_task(task("alpha", model, "repair", _repair(model), seconds=10.0))
        filt = {"filter_frr": 0.02}
        if MODELS[model].poisoned:
            filt |= {
                "filter_auc": 0.25 if model == "m-random" else 0.97,
                "far_at_1frr": 0.3,
                "filter_tpr": 0.8,
            }
        s.write_task(task("beta", model, "filter", filt))
    # A reproduction variant shares the run: shown as such, never ranked.
    s.write_task(task("alpha@steps=10", "m-patch", "detect", {"score": 0.7}))
    return s


def _square(k: int) -> object:
    import numpy as np

    mask = np.zeros((28, 28))
    mask[-k:, -k:] = 1.0
    return mask


# -- numbers and ranks ----------------------------------------------------------------------
def test_numbers_are_formatted_as_people_read_them():
    assert human("ca", 0.9734) == "97.3 %"
    assert human("tpr_at_5fpr", 0.5, 0.25, 0.75) == "50.0 % [25, 75]"
    assert human("auc", 0.81234, 0.6, 0.95) == "0.812 [0.60, 0.95]"
    assert human("failures", 3.0) == "3" and human("n_generated", 487.6) == "488"
    assert human("der", None) == "-" and human("auc", math.nan) == "-"
    assert human("auc", 0.7, math.nan, math.nan) == "0.700"
    assert seconds(3.21) == "3.2 s" and seconds(125) == "2 min 05 s" and seconds(None) == "-"
    assert seconds(119.7) == "2 min 00 s" and seconds(7199) == "2 h 00 min"
    assert human("auc", 0.8, 0.6, 0.9, spread=0.0412) == "0.800 ± 0.041 [0.60, 0.90]"
    assert human("ca", 0.9, spread=0.012) == "90.0 % ± 1.2"


def test_a_second_seed_spreads_every_score_and_marks_ranks_it_cannot_tell_apart(store, tmp_path):
    """A second seed of alpha and beta, the same but for beta on m-patch (0.5 -> 1.0):
    every score becomes a mean with its spread; over all models alpha (0.778) and beta
    (0.583 ± 0.118) stay apart, on MNIST beta (0.625 ± 0.177) and alpha (0.500) do not."""
    import dataclasses

    from harness.tracks import aggregate

    for r in store.tasks("r1"):
        if r.submission == "beta" and r.track == "detect" and r.model_id == "m-patch":
            store.write_task(dataclasses.replace(r, replicate=1, scores={"score": 1.0}))
        elif r.submission in ("alpha", "beta"):
            store.write_task(dataclasses.replace(r, replicate=1))
    view = load_run(store, "r1")
    assert view.seeds == 2 and len(view.primary) < len(view.records)
    rows = {r.submission: r for r in ranking(view.scores, DETECT)}
    beta, alpha = rows["beta"].cells["auc"], rows["alpha"].cells["auc"]
    assert alpha.seeds == beta.seeds == 2 and alpha.spread == 0.0
    assert beta.value == pytest.approx(0.5833, abs=1e-3)
    assert beta.spread == pytest.approx(0.1179, abs=1e-3)
    assert rows["beta"].cells["failures"].value == 2  # its timeout, once per seed
    assert (rows["alpha"].rank, rows["beta"].rank, rows["beta"].tied_with) == (1, 2, None)
    assert rows["gamma"].rank is None and rows["gamma"].cells["auc"].seeds == 1
    mnist = {r.submission: r for r in ranking(aggregate(view.datasets["mnist"]), DETECT)}
    assert (mnist["beta"].rank, mnist["alpha"].rank, mnist["alpha"].tied_with) == (1, 2, 1)
    md, csv = render_markdown(view, tmp_path, now=NOW)
    text = md.read_text()
    assert "± their standard deviation over the seeds" in text
    assert "| 2 (≈ 1) | alpha" in text and "0.583 ± 0.118 [0.50, 0.75]" in text
    assert "beta,detect,auc,0.58333" in csv.read_text()
    assert ",2,0.11785" in csv.read_text()  # its seeds and spread columns


def test_oracle_entries_are_listed_after_the_ranked_ones_without_a_rank(store):
    rows = ranking(load_run(store, "r1").scores, DETECT)
    assert [(r.rank, r.submission) for r in rows] == [(1, "alpha"), (2, "beta"), (None, "gamma")]
    assert rows[2].oracle and rows[2].value("auc") == 1.0


def test_variants_are_named_but_not_entries(store):
    view = load_run(store, "r1")
    assert view.variants == ["alpha@steps=10"]
    assert "alpha@steps=10" not in view.submissions


def test_runtimes_count_timeouts_against_the_budget(store):
    times = {(t.submission, t.track): t for t in runtimes(load_run(store, "r1").records)}
    beta = times[("beta", "detect")]
    assert (beta.tasks, beta.timeouts, beta.budget, beta.isolation) == (6, 1, 60.0, "bwrap")
    assert beta.mean == pytest.approx(3.0) and beta.max == pytest.approx(3.0)
    assert beta.total == pytest.approx(15.0)  # the five that answered (the timeout has none)
    assert times[("alpha", "repair")].timeouts == 0


def test_an_entry_that_has_not_run_on_every_model_is_named_as_incomplete(store, tmp_path):
    assert load_run(store, "r1").incomplete() == []  # every entry answered all six models
    store.write_task(task("delta", "m-patch", "detect", {"score": 0.9}))
    view = load_run(store, "r1")
    assert [str(c) for c in view.incomplete()] == ["delta detect: 1 of 6 models"]
    md, _ = render_markdown(view, tmp_path, now=NOW)
    assert "**Incomplete run: delta detect: 1 of 6 models." in md.read_text()
    render_site(view, tmp_path / "site")
    assert (
        "Incomplete run: delta detect: 1 of 6 models"
        in (tmp_path / "site" / "index.html").read_text()
    )


# -- the Markdown ------------------------------------------------------------------------------
def test_markdown_tables_match_the_golden_file(store, tmp_path):
    md, csv = render_markdown(load_run(store, "r1"), tmp_path, now=NOW)
    text = md.read_text().replace(f"harness {_version()},", "harness VERSION,")
    if os.environ.get("HARNESS_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), (
        "rerun with HARNESS_UPDATE_GOLDEN=1 after a deliberate change"
    )
    header = csv.read_text().splitlines()[0]
    assert header == "submission,track,metric,value,ci_low,ci_high,seeds,spread,oracle,dataset"


def _version() -> str:
    from harness import __version__

    return __version__


# -- the attack x defense matrix -----------------------------------------------------------
def test_each_family_is_scored_against_the_clean_models_of_its_data_set(store):
    cols, mats = matrices(load_run(store, "r1"))
    assert [(f.attack, f.group) for f in cols] == [
        ("badnets_patch", "BadNets"),
        ("random_trigger", "stealthy"),
        ("sunglasses", "faces"),
    ]
    auc = next(m for m in mats if m.heat.metric == "auc")
    assert auc.rows == ["alpha", "beta", "gamma"]
    assert auc.cells[("alpha", "badnets_patch")] == 1.0  # 0.9 over both clean MNIST models
    assert auc.cells[("alpha", "random_trigger")] == 0.0  # 0.2 under both: evaded
    assert auc.cells[("alpha", "sunglasses")] == 1.0  # against the clean face model only
    assert auc.cells[("beta", "sunglasses")] == 0.5  # the timed-out task counts 0.5
    assert auc.heat.goodness(0.5) == 0.0 and auc.heat.goodness(1.0) == 1.0
    filt = next(m for m in mats if m.heat.metric == "filter_auc")
    assert filt.cells[("beta", "random_trigger")] == 0.25
    asr = next(m for m in mats if m.heat.metric == "asr")
    assert asr.cells[("alpha", "sunglasses")] == pytest.approx(0.05)
    assert asr.heat.goodness(0.05) == pytest.approx(0.95)


# -- the site --------------------------------------------------------------------------------
class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables += 1
        for key in ("href", "src"):
            if a.get(key):
                self.links.append(str(a[key]))


def test_the_site_links_only_its_own_files_and_shows_every_part(store, tmp_path):
    store.save_figures(
        "r1",
        [
            {
                "name": "nc-flags",
                "source": "Neural Cleanse",
                "paper": "flagged",
                "measured": "index 3.1",
                "holds": True,
            }
        ],
        "harness reproduce --run-id r1",
    )
    written = render_site(load_run(store, "r1"), tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"index.html", "zoo.html", "sub-alpha.html", "sub-beta.html", "sub-gamma.html"} <= names
    assert "plots/roc-mnist.png" in names and "plots/roc-synthfaces-10.png" in names
    assert {
        "plots/matrix-detect-auc.png",
        "plots/ca-asr-alpha.png",
        "plots/masks-alpha.png",
    } <= names
    for page in (p for p in written if p.suffix == ".html"):
        parser = _Page()
        parser.feed(page.read_text())
        assert parser.tables > 0, page
        for ref in parser.links:
            assert not re.match(r"^[a-z]+:", ref), f"{page.name} loads {ref} from outside"
            if ref.endswith((".md", ".csv")):
                continue  # written by the Markdown renderer beside the site
            assert (tmp_path / ref).is_file(), f"{page.name} links to a missing {ref}"
    index = (tmp_path / "index.html").read_text()
    assert (
        index.index("Rankings")
        < index.index("Which defense catches which attack")
        < index.index("<h2>Tracks")
    )
    assert "wall-clock limit of 60 s exceeded" in index and "index 3.1" in index
    assert "harness run alpha beta gamma --run-id r1" in index
    assert "alpha@steps=10" in index  # named as an unranked variant
    sub = (tmp_path / "sub-beta.html").read_text()
    assert sub.count("<tr>") >= 1 + 2 * len(MODELS) and "f-sun" in sub


def test_a_stored_mask_comes_back_within_quantisation():
    mask = _square(3)
    back = unpack_mask(pack_mask(mask * 0.5))
    assert back is not None and back.shape == (28, 28)
    assert abs(back - mask * 0.5).max() <= 0.5 / 255 + 1e-12
    assert unpack_mask({"shape": [2, 2], "u8": "??"}) is None and unpack_mask(None) is None
