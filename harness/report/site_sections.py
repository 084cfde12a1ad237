"""The HTML fragments of the report site, each a pure function of the run's view: the
index's compact rankings, the attack x defense matrix, the full track tables, the tables by
data set, the failed tasks, the reproduction table and the run's metadata, and the cells of
a submission page's per-model table.

Apart from ``harness.report.site`` (the ``Site`` that lays out the pages, draws the plots
and writes the files) because these read only the view: they write nothing and draw
nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from harness import __version__
from harness.report import plots
from harness.report.html import esc, link, table
from harness.report.markdown import arrow, cell, entry_name, rank_text
from harness.report.matrix import Family, Matrix
from harness.report.numbers import human, seconds
from harness.report.view import RankedRow, Runtime, RunView, ranking, task_label
from harness.results import TaskRecord
from harness.scoring.metrics import METRICS
from harness.tracks import KINDS, TrackKind, aggregate, outcome_field
from harness.tracks.detect import DETECT


def page_name(submission: str) -> str:
    """The file of a submission's page (its name, with anything odd replaced)."""
    return "sub-" + re.sub(r"[^A-Za-z0-9._-]", "_", submission) + ".html"


def when(epoch: Any) -> str:
    """A stored epoch time as a UTC minute; "-" when there is none."""
    try:
        return f"{dt.datetime.fromtimestamp(float(epoch), dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
    except (TypeError, ValueError, OverflowError):
        return "-"


def compact_ranking(kind: TrackKind, rows: list[RankedRow]) -> str:
    """A track's ranking by its ranking metrics alone, for the top of the index."""
    metrics = [m for m in kind.table.rank_by if any(m in r.cells for r in rows)]
    body = [
        [
            rank_text(r),
            link(page_name(r.submission), entry_name(r)),
            *(esc(cell(r, m)) for m in metrics),
        ]
        for r in rows
    ]
    heads = ["#", "submission", *(arrow(m) for m in metrics)]
    return f"<h3>{esc(kind.table.title)}</h3>" + table(
        heads, body, names=2, css="compact", raw=True
    )


def matrix_table(families: list[Family], matrices: list[Matrix]) -> str:
    """The attack x defense matrix: a row per defense and track, a column per attack family."""
    fams = families
    if not fams or not matrices:
        return '<p class="note">No backdoored model with a known attack in this run.</p>'
    groups: list[tuple[str, int]] = []
    for f in fams:
        if groups and groups[-1][0] == f.group:
            groups[-1] = (f.group, groups[-1][1] + 1)
        else:
            groups.append((f.group, 1))
    starts = {fams[0].attack} | {
        fams[i].attack for i in range(1, len(fams)) if fams[i].group != fams[i - 1].group
    }

    def cls(f: Family, extra: str) -> str:
        names = [extra, _group_class(f.group), "groupstart" if f.attack in starts else ""]
        return " ".join(n for n in names if n)

    head1 = '<th class="name"></th>' + "".join(
        f'<th class="group {_group_class(g)} groupstart" colspan="{n}">{esc(g)}</th>'
        for g, n in groups
    )
    head2 = '<th class="name">defense</th>' + "".join(
        f'<th class="{cls(f, "family")}" title="{esc(f.attack)}">{esc(f.attack.replace("_", " "))} ({f.models})</th>'
        for f in fams
    )
    body = []
    for m in matrices:
        body.append(
            f'<tr class="section"><td colspan="{len(fams) + 1}">{esc(m.kind.table.title)}: '
            f"{esc(_matrix_caption(m))}</td></tr>"
        )
        for sub in m.rows:
            cells = []
            for f in fams:
                v = m.cells.get((sub, f.attack))
                colour = plots.heat_colour(None if v is None else m.heat.goodness(v))
                cells.append(
                    f'<td class="heat{" groupstart" if f.attack in starts else ""}" '
                    f'style="background:{colour}">{esc(human(m.heat.metric, v))}</td>'
                )
            body.append(
                f'<tr><td class="name">{link(page_name(sub), sub)}</td>{"".join(cells)}</tr>'
            )
    legend = (
        '<p class="legend note">Cell colour: '
        f'<span style="background:{plots.heat_colour(0.0)}">evaded (chance or worse)</span>'
        f'<span style="background:{plots.heat_colour(0.5)}">partly</span>'
        f'<span style="background:{plots.heat_colour(1.0)}">caught</span>'
        f'<span style="background:{plots.heat_colour(None)}">not measured</span> '
        "Columns: attack families (backdoored models in brackets), grouped; the stealthy, "
        "clean-label, warping and adaptive attacks and the face BadNets at the right.</p>"
    )
    return (
        f'<div class="scroll"><table class="matrix"><thead><tr>{head1}</tr><tr>{head2}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div>{legend}"
    )


def track_table(kind: TrackKind, rows: list[RankedRow], runtimes: list[Runtime]) -> str:
    """A track's full table: every column it holds, with times against the budget."""
    columns = [c for c in kind.table.columns if any(c in r.cells for r in rows)]
    times = {t.submission: t for t in runtimes if t.track == kind.name}
    body = []
    for r in rows:
        t = times.get(r.submission)
        body.append(
            [
                rank_text(r),
                link(page_name(r.submission), entry_name(r)),
                *(esc(cell(r, c)) for c in columns),
                *(esc(x) for x in _time_cells(t)),
            ]
        )
    heads = [
        "#",
        "submission",
        *(arrow(c) for c in columns),
        "time mean",
        "time max",
        "budget",
        "timeouts",
        "isolation",
    ]
    return f"<h3>{esc(kind.table.title)}</h3>" + table(heads, body, names=2, raw=True)


