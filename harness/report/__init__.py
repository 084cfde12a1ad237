"""A run's reports, rendered from the results store: LEADERBOARD.md and leaderboard.csv
(``harness leaderboard``), and with them the static HTML site with its plots (``harness
report``). Every format reads one ``RunView`` (``view.py``), so their numbers agree."""

from __future__ import annotations

from pathlib import Path

from harness.report.view import RunView, load_run, resolve_run
from harness.results import ResultsStore

__all__ = ["RunView", "load_run", "render_leaderboard", "render_report", "resolve_run"]


def render_leaderboard(store: ResultsStore, out_dir: Path, run_id: str | None = None) -> list[Path]:
    """LEADERBOARD.md and leaderboard.csv of a run (default: the latest); the written paths."""
    from harness.report.markdown import render_markdown

    return render_markdown(load_run(store, run_id), out_dir)


def render_report(store: ResultsStore, out_dir: Path, run_id: str | None = None) -> list[Path]:
    """The Markdown and CSV, and the HTML site (index.html first among the HTML pages) with
    its plots; every written path."""
    from harness.report.markdown import render_markdown
    from harness.report.site import render_site

    view = load_run(store, run_id)
    return render_markdown(view, out_dir) + render_site(view, out_dir)
