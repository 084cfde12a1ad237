"""`harness reproduce`: run the reference defenses where their source papers report a
figure, and print the paper's number beside ours (the table of docs/REPRODUCTION.md; the
figures and their sources are in ``harness/reproduce/figures.py``).

Each figure names the submission variants it needs (a folder plus parameter overrides) and
the zoo models they run on (chosen by the models' private truth: attack and data set).
The tasks go through the ordinary runner and results store under the run id
``reproduce-<profile>``, so a second call only computes what is missing. A figure whose
models the profile lacks is reported with ``holds = None`` rather than skipped silently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from harness.execution.config import RunConfig
from harness.execution.runner import Plan, RunProgress, run_plans
from harness.executors import Executor
from harness.reproduce import figures as _figures  # noqa: F401 - importing registers them
from harness.reproduce.base import (
    FIGURES,
    SUBMISSIONS,
    FigureResult,
    Results,
    Variant,
    model_kind,
)
from harness.results import ResultsStore
from harness.submission.manifest import SubmissionSpec, load_submission
from harness.zoo.store import ZooModel, ZooStore

__all__ = ["FIGURES", "FigureResult", "Variant", "markdown", "reproduce", "variant_spec"]


# -- running ----------------------------------------------------------------------------------
def variant_spec(v: Variant, root: Path = SUBMISSIONS, family: str | None = None) -> SubmissionSpec:
    """The submission with the variant's overrides (for the models of data set ``family``),
    stored under the variant's name; a variant that is the submission as it is keeps its
    name and content hash, so the results of a ``harness run`` of it count."""
    spec = load_submission(root / v.folder)
    overrides = v.params_for(family)
    if v.name == spec.name and not overrides and (spec.oracle or not v.oracle):
        return spec
    params = {**spec.params, **overrides}
    digest = hashlib.sha256(
        json.dumps([spec.content_hash, params, v.oracle], sort_keys=True).encode()
    ).hexdigest()[:16]
    return dataclasses.replace(
        spec, name=v.name, params=params, oracle=v.oracle or spec.oracle, content_hash=digest
    )


def figure_plans(figures: list[str], models: list[ZooModel]) -> list[Plan]:
    """What the figures need run: each variant once, on the models any of them asks for,
    one plan per distinct submission spec (a data set family with overrides of its own,
    ``Variant.family_params``, gets its own spec and content hash)."""
    variants: dict[str, Variant] = {}
    kinds: dict[str, set[tuple[str, str]]] = {}
    for name in figures:
        for v in FIGURES[name][0]:
            variants.setdefault(v.name, v)
            kinds.setdefault(v.name, set()).update(v.kinds)
    kind_of = {m.id: model_kind(m) for m in models}  # reads each model's card and truth once
    plans = []
    for v in variants.values():
        by_family: dict[str, list[str]] = {}
        for model_id, kind in kind_of.items():
            if kind in kinds[v.name]:
                by_family.setdefault(kind[1], []).append(model_id)
        specs: dict[str, tuple[SubmissionSpec, list[str]]] = {}
        for family, ids in by_family.items():
            spec = variant_spec(v, family=family)
            specs.setdefault(spec.content_hash, (spec, []))[1].extend(ids)
        plans += [Plan(spec, list(v.tracks), ids) for spec, ids in specs.values()]
    return plans


def reproduce(
    profile: str,
    store: ResultsStore,
    config: RunConfig = RunConfig(),
    *,
    only: list[str] | None = None,
    executor: Executor | None = None,
    progress: RunProgress | None = None,
) -> list[FigureResult]:
    """Run what the chosen figures need on ``profile`` (``only`` these; default: all) and
    measure them, under ``config.run_id`` (default ``reproduce-<profile>``; the run of a
    ``harness run`` of the reference submissions on ``profile`` lends the tasks it already
    holds). The figures are kept with the run, for its report, as measured by
    ``config.command`` (default ``harness reproduce``); they read the first replicate."""
    unknown = sorted(set(only or []) - set(FIGURES))
    if unknown:
        from harness.errors import HarnessError

        raise HarnessError(
            f"unknown figure(s) {', '.join(unknown)}", fix=f"choose from {', '.join(FIGURES)}"
        )
    chosen = [name for name in FIGURES if not only or name in only]
    zoo = ZooStore()
    models = {m.id: m for m in zoo.models(profile)}
    run_id = config.run_id or f"reproduce-{profile}"
    command = config.command or "harness reproduce"
    config = dataclasses.replace(config, run_id=run_id, command=command)
    plans = figure_plans(chosen, list(models.values()))
    # Every variant's jobs in one run, so that all workers stay busy to the end.
    run_plans(plans, profile, store, config, zoo=zoo, executor=executor, progress=progress)
    results = Results(store.tasks(run_id, replicate=0), models)  # figures: the first seed
    figures = []
    for name in chosen:
        measured = FIGURES[name][1](results)
        figures += measured if isinstance(measured, list) else [measured]
    store.save_figures(run_id, [f.as_json() for f in figures], command)
    return figures


def markdown(figures: list[FigureResult], command: str) -> str:
    from tabulate import tabulate

    rows = [
        [f.name, f.source, f.paper, f.measured, {True: "yes", False: "no", None: "-"}[f.holds]]
        for f in figures
    ]
    table = tabulate(
        rows, headers=["figure", "source", "paper", "measured", "holds"], tablefmt="github"
    )
    text = f"# Reproduction\n\nMade by `{command}`.\n\n{table}\n"
    for f in figures:
        if f.details:
            text += f"\n## {f.name}: per instance\n\n" + "\n".join(f.details) + "\n"
    return text
