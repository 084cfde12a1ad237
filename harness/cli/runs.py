"""`harness submission check`, `export goodnet`, `run`, `leaderboard`, `report`, `results`
and `reproduce`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.api import DEFAULT_FUZZ_BUDGET
from harness.cli.common import (
    BackendOpt,
    DbOpt,
    JsonOpt,
    ProfileOpt,
    RenderRunOpt,
    Reporter,
    ReportOutOpt,
    RetryTimeoutsOpt,
    SchedulerOpt,
    TaskProgress,
    WorkersOpt,
    app,
    command_line,
    export_app,
    go_on_without,
    operator_log,
    out,
    read_submissions,
    results_store,
    sub_app,
    user_errors,
)
from harness.cli.options import TaskOptions, takes_options
from harness.errors import HarnessError

#: The most seeds one run may ask for (each multiplies the run's time).
MAX_SEEDS = 20


@sub_app.command("check")
@user_errors
def submission_check(
    path: Annotated[Path, typer.Argument(help="Submission folder.")],
    backend: BackendOpt = "auto",
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            help="Run only this check (repeatable), e.g. --check check_same_seed; the checks "
            "it needs run first, unreported. Default: all of them.",
        ),
    ] = None,
) -> None:
    """Run the conformance suite on a two-model toy zoo; each failure says how to fix it."""
    from harness.conformance import CHECK_PROFILE, check_submission
    from harness.conformance.suite import chosen_checks

    chosen_checks(only)  # an unknown name stops here, before any zoo is built
    from harness.submission.manifest import load_submission
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    load_submission(path)  # a missing or malformed manifest is a one-line user error
    models = build_profile(load_profile(CHECK_PROFILE))

    def report(r: Any) -> None:
        mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
        line = f"{mark} {r.name}"
        if not r.passed:
            line += f": {r.message} (fix: {r.fix})"
        out.print(line, highlight=False, soft_wrap=True)

    results = check_submission(path, models, backend=backend, report=report, only=only)
    failed = [r for r in results if not r.passed]
    out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed", highlight=False)
    if failed:
        raise typer.Exit(1)


@export_app.command("goodnet")
@user_errors
def export_goodnet_cmd(
    submission: Annotated[Path, typer.Argument(help="A repair submission with export().")],
    model_id: Annotated[str, typer.Option("--model", help="Zoo model to repair.")],
    out_file: Annotated[
        Path, typer.Option("--out", help="The GoodNet file to write (.h5 or .keras).")
    ],
    profile: ProfileOpt = "default",
    backend: BackendOpt = "auto",
) -> None:
    """Repair one zoo model with a submission (in the sandbox) and write its GoodNet as a
    single Keras file that plain `keras.models.load_model` loads and that answers N for
    rejected inputs, so the CSAW-HackML grader (load, argmax, accuracy) can score it."""
    from harness.execution.goodnet import export_goodnet
    from harness.zoo.store import ZooStore

    model = ZooStore().model(profile, model_id)
    result = export_goodnet(submission, model, out_file, backend=backend)
    s = result.scores
    line = f"wrote {result.path}: {result.outputs} outputs (N = {result.outputs - 1} = rejected)"
    line += f"; CA {s['ca']:.3f}, rejects {s['dtr_clean']:.3f} of clean inputs"
    if s.get("asr") is not None:
        line += f"; ASR {s['asr']:.3f}, rejects {s['dtr_poisoned']:.3f} of poisoned inputs"
    line += f"; agrees with the repair track on {100 * result.agreement:.1f}% of inputs"
    out.print(line, highlight=False)


# -- runs and results -----------------------------------------------------------------------
@dataclass(frozen=True)
class RunCommandOptions(TaskOptions):
    """`harness run`'s arguments and options."""

    paths: Annotated[list[Path], typer.Argument(help="Submission folders.")]
    profile: ProfileOpt = "default"
    tracks: Annotated[
        str,
        typer.Option(
            help="Comma-separated tracks: detect (with target and trigger), filter, repair, "
            "fuzz. A submission runs those of them it declares."
        ),
    ] = "detect,repair"
    backend: BackendOpt = "auto"
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", help="Name of the run (default: the profile name)."),
    ] = None
    fuzz_budget: Annotated[
        int,
        typer.Option("--fuzz-budget", min=1, help="Inputs a fuzzer may generate per model."),
    ] = DEFAULT_FUZZ_BUDGET
    db: DbOpt = None
    workers: WorkersOpt = None
    scheduler: SchedulerOpt = None
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
            max=MAX_SEEDS,
            help="Run every task under this many seeds (replicates 0 .. K-1, each with its "
            "own task seed, evaluation samples and anonymous model id); reports show each "
            "score's mean and standard deviation over the seeds. A later run with more "
            "seeds adds only the missing replicates.",
        ),
    ] = 1
    configure_on: Annotated[
        str | None,
        typer.Option(
            "--configure-on",
            help="Learned detectors (configure = true) learn from this profile's training "
            "split (default: the run's own profile's); refused when it holds a model the run "
            "evaluates.",
        ),
    ] = None
    retry_timeouts: RetryTimeoutsOpt = False


