"""The static report site of a run: index.html, a page per submission, the zoo page, and
the plots they show, all rendered from one ``RunView``.

index.html opens on the ranking of every track beside the attack x defense matrix; below
come the full tables (with CIs, failures and times against their budgets), the plots, the
failed tasks with their reasons, the reproduction table when the run has one and the run's
metadata. The zoo page reads the private truth of the zoo when the zoo is built on this
machine (the report is for the grader, never for a submission).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.report import attacks, plots
from harness.report.html import esc, figure, link, page, table
from harness.report.markdown import arrow, cell, entry_name, rank_text
from harness.report.matrix import Family, Matrix, display_order, group_of, matrices
from harness.report.numbers import human, seconds
from harness.report.view import (
    RankedRow,
    Runtime,
    RunView,
    first,
    incomplete_note,
    ranking,
    runtimes,
    seeds_note,
    task_label,
)
from harness.results import TaskRecord
from harness.scoring.metrics import METRICS
from harness.tracks import KINDS, TrackKind, aggregate
from harness.tracks.detect import DETECT
from harness.tracks.fuzz import FUZZ
from harness.tracks.repair import REPAIR

PLOTS = "plots"


def page_name(submission: str) -> str:
    """The file of a submission's page (its name, with anything odd replaced)."""
    return "sub-" + re.sub(r"[^A-Za-z0-9._-]", "_", submission) + ".html"


def _when(epoch: Any) -> str:
    try:
        return f"{dt.datetime.fromtimestamp(float(epoch), dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
    except (TypeError, ValueError, OverflowError):
        return "-"


@dataclass(frozen=True)
class SubPlot:
    """A plot drawn per submission from its tasks of one track (on its page and the index)."""

    stem: str  # plots/STEM-SUBMISSION.png
    title: str
    kind: TrackKind
    draw: Callable[[list[TaskRecord], str, Path], bool]


