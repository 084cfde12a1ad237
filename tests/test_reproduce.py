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
