"""The static report site of a run: index.html, a page per submission, the zoo page, and
the plots they show, all rendered from one ``RunView``.

index.html opens on the ranking of every track beside the attack x defense matrix; below
come the full tables (with CIs, failures and times against their budgets), the plots, the
failed tasks with their reasons, the reproduction table when the run has one and the run's
metadata. The zoo page reads the private truth of the zoo when the zoo is built on this
machine (the report is for the grader, never for a submission).

Here: the ``Site`` that lays the pages out, draws their plots and writes the files. The
tables and other fragments it places, pure functions of the view, are in
``harness.report.site_sections``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.report import attack_track, plots
from harness.report.html import esc, figure, page, table
from harness.report.matrix import display_order, group_of, matrices
from harness.report.numbers import human, seconds
from harness.report.site_sections import (
    by_dataset,
    compact_ranking,
    failures,
    matrix_table,
    metadata,
    model_cell,
    model_columns,
    page_name,
    reproduction,
    track_table,
    truth_text,
    when,
)
from harness.report.view import RunView, first, incomplete_note, runtimes, seeds_note
from harness.results import TaskRecord
from harness.tracks import KINDS, TrackKind
from harness.tracks.detect import DETECT
from harness.tracks.fuzz import FUZZ
from harness.tracks.repair import REPAIR

PLOTS = "plots"


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
            f"updated {when(v.info['updated'])}"
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

    def index(self) -> None:
        rank_html = "".join(compact_ranking(k, rows) for k, rows in self.rankings)
        gaps = incomplete_note(self.view.incomplete())
        top = (
            (f'<p class="warning"><strong>{esc(gaps)}</strong></p>' if gaps else "")
            + '<div class="first">'
            f'<section class="card"><h2>Rankings</h2>{rank_html or "<p>No scores yet.</p>"}'
            '<p class="note">Best first by each track\'s primary metric (AUC ↑, filter AUC ↑, '
            "DER ↑, activation rate ↑), ties by the second. Oracle entries are not ranked."
            f"{esc(seeds_note(self.view.seeds))}</p></section>"
            '<section class="card"><h2>Which defense catches which attack</h2>'
            f"{matrix_table(self.families, self.matrices)}</section></div>"
        )
        tables = "".join(track_table(k, rows, self.times) for k, rows in self.rankings)
        body = (
            top
            + "<h2>Tracks</h2>"
            + '<p class="note">Rates in percent; AUC, cross-entropy, DER, IoU on their own '
            "scales; bootstrap 95 % CIs over models in brackets. Times are per model; the "
            "budget is each task's wall-clock limit. Definitions: docs/METRICS.md.</p>"
            + tables
            + by_dataset(self.view)
            + (attack_track.html_table(self.view.attacks) if self.view.attacks else "")
            + self._plots_section()
            + failures(self.view)
            + reproduction(self.view)
            + metadata(self.view)
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
            metrics = model_columns(kind, mine)
            seeded = self.view.seeds > 1
            rows = [
                [
                    r.model_id,
                    *([str(r.replicate)] if seeded else []),
                    r.facts.dataset or "-",
                    r.facts.attack or "-",
                    truth_text(r),
                    r.status,
                    *(model_cell(r, m) for m in metrics),
                    seconds(r.seconds),
                    r.error or "",
                ]
                for r in sorted(
                    mine,
                    key=lambda r: (
                        r.facts.dataset or "",
                        r.facts.attack or "",
                        r.model_id,
                        r.replicate,
                    ),
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
def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _group(attack: str) -> str:
    return "clean" if attack == "none" else group_of(attack)


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
