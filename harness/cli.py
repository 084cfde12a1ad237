"""The `harness` command line: thin typer commands over the library."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.api import DEFAULT_FUZZ_BUDGET
from harness.errors import HarnessError

F = TypeVar("F", bound=Callable[..., Any])
err = Console(stderr=True)
out = Console(soft_wrap=True)  # tables and JSON go to pipes unwrapped

app = typer.Typer(
    help="Evaluate defenses against backdoored neural networks: build a zoo of "
    "clean and backdoored models, run submissions in a sandbox, score them and "
    "render a leaderboard.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
zoo_app = typer.Typer(help="Build and inspect the model zoo.", no_args_is_help=True)
sub_app = typer.Typer(help="Work with submission folders.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
export_app = typer.Typer(help="Export repaired models for other graders.", no_args_is_help=True)
app.add_typer(sub_app, name="submission")
app.add_typer(export_app, name="export")

ProfileOpt = Annotated[
    str,
    typer.Option(
        "--profile",
        "-p",
        help="Zoo profile: a name in models_zoo/ (tiny, default, ...) or a path to a .toml file.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
BackendOpt = Annotated[
    str,
    typer.Option(
        help="Sandbox backend: auto (bwrap where usable), "
        "bwrap, or process (no isolation; never official)."
    ),
]
DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="Results store (SQLite). Default: $HARNESS_HOME/results.sqlite."),
]


def user_errors(fn: F) -> F:
    """Print a user-caused error (HarnessError, or an OS/SQLite error on a user path) as one
    line on stderr and exit 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            line = exc.line()
        except (OSError, sqlite3.Error) as exc:  # unwritable output, full disk, locked store
            where = getattr(exc, "filename", None)
            line = HarnessError(
                str(getattr(exc, "strerror", None) or exc),
                path=where,
                fix="check the path exists and is writable (see --out, --db, $HARNESS_HOME)",
            ).line()
        err.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal and os.environ.get("HARNESS_PROGRESS") != "1",
    )


def _store(db: Path | None) -> Any:
    from harness.paths import default_results_db
    from harness.store import ResultsStore

    return ResultsStore(db or default_results_db())


# -- zoo ------------------------------------------------------------------------------------
@zoo_app.command("build")
@user_errors
def zoo_build(
    profile: ProfileOpt = "default",
    force: Annotated[bool, typer.Option(help="Retrain even cached models.")] = False,
    mnist: Annotated[
        Path | None,
        typer.Option(help="Your own MNIST: a Keras mnist.npz or a folder of IDX files."),
    ] = None,
) -> None:
    """Train every model of a profile (cached by spec hash; a rebuild takes seconds)."""
    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile

    spec = load_profile(profile)
    with _progress() as bar:
        task = bar.add_task(f"building {spec.name}", total=len(spec.entries))

        def done(entry: Any, cached: bool) -> None:
            bar.console.print(f"{'cached ' if cached else 'trained'} {entry.id}", highlight=False)
            bar.advance(task)

        models = build_profile(spec, force=force, mnist_source=mnist, on_done=done)
    for m in models:
        t = m.truth()
        asr = f"{t.asr:.3f}" if t.asr is not None else "-"
        out.print(f"{m.id:36s} CA {t.ca:.3f}  ASR {asr}", highlight=False)