@app.command("run")
@user_errors
@takes_options
def run(o: RunCommandOptions) -> None:
    """Run submissions against every model of a built zoo; resumes where it stopped.

    Each submission's tracks on one model are one job, run in one sandbox session; jobs
    run on --workers processes here or on a Dask cluster (--scheduler), and every task
    is stored as soon as it is done, so a killed run loses only the jobs in flight.
    With --seeds K each task runs K times under different seeds, so a score's dependence
    on the defense's own randomness is measured (docs/METRICS.md, "Seeds")."""
    from harness.api import Track
    from harness.execution.runner import Plan, run_isolated
    from harness.grading.barrier import reason_of
    from harness.zoo.store import ZooStore

    try:
        wanted = [Track.parse(t) for t in o.tracks.split(",") if t.strip()]
    except ValueError as exc:
        raise HarnessError(str(exc), fix="e.g. --tracks detect,repair") from None
    log = operator_log()
    specs, refused = read_submissions(o.paths, log)
    for spec in [s for s in specs if set(s.tracks) == {Track.ATTACK}]:
        specs.remove(spec)
        refused.append(HarnessError(
            f"{spec.name} is an attack hand-in: it makes models, it does not answer them",
            path=spec.path, fix="score it with `harness attack run HAND-IN --defenses ...`",
        ))  # fmt: skip
    go_on_without(refused, len(specs))
    ZooStore().models(o.profile)  # an unbuilt zoo is one line before any worker starts
    store = o.store()
    with Reporter("tasks") as reporter, o.executor() as executor:
        summary, failures = run_isolated(
            [Plan(spec, wanted) for spec in specs],
            o.profile,
            store,
            o.run_config(),
            executor=executor,
            progress=TaskProgress(reporter),
        )
    for name, raised in failures.items():
        log.write(name, "run", raised)
        go_on_without([HarnessError(f"{name}: {reason_of(raised, 'run', log)}")], 1)
    left_out = len(refused) + len(failures)
    out.print(
        f"run {summary.run_id}: {summary.done} tasks done ({summary.failed} failed), "
        f"{summary.skipped} already in the store"
        + (f"; {left_out} submission(s) refused or stopped (above)" if left_out else ""),
        highlight=False,
    )
    unknown = [m.id for m in ZooStore().models(o.profile) if m.truth().poisoned is None]
    if unknown:
        out.print(
            f"note: truth unknown for {len(unknown)} imported model(s) ({', '.join(unknown)}): "
            "detection outputs are stored but not scored; repairs are scored on clean data only",
            highlight=False,
        )


@app.command("leaderboard")
@user_errors
def leaderboard(
    out_dir: ReportOutOpt = None,
    run_id: RenderRunOpt = None,
    db: DbOpt = None,
) -> None:
    """Render LEADERBOARD.md and leaderboard.csv from the results store (`harness report`
    writes them too, with the HTML site)."""
    from harness.paths import repo_root
    from harness.report import render_leaderboard

    target = out_dir or repo_root() / "leaderboard"
    for path in render_leaderboard(results_store(db), target, run_id):
        out.print(f"wrote {path}", highlight=False)


@app.command("report")
@user_errors
def report(
    out_dir: ReportOutOpt = None,
    run_id: RenderRunOpt = None,
    db: DbOpt = None,
) -> None:
    """Render a run's report: a static HTML site with plots, and the Markdown and CSV.

    OUT/index.html opens on every track's ranking beside the attack x defense matrix (which
    defense catches which attack family, in the groups of harness.attacks.GROUPS), then the full
    tables with CIs, failures and times against their budgets, ROC curves, CA vs ASR before
    and after repair, recovered vs true trigger masks, fuzzing's activation rates, the
    reproduction table when the run has one, and the run's metadata. A page per submission
    gives one row per zoo model; zoo.html shows each attack's trigger. The site opens from
    the file system: no server, nothing loaded from outside."""
    from harness.paths import repo_root
    from harness.report import render_report

    target = out_dir or repo_root() / "leaderboard"
    with Reporter("report"):
        written = render_report(results_store(db), target, run_id)
    pages = [p for p in written if p.suffix == ".html"]
    out.print(
        f"wrote {len(written)} files ({len(pages)} pages, "
        f"{sum(p.suffix == '.png' for p in written)} plots, LEADERBOARD.md, leaderboard.csv)",
        highlight=False,
    )
    out.print(f"open {(target / 'index.html').resolve()}", highlight=False)


