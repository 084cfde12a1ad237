"""LEADERBOARD.md and leaderboard.csv: the run's tables for reading in a repository, and
every score as one long CSV (raw values, for other tools)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from harness import __version__
from harness.report import attack_track
from harness.report.encode import csv_cell, md_text
from harness.report.numbers import human, seconds
from harness.report.view import (
    RankedRow,
    RunView,
    incomplete_note,
    ranking,
    runtimes,
    seeds_note,
    task_label,
)
from harness.scoring.aggregate import Score
from harness.scoring.metrics import METRICS
from harness.tracks import KINDS, aggregate


def arrow(metric: str) -> str:
    """The column head: the metric and its direction."""
    return metric + (" ↑" if METRICS[metric].higher_is_better else " ↓")


def entry_name(row: RankedRow) -> str:
    return row.submission + (" (oracle, unofficial)" if row.oracle else "")


def cell(row: RankedRow, metric: str) -> str:
    score = row.cells.get(metric)
    return human(metric, None) if score is None else human(metric, *_values(score))


def _values(s: Score) -> tuple[float | None, float | None, float | None, float | None]:
    return s.value, s.ci_low, s.ci_high, s.spread


def rank_text(row: RankedRow) -> str:
    """The rank column: the rank, and ``≈ N`` when the row's first ranking metric is
    within the seed spread of the row ranked N above it (``RankedRow.tied_with``)."""
    if row.rank is None:
        return "-"
    return str(row.rank) + (f" (≈ {row.tied_with})" if row.tied_with else "")


def _tables(scores: list[Score], level: str, suffix: str = "") -> list[str]:
    lines: list[str] = []
    for kind in KINDS:
        rows = ranking(scores, kind)
        if not rows:
            continue
        columns = [c for c in kind.table.columns if any(c in r.cells for r in rows)]
        body = [[rank_text(r), entry_name(r), *(cell(r, c) for c in columns)] for r in rows]
        lines += [
            f"{level} {kind.table.title}{suffix}",
            "",
            tabulate(
                body,
                headers=["rank", "submission", *(arrow(c) for c in columns)],
                tablefmt="github",
                disable_numparse=True,  # cells are already formatted
            ),
            "",
        ]
    return lines


def long_frame(scores: list[Score]) -> pd.DataFrame:
    """Every score as a row, raw values (oracle entries marked)."""
    return pd.DataFrame(
        [{**s.as_json(), "oracle": s.oracle, "seeds": s.seeds, "spread": s.spread} for s in scores],
        columns=[
            "submission",
            "track",
            "metric",
            "value",
            "ci_low",
            "ci_high",
            "seeds",
            "spread",
            "oracle",
        ],
    )


def _time_table(view: RunView) -> list[str]:
    """What each submission's tasks cost: the run's time, submission by submission (task
    seconds summed, so with several workers the wall clock is shorter)."""
    times = runtimes(view.records)
    if not times:
        return []
    rows = [
        [t.submission, t.track, t.tasks, seconds(t.total), seconds(t.mean), seconds(t.max)]
        + [seconds(t.budget), t.timeouts]
        for t in times
    ]
    total = sum(t.total for t in times)
    head = ["submission", "track", "tasks", "task time", "mean", "max", "budget", "timeouts"]
    return [
        "## Time",
        "",
        f"Task time summed over every task: {seconds(total)} (with several workers the run's "
        "wall clock is shorter; a task's time includes loading its model in the sandbox).",
        "",
        tabulate(rows, headers=head, tablefmt="github"),
        "",
    ]


def render_markdown(view: RunView, out_dir: Path, now: dt.datetime | None = None) -> list[Path]:
    """Write LEADERBOARD.md and leaderboard.csv for a run; return the written paths."""
    now = now or dt.datetime.now(dt.timezone.utc)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Leaderboard",
        "",
        f"Run `{view.run_id}` on zoo profile `{view.profile}` (zoo hash "
        f"`{view.info['zoo_hash']}`), {len(view.model_ids)} models, harness {__version__}, "
        f"rendered {now:%Y-%m-%d %H:%M} UTC. Rates are percentages; AUC and DER are on "
        "their own scales, with bootstrap 95 % CIs in brackets. Oracle entries are not "
        "ranked. Metric definitions: docs/METRICS.md." + seeds_note(view.seeds),
        "",
    ]
    if gaps := view.incomplete():
        lines += [f"**{incomplete_note(gaps)}**", ""]
    lines += _tables(view.scores, "##")
    frames = [long_frame(view.scores).assign(dataset="all")]
    if len(view.datasets) > 1:
        lines += ["## By data set", ""]
        for name, recs in view.datasets.items():
            part = aggregate(recs)
            n = len({r.model_id for r in recs})
            lines += _tables(part, "###", f" on {name} ({n} models)")
            frames.append(long_frame(part).assign(dataset=name))
    if view.unknown_truth:
        lines += [
            f"Truth unknown for {len(view.unknown_truth)} imported model(s) "
            f"({', '.join(view.unknown_truth)}): their detection outputs are stored but not "
            "scored, and their repairs are scored on clean data only (`harness results "
            "--per-model`); they are not in the tables above.",
            "",
        ]
    if view.variants:
        lines += [
            f"Not ranked: {len(view.variants)} parameter variant(s) that `harness reproduce` "
            f"ran in this run for its figures ({', '.join(view.variants)}); see its "
            "REPRODUCTION.md.",
            "",
        ]
    if view.failures:
        lines += ["## Failed tasks", ""]
        lines += [  # names are checked (NAME_RE, zoo ids); a worker's error goes through md_text
            f"- `{r.submission}` / `{task_label(r)}` / {r.track}: {md_text(r.error)}"
            for r in view.failures
        ]
        lines.append("")
    written = []
    if view.attacks:
        lines += [attack_track.markdown(view.attacks)]
        table = out_dir / "attack-track.csv"
        table.write_text(attack_track.to_csv(view.attacks))
        written.append(table)
    lines += _time_table(view)
    lines.append(f"Isolation: {', '.join(view.isolations)}.")
    md, csv = out_dir / "LEADERBOARD.md", out_dir / "leaderboard.csv"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = pd.concat(frames, ignore_index=True)
    for column in ("submission", "track", "metric", "dataset"):  # text cells; numbers stay
        table[column] = table[column].map(csv_cell)
    table.to_csv(csv, index=False)
    return [md, csv, *written]
