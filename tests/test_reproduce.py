"""`harness reproduce` as a user runs it: paper vs measured, JSON shape, the Markdown file."""

import json

import pytest
from conftest import REPO, run_cli

pytestmark = pytest.mark.sandbox


def test_reproduce_measures_a_figure_and_says_what_it_cannot(tiny_zoo, backend, tmp_path):
    out = tmp_path / "REPRODUCTION.md"
    args = ["reproduce", "--profile", "tiny", "--only", "fine-pruning-patch,pruning-aware"]
    proc = run_cli(*args, "--json", "--out", str(out), "--db", str(tmp_path / "r.sqlite"))
    assert proc.returncode == 0, proc.stderr
    figures = {f["name"]: f for f in json.loads(proc.stdout)}
    for f in figures.values():
        assert set(f) == {"name", "source", "paper", "measured", "holds"}
    patch = figures["fine-pruning-patch"]
    assert patch["holds"] is True and "ASR" in patch["measured"], patch
    assert figures["pruning-aware"]["holds"] is None  # tiny has no pruning-aware model
    text = out.read_text()
    assert "harness reproduce --profile tiny" in text and "| fine-pruning-patch" in text


def test_reproduce_names_the_figures_on_a_typo(tiny_zoo, tmp_path):
    proc = run_cli(
        "reproduce", "--profile", "tiny", "--only", "nc-flags-pach", "--out", str(tmp_path / "r.md")
    )
    assert proc.returncode != 0
    assert "unknown figure(s) nc-flags-pach" in proc.stderr and "nc-flags-patch" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_reproduce_shares_a_runs_results_instead_of_running_them_again(tiny_zoo, tmp_path):
    """`make demo` runs the references, then reproduces under the same run id: a figure
    whose variant is a reference submission as it is reads the run's task, not a new one."""
    import sqlite3

    db = str(tmp_path / "r.sqlite")
    ran = run_cli(
        "run", str(REPO / "submissions" / "strip"), "--profile", "tiny", "--tracks", "filter",
        "--run-id", "shared", "--db", db, "--workers", "1",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr

    def finished() -> list[tuple]:
        with sqlite3.connect(db) as con:
            query = "SELECT submission, model_id, finished FROM tasks WHERE run_id = 'shared'"
            return sorted(con.execute(query).fetchall())

    before = finished()
    assert before and {row[0] for row in before} == {"strip"}
    proc = run_cli(
        "reproduce", "--profile", "tiny", "--only", "strip-far", "--run-id", "shared",
        "--db", db, "--json", "--out", str(tmp_path / "r.md"), "--workers", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (fig,) = json.loads(proc.stdout)
    assert fig["name"] == "strip-far" and fig["holds"] is not None, fig
    assert finished() == before  # nothing ran again, nothing was overwritten

    # A figure's parameter variant joins the run but not the leaderboard's ranks.
    proc = run_cli(
        "reproduce", "--profile", "tiny", "--only", "fine-pruning-patch", "--run-id", "shared",
        "--db", db, "--out", str(tmp_path / "r.md"), "--workers", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "fine-pruning@no-goodnet" in {row[0] for row in finished()}
    board = tmp_path / "board"
    run_cli("leaderboard", "--run-id", "shared", "--db", db, "--out", str(board), check=True)
    text = (board / "LEADERBOARD.md").read_text()
    assert "| strip " in text and "| fine-pruning@no-goodnet" not in text, text
    assert "Not ranked: 1 parameter variant(s)" in text and "fine-pruning@no-goodnet" in text


def test_a_family_override_gets_its_own_spec_and_leaves_the_others_hash(
    tiny_zoo, face_zoo, monkeypatch
):
    """A variant with overrides for one data set family (Neural Cleanse's authors' batch on
    100-label faces) runs two specs: the family's own, and for every other family the spec
    it had without the override, so the tasks stored for those stay valid."""
    import dataclasses

    import harness.reproduce
    from harness.api import Track
    from harness.registry import Registry
    from harness.reproduce import FIGURES, figure_plans, variant_spec
    from harness.reproduce.base import Variant
    from harness.reproduce.stealthy import NC_ORIGINAL

    plain = Variant(
        "neural-cleanse@probe", "neural-cleanse", (Track.DETECT,), ("badnets_patch", "sunglasses"),
        {"steps": 5}, dataset=("mnist", "synthfaces"),
    )  # fmt: skip
    probe = dataclasses.replace(plain, family_params={"synthfaces": {"values_per_step": 123}})
    probing = Registry("figure", [*FIGURES.items(), ("probe", ((probe,), lambda res: []))])
    monkeypatch.setattr(harness.reproduce, "FIGURES", probing)
    plans = figure_plans(["probe"], [*tiny_zoo, *face_zoo])
    by_hash = {p.spec.content_hash: p for p in plans}
    assert len(plans) == 2 == len(by_hash)
    mnist = by_hash[variant_spec(plain).content_hash]
    faces = next(p for p in plans if p is not mnist)
    assert mnist.model_ids == ["mnist-badnets-patch3-t0-v1"]
    assert mnist.spec.params["values_per_step"] != 123 and mnist.spec.params["steps"] == 5
    assert faces.model_ids == ["faces-sunglasses-t0-v1"]
    assert faces.spec.params["values_per_step"] == 123 and faces.spec.params["steps"] == 5
    assert {mnist.spec.name, faces.spec.name} == {"neural-cleanse@probe"}
    # The authors' settings keep their MNIST hash (the tasks of the stealthy parts measured
    # before faces had their own step).
    unchanged = dataclasses.replace(NC_ORIGINAL, family_params={})
    assert variant_spec(NC_ORIGINAL, family="mnist").content_hash == (
        variant_spec(unchanged).content_hash
    )