@app.command("results")
@user_errors
def results(
    as_json: JsonOpt = False,
    per_model: Annotated[
        bool,
        typer.Option("--per-model", help="Add one object per zoo model and metric."),
    ] = False,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Run to print (default: the latest).")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Print every aggregate score of a run (a table, or JSON objects with --json, each
    stamped with the format's schema_version, the run and its zoo hash)."""
    from harness.report import resolve_run
    from harness.results.schema import RESULTS_JSON_VERSION
    from harness.scoring.aggregate import per_model as per_model_scores
    from harness.tracks import aggregate

    store = results_store(db)
    run = resolve_run(store, run_id)
    records = store.tasks(run)
    scores = aggregate(records)
    rows = [s.as_json() for s in scores]
    if per_model:
        rows += [s.as_json(per_model=True) for s in per_model_scores(records)]
    if as_json:
        zoo_hash = next(r["zoo_hash"] for r in store.runs() if r["run_id"] == run)
        stamp = {"schema_version": RESULTS_JSON_VERSION, "run_id": run, "zoo_hash": zoo_hash}
        print(json.dumps([{**stamp, **row} for row in rows], indent=1))
        return
    from tabulate import tabulate

    out.print(tabulate(rows, headers="keys", floatfmt=".4f"), highlight=False)


@dataclass(frozen=True)
class ReproduceOptions(TaskOptions):
    """`harness reproduce`'s options."""

    profile: ProfileOpt = "default"
    only: Annotated[
        str | None,
        typer.Option(help="Comma-separated figure names (default: every figure)."),
    ] = None
    as_json: JsonOpt = False
    write: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Markdown file to write (default: docs/REPRODUCTION.md in the repo).",
        ),
    ] = None
    backend: BackendOpt = "auto"
    fuzz_budget: Annotated[
        int,
        typer.Option("--fuzz-budget", min=1, help="Inputs BackFuzz may generate per model."),
    ] = DEFAULT_FUZZ_BUDGET
    db: DbOpt = None
    workers: WorkersOpt = None
    scheduler: SchedulerOpt = None
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            help="Store the tasks under this run (default: reproduce-PROFILE). The run of a "
            "`harness run` of the reference submissions on the same profile lends its "
            "results: a figure's task already there is not run again (make demo does this).",
        ),
    ] = None
    retry_timeouts: RetryTimeoutsOpt = False


@app.command("reproduce")
@user_errors
@takes_options
def reproduce_cmd(o: ReproduceOptions) -> None:
    """Run the reference defenses where the papers report a figure; print paper vs ours.

    Tasks are stored under the run `reproduce-PROFILE` (or --run-id), so a second call
    only runs what is missing. Each figure is one claim of a paper (BackFuzz, Neural
    Cleanse, Xiong et al.'s attacks on it, Fine-Pruning, STRIP, the CSAW-HackML decision
    GoodNet; `recent-attacks`: SIG, label-consistent, Refool, WaNet and Adaptive-Blend
    against Neural Cleanse, STRIP and Fine-Pruning, over the recent-attacks profile), with
    the paper's number, ours and whether the claim holds; see docs/REPRODUCTION.md and
    docs/REPRODUCTION-recent.md."""
    from harness.paths import repo_root
    from harness.reproduce import markdown, reproduce

    names = [n.strip() for n in o.only.split(",") if n.strip()] if o.only else None
    store = o.store()
    with Reporter("reproduce") as reporter, o.executor() as executor:
        figures = reproduce(
            o.profile,
            store,
            o.run_config(),
            only=names,
            executor=executor,
            progress=TaskProgress(reporter),
        )
    text = markdown(figures, command_line())
    target = o.write or repo_root() / "docs" / "REPRODUCTION.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    if o.as_json:
        print(json.dumps([f.as_json() for f in figures], indent=1))
        return
    out.print(text, highlight=False)
    out.print(f"wrote {target}", highlight=False)