@zoo_app.command("list")
@user_errors
def zoo_list(profile: ProfileOpt = "default", as_json: JsonOpt = False) -> None:
    """List a built profile's models (public information only)."""
    from harness.zoo.store import ZooStore

    rows = [
        {"id": m.id, "hash": m.hash, **{k: v for k, v in vars(m.card()).items() if k != "id"}}
        for m in ZooStore().models(profile)
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    from tabulate import tabulate

    out.print(
        tabulate(
            [
                [
                    r["id"],
                    r["dataset"],
                    r["num_classes"],
                    "x".join(map(str, r["input_shape"])),
                    r["hash"],
                ]
                for r in rows
            ],
            headers=["id", "dataset", "classes", "input", "hash"],
        ),
        highlight=False,
    )


@zoo_app.command("show")
@user_errors
def zoo_show(
    model_id: Annotated[str, typer.Argument(help="Model id, as in `zoo list`.")],
    profile: ProfileOpt = "default",
    truth: Annotated[
        bool,
        typer.Option(
            "--truth", help="Also print the private ground truth (attack, targets, CA/ASR)."
        ),
    ] = False,
) -> None:
    """Print a model's public card, and with --truth its hidden ground truth."""
    from dataclasses import asdict

    from harness.zoo.store import ZooStore

    model = ZooStore().model(profile, model_id)
    body: dict[str, Any] = {"card": asdict(model.card())}
    if truth:
        body["truth"] = asdict(model.truth())
    out.print_json(json.dumps(body))


@zoo_app.command("report")
@user_errors
def zoo_report_cmd(
    profile: ProfileOpt = "default",
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One object per entry: id, dataset, attack, poisoned, targets, ca, asr, "
            "asr_floor (and trigger_sizes, arch, ca_gap, build_seconds).",
        ),
    ] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="A Markdown table.")] = False,
) -> None:
    """Every entry of a built profile with its hidden truth: attack, targets, trigger size,
    measured CA and ASR, and the recipe's ASR floor. For the zoo's owner: it reads the truth."""
    from tabulate import tabulate

    from harness.zoo.report import CA_TOLERANCE, table_rows, zoo_report

    report = zoo_report(profile)
    if as_json:
        out.print_json(json.dumps(report.rows))
        return
    rows, headers = table_rows(report)
    out.print(
        tabulate(
            rows,
            headers=headers,
            tablefmt="github" if markdown else "simple",
            disable_numparse=True,
        ),
        highlight=False,
    )
    if report.clean_ca_means:
        means = ", ".join(f"{ds} {ca:.4f}" for ds, ca in report.clean_ca_means.items())
        out.print(
            f"\nclean CA mean: {means}; CA gap = the data set's clean mean - CA, in points "
            f"(limit {100 * CA_TOLERANCE:.1f})",
            highlight=False,
        )
    for line in report.failures:
        err.print(f"[yellow]warning:[/yellow] {line}", highlight=False)


@zoo_app.command("audit")
@user_errors
def zoo_audit(
    profile: ProfileOpt = "default",
    repeats: Annotated[
        int, typer.Option(min=1, help="Repeats of the 5-fold cross validation.")
    ] = 20,
) -> None:
    """Leakage audit: can simple classifiers tell clean from backdoored using only the
    public bundles' files, metadata and weight statistics (no inference)? Exits 1 when
    any reaches a cross-validated ROC-AUC above 0.6."""
    from harness.errors import ZooError
    from harness.zoo.audit import AUC_LIMIT, audit_models
    from harness.zoo.store import ZooStore

    try:
        result = audit_models(ZooStore().models(profile), repeats=repeats)
    except ValueError as exc:
        raise ZooError(str(exc), fix="audit a profile with more models (e.g. full)") from None
    out.print(
        f"{profile}: {result.n_clean} clean, {result.n_backdoored} backdoored, "
        f"{result.n_features} features",
        highlight=False,
    )
    for name, auc in result.aucs.items():
        out.print(f"  {name:22s} ROC-AUC {auc:.3f}", highlight=False)
    for group, aucs in result.by_group.items():
        found = ", ".join(f"{name} {auc:.3f}" for name, auc in aucs.items())
        out.print(f"  {group} alone: {found}", highlight=False)
    verdict = "passed" if result.passed else "FAILED"
    out.print(f"audit {verdict} (limit {AUC_LIMIT})", highlight=False)
    if not result.passed:
        raise typer.Exit(1)


@zoo_app.command("pictures")
@user_errors
def zoo_pictures(
    profile: ProfileOpt = "default",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNGs.")] = Path("docs/img"),
) -> None:
    """Render each attack's trigger (clean image, mask, pattern, stamped image) as a PNG,
    from a built profile, and a grid of SynthFaces identities. Shows private truth: for
    documentation, not for submissions."""
    from harness.zoo.pictures import render_synthfaces, render_triggers
    from harness.zoo.store import ZooStore

    paths = render_triggers(profile, out_dir)
    datasets = {m.card().dataset for m in ZooStore().models(profile)}
    faces = sorted(d for d in datasets if d.startswith("synthfaces"))
    paths += [render_synthfaces(faces[0], out_dir)] if faces else []
    for path in paths:
        out.print(str(path), highlight=False)