class Site:
    """Writes the pages of one run into ``out``; ``written`` lists every file."""

    def __init__(self, view: RunView, out: Path) -> None:
        self.view = view
        self.out = out
        self.written: list[Path] = []
        self.families, self.matrices = matrices(view)
        self.rankings = view.rankings()
        self.times = runtimes(view.records)
        self._masks: dict[str, Any] | None = None
        self.sub_plots = (
            SubPlot("ca-asr", "CA vs ASR before and after repair", REPAIR, plots.ca_asr),
            SubPlot(
                "masks",
                "Recovered vs true trigger masks",
                DETECT,
                lambda records, sub, path: plots.trigger_masks(records, sub, self._true_mask, path),
            ),
            SubPlot(
                "activation", "Backdoor activation rate per model", FUZZ, plots.activation_rates
            ),
        )

    # -- shared pieces -----------------------------------------------------------------
    def _meta(self) -> str:
        v = self.view
        return esc(
            f"run {v.run_id} · zoo profile {v.profile} · {len(v.model_ids)} models · "
            f"{len(v.submissions)} submissions · zoo hash {v.info['zoo_hash']} · "
            f"updated {_when(v.info['updated'])}"
        )

    def _nav(self) -> list[tuple[str, str]]:
        nav = [("index.html", "Leaderboard"), ("zoo.html", "Zoo")]
        nav += [(page_name(s), s) for s in self.view.submissions]
        return nav + [("LEADERBOARD.md", "Markdown"), ("leaderboard.csv", "CSV")]

    def _write(self, name: str, text: str) -> None:
        path = self.out / name
        path.write_text(text)
        self.written.append(path)

    def _plot(self, name: str, draw: Any, *args: Any) -> str | None:
        """Draw a plot into plots/NAME; its relative path, or None when nothing to draw."""
        path = self.out / PLOTS / name
        if path in self.written:  # drawn already, for another page
            return f"{PLOTS}/{name}"
        if draw(*args, path):
            self.written.append(path)
            return f"{PLOTS}/{name}"
        return None

    # -- index.html --------------------------------------------------------------------
    def _compact_ranking(self, kind: TrackKind, rows: list[RankedRow]) -> str:
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

    def _matrix_table(self) -> str:
        fams = self.families
        if not fams or not self.matrices:
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
        for m in self.matrices:
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
            "Columns: attack families (backdoored models in brackets), grouped; stealthy and "
            "face attacks at the right.</p>"
        )
        return (
            f'<div class="scroll"><table class="matrix"><thead><tr>{head1}</tr><tr>{head2}</tr>'
            f"</thead><tbody>{''.join(body)}</tbody></table></div>{legend}"
        )

    def _track_table(self, kind: TrackKind, rows: list[RankedRow]) -> str:
        columns = [c for c in kind.table.columns if any(c in r.cells for r in rows)]
        times = {t.submission: t for t in self.times if t.track == kind.name}
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

    def _plots_section(self) -> str:
        v, parts = self.view, []
        heat = [
            figure(src, m.title)
            for m in self.matrices
            if (
                src := self._plot(
                    f"matrix-{m.kind.name}-{m.heat.metric}.png", plots.heatmap, self.families, m
                )
            )
        ]
        if heat:
            parts.append("<h3>Attack x defense heatmaps</h3>" + "".join(heat))
        roc = [
            figure(src, f"Detection ROC curves on {name}", 420)
            for name, recs in v.datasets.items()
            if (src := self._plot(f"roc-{_slug(name)}.png", plots.roc_curves, first(recs), name))
        ]
        if roc:
            parts.append("<h3>ROC curves per data set</h3>" + "".join(roc))
        for plot in self.sub_plots:
            figs = [
                figure(src, f"{sub}: {plot.title}")
                for sub in self.view.submissions
                if (src := self._sub_plot(plot, sub))
            ]
            if figs:
                parts.append(f"<h3>{esc(plot.title)}</h3>" + "".join(figs))
        return "<h2>Plots</h2>" + "".join(parts) if parts else ""

    def _sub_plot(self, plot: SubPlot, sub: str) -> str | None:
        """``plot`` of ``sub``'s tasks (None when it has none to draw)."""
        if not any(r.submission == sub and r.track == plot.kind.name for r in self.view.records):
            return None
        return self._plot(f"{plot.stem}-{_slug(sub)}.png", plot.draw, self.view.primary, sub)

    def _true_mask(self, model_id: str) -> Any:
        """A backdoored model's (first) true trigger mask, from the zoo when it is here."""
        if self._masks is None:
            self._masks = {}
            for m in _zoo_models(self.view.profile):
                triggers = m.triggers() if m.truth().poisoned else []
                self._masks[m.id] = triggers[0][0] if triggers else None
        return self._masks.get(model_id)

    def _failures(self) -> str:
        fails = self.view.failures
        if not fails:
            return "<h2>Failed tasks</h2><p>None: every task answered within its budget.</p>"
        rows = [[r.submission, task_label(r), r.track, r.error or "-"] for r in fails]
        return "<h2>Failed tasks</h2>" + table(
            ["submission", "model", "track", "reason"], rows, names=4, css="text"
        )

    def _reproduction(self) -> str:
        figs = self.view.figures
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

    def _metadata(self) -> str:
        v = self.view
        rows = [
            ["run", v.run_id],
            ["zoo profile", v.profile],
            ["zoo hash", v.info["zoo_hash"]],
            ["models", str(len(v.model_ids))],
            ["seeds", str(v.seeds)],
            ["harness (run / report)", f"{v.info['harness_version']} / {__version__}"],
            ["created", _when(v.info["created"])],
            ["updated", _when(v.info["updated"])],
            ["rendered", _when(dt.datetime.now(dt.timezone.utc).timestamp())],
            ["isolation", ", ".join(v.isolations) or "-"],
        ]
        rows += [["command", c] for c in v.info.get("commands", [])]
        if v.variants:
            rows.append(["not ranked (reproduction variants)", ", ".join(v.variants)])
        if v.unknown_truth:
            rows.append(["truth unknown (not scored)", ", ".join(v.unknown_truth)])
        return "<h2>Run</h2>" + table(["", "value"], rows, names=2, css="text")

    def index(self) -> None:
        rank_html = "".join(self._compact_ranking(k, rows) for k, rows in self.rankings)
        gaps = incomplete_note(self.view.incomplete())
        top = (
            (f'<p class="warning"><strong>{esc(gaps)}</strong></p>' if gaps else "")
            + '<div class="first">'
            f'<section class="card"><h2>Rankings</h2>{rank_html or "<p>No scores yet.</p>"}'
            '<p class="note">Best first by each track\'s primary metric (AUC ↑, filter AUC ↑, '
            "DER ↑, activation rate ↑), ties by the second. Oracle entries are not ranked."
            f"{esc(seeds_note(self.view.seeds))}</p></section>"
            '<section class="card"><h2>Which defense catches which attack</h2>'
            f"{self._matrix_table()}</section></div>"
        )
        tables = "".join(self._track_table(k, rows) for k, rows in self.rankings)
        per_set = ""
        if len(self.view.datasets) > 1:
            for name, recs in self.view.datasets.items():
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
        body = (
            top
            + "<h2>Tracks</h2>"
            + '<p class="note">Rates in percent; AUC, cross-entropy, DER, IoU on their own '
            "scales; bootstrap 95 % CIs over models in brackets. Times are per model; the "
            "budget is each task's wall-clock limit. Definitions: docs/METRICS.md.</p>"
            + tables
            + per_set
            + (attacks.html_table(self.view.attacks) if self.view.attacks else "")
            + self._plots_section()
            + self._failures()
            + self._reproduction()
            + self._metadata()
        )
        self._write(
            "index.html", page(f"Leaderboard: {self.view.run_id}", self._meta(), self._nav(), body)
        )

    # -- a page per submission ---------------------------------------------------------
    def submission(self, sub: str) -> None:
        recs = [r for r in self.view.records if r.submission == sub]
        parts = []
        for kind in KINDS:
            mine = [r for r in recs if r.track == kind.name]
            if not mine:
                continue
            metrics = _model_columns(kind, mine)
            seeded = self.view.seeds > 1
            rows = [
                [
                    r.model_id,
                    *([str(r.seed)] if seeded else []),
                    r.facts.dataset or "-",
                    r.facts.attack or "-",
                    _truth(r),
                    r.status,
                    *(_model_cell(r, m) for m in metrics),
                    seconds(r.seconds),
                    r.error or "",
                ]
                for r in sorted(
                    mine,
                    key=lambda r: (r.facts.dataset or "", r.facts.attack or "", r.model_id, r.seed),
                )
            ]
            head = ["model", *(["seed"] if seeded else []), "data set", "attack", "truth"]
            parts.append(
                f"<h2>{esc(kind.table.title)}</h2>"
                + table(
                    [*head, "status", *metrics, "time", "failure"],
                    rows,
                    names=len(head) + 1,
                )
            )
        figs = [
            figure(src, f"{sub}: {plot.title}")
            for plot in self.sub_plots
            if (src := self._sub_plot(plot, sub))
        ]
        if figs:
            parts.append("<h2>Plots</h2>" + "".join(figs))
        intro = (
            f'<p class="note">One row per zoo model{" and seed" if self.view.seeds > 1 else ""}: '
            f"its attack, its truth (revealed after the run), every score the model's task "
            f"stored, time and failure. {len(recs)} tasks.</p>"
        )
        self._write(
            page_name(sub),
            page(f"Submission {sub}", self._meta(), self._nav(), intro + "".join(parts)),
        )

    # -- the zoo page ------------------------------------------------------------------
    def zoo(self) -> None:
        v = self.view
        models = _zoo_models(v.profile)
        counts: dict[str, list[TaskRecord]] = {}
        seen: dict[str, TaskRecord] = {}
        for r in v.records:
            seen.setdefault(r.model_id, r)
        for r in seen.values():
            counts.setdefault(r.facts.attack or "unknown", []).append(r)
        count_rows = [
            [
                attack,
                _group(attack),
                str(sum(bool(r.facts.poisoned) for r in rs)),
                str(sum(r.facts.poisoned is False for r in rs)),
            ]
            for attack, rs in sorted(counts.items(), key=lambda item: display_order(item[0]))
        ]
        parts = [
            "<h2>Models per attack</h2>"
            + table(
                ["attack", "group", "backdoored", "clean (incl. counterparts)"], count_rows, names=2
            )
        ]
        if models:
            from harness.zoo.pictures import render_triggers

            pics = render_triggers(v.profile, self.out / PLOTS / "triggers")
            self.written += pics
            parts.append(
                "<h2>Triggers</h2>"
                + "".join(
                    figure(f"{PLOTS}/triggers/{p.name}", p.stem.removeprefix("trigger-"), 460)
                    for p in pics
                )
            )
            rows = []
            for m in models:
                t = m.truth()
                rows.append(
                    [
                        m.id,
                        m.card().dataset,
                        t.attack if t.poisoned else "none",
                        t.role or "-",
                        ", ".join(str(x) for x in t.targets) or "-",
                        human("ca", t.ca),
                        human("asr", t.asr if t.poisoned else None),
                    ]
                )
            parts.append(
                "<h2>Models</h2>"
                + table(
                    ["model", "data set", "attack", "role", "targets", "CA", "ASR"], rows, names=5
                )
            )
        else:
            parts.append(
                f'<p class="note">The zoo of profile {esc(v.profile)} is not built on this '
                "machine: trigger pictures and each model's CA/ASR need it "
                f"(<code>harness zoo build --profile {esc(v.profile)}</code>).</p>"
            )
        self._write(
            "zoo.html", page(f"Zoo: {v.profile}", self._meta(), self._nav(), "".join(parts))
        )

    def render(self) -> list[Path]:
        self.out.mkdir(parents=True, exist_ok=True)
        self.index()
        for sub in self.view.submissions:
            self.submission(sub)
        self.zoo()
        return self.written


