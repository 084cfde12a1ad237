"""`harness zoo build` and the commands that read what it built in this machine's zoo
store: `list` (public cards), `show` (a card, and the truth), `report` (every entry's
truth, for the zoo's owner) and `verify` (each model whole).

Apart from ``harness.cli.zoo`` (the commands that take models in and out of the zoo or look
at them as a whole: release, from-attacks, audit, pictures, import), which imports this
module first so that `harness zoo --help` lists these commands first, in this order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.common import (
    JsonOpt,
    ProfileOpt,
    Reporter,
    SchedulerOpt,
    WorkersOpt,
    err,
    out,
    user_errors,
    zoo_app,
)


@zoo_app.command("build")
@user_errors
def zoo_build(
    profile: ProfileOpt = "default",
    force: Annotated[bool, typer.Option(help="Retrain even cached models.")] = False,
    mnist: Annotated[
        Path | None,
        typer.Option(help="Your own MNIST: a Keras mnist.npz or a folder of IDX files."),
    ] = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Train every model of a profile (cached by spec hash; a rebuild takes seconds).

    Models train one per worker process (--workers, default one per core) or on a Dask
    cluster (--scheduler); the result does not depend on which worker trained what. A model
    that fails (a backdoor under its ASR floor) does not stop the others: the build ends
    with one error naming each failed model, and building again trains only those."""
    from harness.executors import open_executor
    from harness.zoo.build_jobs import build_profile_on
    from harness.zoo.bundle import BUNDLE_FORMAT
    from harness.zoo.spec import load_profile

    spec = load_profile(profile)
    counts: dict[str, int] = {}
    todo = _to_build(spec, force)
    with Reporter(f"building {spec.name}", todo) as reporter:

        def done(entry: Any, status: str, seconds: float | None) -> None:
            counts[status] = counts.get(status, 0) + 1
            if status in ("built", "failed"):  # why it failed: the error at the end
                reporter.item(f"{status} {entry.id}", seconds)
            else:
                reporter.note(f"{status} {entry.id}")

        with open_executor(workers if todo else 1, scheduler if todo else None) as executor:
            models = build_profile_on(executor, spec, force=force, mnist_source=mnist, on_done=done)
    out.print(
        f"{spec.name}: {counts.get('built', 0)} built, {counts.get('cached', 0)} cached, "
        f"{counts.get('migrated', 0)} migrated (cached models whose public bundle was "
        f"rewritten in bundle format {BUNDLE_FORMAT}, without retraining)",
        highlight=False,
    )
    for m in models:
        t = m.truth()
        asr = f"{t.asr:.3f}" if t.asr is not None else "-"
        out.print(f"{m.id:36s} CA {t.ca:.3f}  ASR {asr}", highlight=False)


def _to_build(spec: Any, force: bool) -> int:
    """How many of a profile's entries are not cached (so need training)."""
    from harness.zoo.store import ZooStore

    store = ZooStore()
    return sum(1 for e in spec.entries if force or not store.has_object(e.spec_hash()))


@zoo_app.command("list")
@user_errors
def zoo_list(profile: ProfileOpt = "default", as_json: JsonOpt = False) -> None:
    """List a built profile's models (public information only)."""
    from harness.zoo.store import ZooStore

    rows = [
        {
            "id": m.id,
            "hash": m.hash,
            **{k: v for k, v in vars(m.card()).items() if k != "id"},
        }
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
            "--truth",
            help="Also print the private ground truth (attack, targets, CA/ASR).",
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
    """Every entry of a built profile with its hidden truth (for the zoo's owner).

    Attack, targets, trigger size, measured CA and ASR, and the recipe's ASR floor."""
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


@zoo_app.command("verify")
@user_errors
def zoo_verify(
    profile: ProfileOpt = "default",
    repair: Annotated[
        bool, typer.Option("--repair", help="Remove the damaged models, for a rebuild.")
    ] = False,
) -> None:
    """Check every model of a profile is whole (each zip member's checksum, each record
    parsed); exit 1 if one is not. With --repair, remove the damaged ones: `harness zoo
    build` then trains them again."""
    from harness.zoo.store import ZooStore
    from harness.zoo.verify import problems, remove

    damaged = 0
    for model in ZooStore().entries(profile):
        found = problems(model.root)
        if not found:
            continue
        damaged += 1
        out.print(f"{model.id}: damaged: {'; '.join(found)}", highlight=False)
        if repair and model.root.exists():
            remove(model)
            out.print(f"{model.id}: removed", highlight=False)
    if not damaged:
        out.print(f"{profile}: every model is whole", highlight=False)
        return
    if repair:
        out.print(f"rebuild them: harness zoo build --profile {profile}", highlight=False)
        return
    out.print(f"fix: harness zoo verify --profile {profile} --repair", highlight=False)
    raise typer.Exit(1)