def by_dataset(view: RunView) -> str:
    """Each track's ranking on each data set alone, when the run has more than one."""
    per_set = ""
    if len(view.datasets) > 1:
        for name, recs in view.datasets.items():
            scores = aggregate(recs)
            n = len({r.model_id for r in recs})
            part = [
                f"<h3>{esc(k.table.title)} on {esc(name)} ({n} models)</h3>"
                + table(
                    ["#", "submission", *(arrow(c) for c in k.table.columns)],
                    [
                        [
                            rank_text(r),
                            entry_name(r),
                            *(cell(r, c) for c in k.table.columns),
                        ]
                        for r in rows
                    ],
                    names=2,
                )
                for k in KINDS
                if (rows := ranking(scores, k))
            ]
            per_set += "".join(part)
        per_set = "<h2>By data set</h2>" + per_set
    return per_set


def failures(view: RunView) -> str:
    """The failed tasks with their reasons."""
    fails = view.failures
    if not fails:
        return "<h2>Failed tasks</h2><p>None: every task answered within its budget.</p>"
    rows = [[r.submission, task_label(r), r.track, r.error or "-"] for r in fails]
    return "<h2>Failed tasks</h2>" + table(
        ["submission", "model", "track", "reason"], rows, names=4, css="text"
    )


def reproduction(view: RunView) -> str:
    """The papers' figures beside this run's, when the run has them."""
    figs = view.figures
    if not figs:
        return ""
    rows = [
        [
            f["name"],
            f["source"],
            f["paper"],
            f["measured"],
            {True: "yes", False: "no", None: "-"}[f["holds"]],
        ]
        for f in figs
    ]
    cmd = sorted({f["command"] for f in figs})
    return (
        '<h2 id="reproduction">Reproduction: the papers\' figures vs this run</h2>'
        + table(["figure", "source", "paper", "measured", "holds"], rows, names=4, css="text")
        + f'<p class="note">Measured by {", ".join(f"<code>{esc(c)}</code>" for c in cmd)}.</p>'
    )


def metadata(view: RunView) -> str:
    """The run's facts: ids, hashes, versions, times, isolation and commands."""
    v = view
    rows = [
        ["run", v.run_id],
        ["zoo profile", v.profile],
        ["zoo hash", v.info["zoo_hash"]],
        ["models", str(len(v.model_ids))],
        ["seeds", str(v.seeds)],
        ["harness (run / report)", f"{v.info['harness_version']} / {__version__}"],
        ["created", when(v.info["created"])],
        ["updated", when(v.info["updated"])],
        ["rendered", when(dt.datetime.now(dt.timezone.utc).timestamp())],
        ["isolation", ", ".join(v.isolations) or "-"],
    ]
    rows += [["command", c] for c in v.info.get("commands", [])]
    if v.variants:
        rows.append(["not ranked (reproduction variants)", ", ".join(v.variants)])
    if v.unknown_truth:
        rows.append(["truth unknown (not scored)", ", ".join(v.unknown_truth)])
    return "<h2>Run</h2>" + table(["", "value"], rows, names=2, css="text")


# -- helpers of the tables above --------------------------------------------------------------
def _time_cells(t: Runtime | None) -> list[str]:
    if t is None:
        return ["-"] * 5
    return [seconds(t.mean), seconds(t.max), seconds(t.budget), str(t.timeouts), t.isolation]


#: Column groups shaded in the matrix (a CSS class each, harness/report/html.py): the
#: attacks built to evade defenses, and the face BadNets.
SHADED = ("stealthy", "clean-label", "warping", "adaptive", "faces")


def _group_class(group: str) -> str:
    return group if group in SHADED else ""


def _matrix_caption(m: Matrix) -> str:
    info = METRICS[m.heat.metric]
    return f"{m.heat.metric} ({'higher' if info.higher_is_better else 'lower'} is better): {info.description}"


# -- cells of a submission page's per-model table ---------------------------------------------
def truth_text(r: TaskRecord) -> str:
    """What a model is: unknown, clean, or backdoored (or its role) -> its targets."""
    if r.facts.poisoned is None:
        return "unknown"
    role = r.facts.role or ("backdoored" if r.facts.poisoned else "clean")
    targets = ", ".join(str(t) for t in r.facts.targets)
    return f"{role} → {targets}" if r.facts.poisoned and targets else role


def model_columns(kind: TrackKind, recs: list[TaskRecord]) -> list[str]:
    """The per-model scores to show: the outcome's fields the records hold, registered
    metrics first (booleans and flags after)."""
    from dataclasses import fields

    names = [f.name for f in fields(kind.outcome)]
    held = [n for n in names if any(outcome_field(r, n) is not None for r in recs)]
    if kind is DETECT:
        held = [n for n in held if n not in ("missing",)]
    return sorted(held, key=lambda n: n not in METRICS and n != "score")


def model_cell(r: TaskRecord, name: str) -> str:
    """One stored score as people read it ("-" when the task has none)."""
    value = outcome_field(r, name)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return human(name, float(value)) if name in METRICS else f"{float(value):.3f}"
    return str(value)