@zoo_app.command("import")
@user_errors
def zoo_import(
    model_file: Annotated[
        Path,
        typer.Argument(
            help="A contest model: a full Keras 2 .h5 model, or a weights-only .h5 file "
            "(loaded into --arch)."
        ),
    ],
    model_id: Annotated[str, typer.Option("--id", help="The entry's id in the profile.")],
    clean_val: Annotated[
        Path,
        typer.Option(
            help="Clean data handed to submissions (contest HDF5: 'data', 'label'), e.g. "
            "clean_validation_data.h5."
        ),
    ],
    test: Annotated[
        Path, typer.Option(help="Clean test data for scoring, e.g. clean_test_data.h5.")
    ],
    poisoned: Annotated[
        Path | None,
        typer.Option(
            help="Poisoned test data, e.g. sunglasses_poisoned_data.h5: makes the entry "
            "backdoored and measures its ASR."
        ),
    ] = None,
    poisoned_labels: Annotated[
        str,
        typer.Option(
            help="What the poisoned file's labels are: 'target' (the contest's files) or "
            "'source' (true labels; give --target)."
        ),
    ] = "target",
    target: Annotated[
        int | None, typer.Option(help="The attack's target label, when known.")
    ] = None,
    truth: Annotated[
        str,
        typer.Option(
            help="unknown, clean or backdoored. Unknown-truth models are scored only on what "
            "needs no truth (repair on clean data)."
        ),
    ] = "unknown",
    preprocessing: Annotated[
        str,
        typer.Option(
            help="How the model reads pixels: 'x/255' (the contest's nets) or 'raw' (0-255)."
        ),
    ] = "x/255",
    arch: Annotated[str, typer.Option(help="Architecture for a weights-only file.")] = "deepid",
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="Profile index to add the entry to.")
    ] = "imported",
) -> None:
    """Turn CSAW-HackML contest files into a zoo entry, then `harness run --profile imported`."""
    from harness.zoo.importer import ImportRequest, import_model

    model = import_model(
        ImportRequest(
            model_file=model_file,
            model_id=model_id,
            clean_val=clean_val,
            test=test,
            poisoned=poisoned,
            poisoned_labels=poisoned_labels,
            target=target,
            truth=truth,
            preprocessing=preprocessing,
            arch=arch,
            profile=profile,
        )
    )
    t, card = model.truth(), model.card()
    state = {None: "truth unknown", True: "backdoored", False: "clean"}[t.poisoned]
    asr = f", ASR {t.asr:.3f}" if t.asr is not None else ""
    out.print(
        f"imported {model.id} into profile {profile!r} ({t.params['loaded']}; "
        f"{card.num_classes} classes, preprocessing {card.preprocessing}): "
        f"CA {t.ca:.3f}{asr}, {state}",
        highlight=False,
    )


# -- submissions ----------------------------------------------------------------------------
@sub_app.command("check")
@user_errors
def submission_check(
    path: Annotated[Path, typer.Argument(help="Submission folder.")], backend: BackendOpt = "auto"
) -> None:
    """Run the conformance suite on a two-model toy zoo; each failure says how to fix it."""
    from harness.submission.check import CHECK_PROFILE, check_submission
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

    results = check_submission(path, models, backend=backend, report=report)
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
    from harness.goodnet import export_goodnet
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
@app.command("run")
@user_errors
def run(
    paths: Annotated[list[Path], typer.Argument(help="Submission folders.")],
    profile: ProfileOpt = "default",
    tracks: Annotated[
        str,
        typer.Option(
            help="Comma-separated tracks: detect (with target and trigger), filter, repair, "
            "fuzz. A submission runs those of them it declares."
        ),
    ] = "detect,repair",
    backend: BackendOpt = "auto",
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Name of the run (default: the profile name).")
    ] = None,
    fuzz_budget: Annotated[
        int, typer.Option("--fuzz-budget", min=1, help="Inputs a fuzzer may generate per model.")
    ] = DEFAULT_FUZZ_BUDGET,
    db: DbOpt = None,
) -> None:
    """Run submissions against every model of a built zoo; resumes where it stopped."""
    from harness.api import Track
    from harness.runner import run_submissions, task_tracks
    from harness.submission.manifest import load_submission
    from harness.zoo.store import ZooStore

    try:
        wanted = [Track.parse(t) for t in tracks.split(",") if t.strip()]
    except ValueError as exc:
        raise HarnessError(str(exc), fix="e.g. --tracks detect,repair") from None
    specs = [load_submission(p) for p in paths]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise HarnessError(f"two submissions share a name: {names}", fix="rename one")
    total = len(ZooStore().models(profile)) * sum(len(task_tracks(s, wanted)) for s in specs)
    store = _store(db)
    with _progress() as bar:
        task = bar.add_task("tasks", total=total)

        def on_task(sub: str, model: str, track: str, res: Any) -> None:
            if res is None:
                bar.update(task, description=f"{sub} · {track} · {model}")
                return
            if res.status != "ok":
                bar.console.print(
                    f"[red]failed[/red] {sub} {track} {model}: {res.error}", highlight=False
                )
            bar.advance(task)

        summary = run_submissions(
            specs,
            profile,
            wanted,
            store,
            backend=backend,
            run_id=run_id,
            on_task=on_task,
            fuzz_budget=fuzz_budget,
        )
    out.print(
        f"run {summary.run_id}: {summary.done} tasks done ({summary.failed} failed), "
        f"{summary.skipped} already in the store",
        highlight=False,
    )
    unknown = [m.id for m in ZooStore().models(profile) if m.truth().poisoned is None]
    if unknown:
        out.print(
            f"note: truth unknown for {len(unknown)} imported model(s) ({', '.join(unknown)}): "
            "detection outputs are stored but not scored; repairs are scored on clean data only",
            highlight=False,
        )