# -- helpers ----------------------------------------------------------------------------------
def _time_cells(t: Runtime | None) -> list[str]:
    if t is None:
        return ["-"] * 5
    return [seconds(t.mean), seconds(t.max), seconds(t.budget), str(t.timeouts), t.isolation]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _group(attack: str) -> str:
    return "clean" if attack == "none" else group_of(attack)


def _group_class(group: str) -> str:
    return group if group in ("stealthy", "faces") else ""


def _matrix_caption(m: Matrix) -> str:
    info = METRICS[m.heat.metric]
    return f"{m.heat.metric} ({'higher' if info.higher_is_better else 'lower'} is better): {info.description}"


def _truth(r: TaskRecord) -> str:
    if r.facts.poisoned is None:
        return "unknown"
    role = r.facts.role or ("backdoored" if r.facts.poisoned else "clean")
    targets = ", ".join(str(t) for t in r.facts.targets)
    return f"{role} → {targets}" if r.facts.poisoned and targets else role


def _model_columns(kind: TrackKind, recs: list[TaskRecord]) -> list[str]:
    """The per-model scores to show: the outcome's fields the records hold, registered
    metrics first (booleans and flags after)."""
    from dataclasses import fields

    names = [f.name for f in fields(kind.outcome)]
    held = [n for n in names if any(n in r.scores for r in recs)]
    if kind is DETECT:
        held = [n for n in held if n not in ("missing",)]
    return sorted(held, key=lambda n: n not in METRICS and n != "score")


def _model_cell(r: TaskRecord, name: str) -> str:
    value = r.scores.get(name)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return human(name, float(value)) if name in METRICS else f"{float(value):.3f}"
    return str(value)


def _zoo_models(profile: str) -> list[Any]:
    from harness.errors import ZooError
    from harness.zoo.store import ZooStore

    try:
        return ZooStore().models(profile)
    except (ZooError, OSError):
        return []


def render_site(view: RunView, out: Path) -> list[Path]:
    """Write the report site of ``view`` into ``out``; every written file."""
    return Site(view, out).render()
