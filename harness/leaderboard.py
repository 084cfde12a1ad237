"""Render the leaderboard (Markdown, CSV) from a run's stored task records."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from harness import __version__
from harness.errors import HarnessError
from harness.scoring.aggregate import Score
from harness.scoring.metrics import METRICS
from harness.store import ResultsStore, TaskRecord
from harness.submission.manifest import is_variant
from harness.tracks import KINDS, aggregate


def resolve_run(store: ResultsStore, run_id: str | None) -> str:
    run = run_id or store.latest_run()
    if run is None:
        raise HarnessError(
            "the results store holds no run yet",
            path=store.path,
            fix="run `harness run SUBMISSION... --profile P` first",
        )
    if run not in {r["run_id"] for r in store.runs()}:
        known = ", ".join(r["run_id"] for r in store.runs())
        raise HarnessError(
            f"no run {run!r} in the results store", path=store.path, fix=f"known runs: {known}"
        )
    return run


def _fmt(metric: str, value: float | None, low: float | None, high: float | None) -> str:
    if value is None or pd.isna(value):
        return "-"
    if metric == "failures":
        return str(int(value))
    text = f"{value:.3f}"
    if low is not None and high is not None and not pd.isna(low):
        text += f" [{low:.2f}, {high:.2f}]"
    return text


def score_table(
    scores: list[Score], tracks: tuple[str, ...], columns: tuple[str, ...], rank_by: tuple[str, str]
) -> pd.DataFrame:
    """One row per submission, one formatted column per metric, ranked by the primary."""
    rows: dict[str, dict[str, object]] = {}
    for s in scores:
        if s.track in tracks and s.metric in columns:
            row = rows.setdefault(
                s.submission, {"submission": s.submission + (" (oracle)" if s.oracle else "")}
            )
            row[s.metric] = _fmt(s.metric, s.value, s.ci_low, s.ci_high)
            row["_" + s.metric] = s.value
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows.values())
    used = [c for c in columns if c in frame.columns]
    primary, second = rank_by
    keys = [k for k in ("_" + primary, "_" + second) if k in frame.columns]
    ascending = [METRICS[k[1:]].higher_is_better is False for k in keys]
    if keys:
        frame = frame.sort_values(keys, ascending=ascending, na_position="last")
    frame = frame[["submission", *used]].fillna("-")
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def by_dataset(
    records: list[TaskRecord], known: dict[str, str] | None = None
) -> dict[str, list[TaskRecord]]:
    """Task records grouped by their model's data set. Records stored before the data set
    was recorded take it from ``known`` (model id -> data set, from the built zoo)."""
    known = known or {}
    groups: dict[str, list[TaskRecord]] = {}
    for r in records:
        name = r.facts.dataset or known.get(r.model_id, "unknown data set")
        groups.setdefault(str(name), []).append(r)
    return dict(sorted(groups.items()))


def _zoo_datasets(profile: str) -> dict[str, str]:
    from harness.errors import ZooError
    from harness.zoo.store import ZooStore

    try:
        return {m.id: m.card().dataset for m in ZooStore().models(profile)}
    except (ZooError, OSError):
        return {}


def _tables(scores: list[Score], level: str, suffix: str = "") -> list[str]:
    lines: list[str] = []
    for kind in KINDS:
        title, columns = kind.table.title, kind.table.columns
        tracks = tuple(t.value for t in kind.answers)
        frame = score_table(scores, tracks, columns, kind.table.rank_by)
        if frame.empty:
            continue
        arrows = {c: c + (" ↑" if METRICS[c].higher_is_better else " ↓") for c in columns}
        lines += [
            f"{level} {title}{suffix}",
            "",
            tabulate(
                frame.rename(columns=arrows),
                headers="keys",
                tablefmt="github",
                showindex=False,
                disable_numparse=True,  # cells are already formatted to 3 decimals
            ),
            "",
        ]
    return lines


def long_frame(scores: list[Score]) -> pd.DataFrame:
    return pd.DataFrame(
        [s.as_json() for s in scores],
        columns=["submission", "track", "metric", "value", "ci_low", "ci_high"],
    )


def render(store: ResultsStore, out_dir: Path, run_id: str | None = None) -> list[Path]:
    """Write LEADERBOARD.md and leaderboard.csv for a run; return the written paths."""
    run = resolve_run(store, run_id)
    info = next(r for r in store.runs() if r["run_id"] == run)
    stored = store.tasks(run)
    # The parameter variants `harness reproduce` adds to a run it shares (make demo) are
    # ablations of a figure on a few models, not entries: they are not ranked here.
    records = [r for r in stored if not is_variant(r.submission)]
    variants = sorted({r.submission for r in stored if is_variant(r.submission)})
    scores = aggregate(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Leaderboard",
        "",
        f"Run `{run}` on zoo profile `{info['profile']}` (zoo hash `{info['zoo_hash']}`), "
        f"{len({r.model_id for r in records})} models, harness {__version__}, rendered "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. "
        "Metric definitions: docs/METRICS.md.",
        "",
    ]
    lines += _tables(scores, "##")
    datasets = by_dataset(records, _zoo_datasets(info["profile"]))
    frames = [long_frame(scores).assign(dataset="all")]
    if len(datasets) > 1:
        lines += ["## By data set", ""]
        for name, recs in datasets.items():
            part = aggregate(recs)
            lines += _tables(part, "###", f" on {name} ({len({r.model_id for r in recs})} models)")
            frames.append(long_frame(part).assign(dataset=name))
    unknown = sorted({r.model_id for r in records if r.facts.poisoned is None})
    if unknown:
        lines += [
            f"Truth unknown for {len(unknown)} imported model(s) ({', '.join(unknown)}): their "
            "detection outputs are stored but not scored, and their repairs are scored on clean "
            "data only (`harness results --per-model`); they are not in the tables above.",
            "",
        ]
    if variants:
        lines += [
            f"Not ranked: {len(variants)} parameter variant(s) that `harness reproduce` ran "
            f"in this run for its figures ({', '.join(variants)}); see its REPRODUCTION.md.",
            "",
        ]
    failures = [r for r in records if r.status != "ok"]
    if failures:
        lines += ["## Failed tasks", ""]
        lines += [f"- `{r.submission}` / `{r.model_id}` / {r.track}: {r.error}" for r in failures]
        lines.append("")
    isolations = sorted({r.isolation for r in records})
    lines.append(f"Isolation: {', '.join(isolations)}.")
    md, csv = out_dir / "LEADERBOARD.md", out_dir / "leaderboard.csv"
    md.write_text("\n".join(lines) + "\n")
    pd.concat(frames, ignore_index=True).to_csv(csv, index=False)
    return [md, csv]