@app.command("leaderboard")
@user_errors
def leaderboard(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: leaderboard/ in the repo)."),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Run to render (default: the latest).")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Render LEADERBOARD.md and leaderboard.csv from the results store."""
    from harness.leaderboard import render
    from harness.paths import repo_root

    for path in render(_store(db), out_dir or repo_root() / "leaderboard", run_id):
        out.print(f"wrote {path}", highlight=False)


@app.command("results")
@user_errors
def results(
    as_json: JsonOpt = False,
    per_model: Annotated[
        bool, typer.Option("--per-model", help="Add one object per zoo model and metric.")
    ] = False,
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    db: DbOpt = None,
) -> None:
    """Print every aggregate score of a run (a table, or JSON objects with --json)."""
    from harness.leaderboard import resolve_run
    from harness.scoring.aggregate import aggregate
    from harness.scoring.aggregate import per_model as per_model_scores

    store = _store(db)
    records = store.tasks(resolve_run(store, run_id))
    scores = aggregate(records)
    rows = [s.as_json() for s in scores]
    if per_model:
        rows += [s.as_json(per_model=True) for s in per_model_scores(records)]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    from tabulate import tabulate

    out.print(tabulate(rows, headers="keys", floatfmt=".4f"), highlight=False)


@app.command("reproduce")
@user_errors
def reproduce_cmd(
    profile: ProfileOpt = "default",
    only: Annotated[
        str | None,
        typer.Option(help="Comma-separated figure names (default: every figure)."),
    ] = None,
    as_json: JsonOpt = False,
    write: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Markdown file to write (default: docs/REPRODUCTION.md in the repo)."
        ),
    ] = None,
    backend: BackendOpt = "auto",
    fuzz_budget: Annotated[
        int, typer.Option("--fuzz-budget", min=1, help="Inputs BackFuzz may generate per model.")
    ] = 200,
    db: DbOpt = None,
) -> None:
    """Run the reference defenses where the papers report a figure; print paper vs ours.

    Tasks are stored under the run `reproduce-PROFILE`, so a second call only runs what
    is missing. Figures: DESIGN section 12 (docs/REPRODUCTION.md)."""
    import sys

    from harness.paths import repo_root
    from harness.reproduce import markdown, reproduce

    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    store = _store(db)
    with _progress() as bar:
        task = bar.add_task("reproduce", total=None)

        def on_task(sub: str, model: str, track: str, res: Any) -> None:
            if res is None:
                bar.update(task, description=f"{sub} · {track} · {model}")
            elif res.status != "ok":
                bar.console.print(
                    f"[red]failed[/red] {sub} {track} {model}: {res.error}", highlight=False
                )

        figures = reproduce(
            profile, store, only=names, backend=backend, fuzz_budget=fuzz_budget, on_task=on_task
        )
    command = " ".join(["harness", "reproduce", *sys.argv[2:]])
    text = markdown(figures, command)
    target = write or repo_root() / "docs" / "REPRODUCTION.md"
    target.write_text(text)
    if as_json:
        print(json.dumps([f.as_json() for f in figures], indent=1))
        return
    out.print(text, highlight=False)
    out.print(f"wrote {target}", highlight=False)


def main() -> None:
    # TensorFlow's C++ start-up chatter is not for users; HARNESS users may override it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    app()


if __name__ == "__main__":
    main()
