"""`harness attack run` and `harness attack table`: the attack track."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from harness.api import Track
from harness.attack_track.recipe import TRAIN_RECIPES
from harness.cli.common import (
    BackendOpt,
    DbOpt,
    Reporter,
    SchedulerOpt,
    TaskProgress,
    WorkersOpt,
    app,
    go_on_without,
    operator_log,
    out,
    read_submissions,
    results_store,
    user_errors,
)
from harness.cli.options import TaskOptions, takes_options
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.grading.barrier import FailureLog
    from harness.results import AttackInstance

attack_app = typer.Typer(
    help="The attack track: hand-in poisoning recipes, trained into models by the harness "
    "and scored by how well they evade the defenses (docs/ATTACK-TRACK.md).",
    no_args_is_help=True,
)
app.add_typer(attack_app, name=Track.ATTACK.value)

FORMATS = ("md", "csv", "json", "html")


class InstanceProgress(TaskProgress):
    """An attack-track run's progress (``harness.attack_track.run.AttackProgress``): the
    defenses' tasks on the Reporter, a line per instance, and the traceback of an instance
    that failed unexpectedly in the operator's ``log``."""

    def __init__(self, reporter: Reporter, log: FailureLog) -> None:
        super().__init__(reporter)
        self.log = log

    def instance_done(
        self, attack: str, instance: int, record: AttackInstance, reused: bool
    ) -> None:
        from harness.report.encode import terminal

        line = f"{attack} #{instance}: {'reused' if reused else 'built'}, {record.status}"
        if record.status == "ok":
            line += f" (ASR {record.asr or 0:.3f}, CA {record.ca or 0:.3f})"
        else:
            line += f": {record.error}"
        out.print(terminal(line), highlight=False, markup=False)

    def trace(self, who: str, text: str) -> None:
        self.log.write_text(who, "build", text)


@dataclass(frozen=True)
class AttackRunOptions(TaskOptions):
    """`harness attack run`'s arguments and options."""

    attacks: Annotated[list[Path], typer.Argument(help="Attack hand-in folders.")]
    defenses: Annotated[
        str,
        typer.Option(
            help="Comma-separated defense submission folders; each runs its detect and "
            "filter tracks on every model the hand-ins gave.",
        ),
    ]
    instances: Annotated[
        int, typer.Option(min=1, help="Models per hand-in (each with a clean counterpart).")
    ] = 5
    recipe: Annotated[
        str,
        typer.Option(
            help=f"Training recipe: {', '.join(TRAIN_RECIPES)} (docs/ATTACK-TRACK.md says "
            "which reference hand-in runs on which)."
        ),
    ] = "mnist"
    run_id: Annotated[
        str, typer.Option("--run-id", help="Name of the run (resumes when it exists).")
    ] = "attack-track"
    configure_on: Annotated[
        str | None,
        typer.Option(
            "--configure-on",
            help="Learned defenses (configure = true, e.g. meta-weights) learn from this "
            "zoo profile's training split, e.g. full.",
        ),
    ] = None
    backend: BackendOpt = "auto"
    db: DbOpt = None
    workers: WorkersOpt = None
    scheduler: SchedulerOpt = None


@attack_app.command("run")
@user_errors
@takes_options
def attack_run(o: AttackRunOptions) -> None:
    """Poison, train and attack: each hand-in's poison() runs in the sandbox on a training
    split (never on test data); the harness trains each poisoned set into a model with the
    recipe, beside a clean counterpart on the same images with their true labels, measures
    CA and ASR on held-out images, then runs the defenses on all of them and prints the
    attack table. A rerun reuses every instance and task already done."""
    from harness.attack_track.recipe import recipe as find_recipe
    from harness.attack_track.run import run_attack_track
    from harness.attack_track.score import run_rows
    from harness.report.attack_track import markdown

    train = find_recipe(o.recipe)
    folders = [Path(p) for p in o.defenses.split(",") if p.strip()]
    if not folders:
        raise HarnessError("--defenses names no folder", fix="e.g. --defenses submissions/strip")
    log = operator_log()
    both, refused = read_submissions([*o.attacks, *folders], log)  # one name space for both
    attack_specs = [s for s in both if s.path in {a.resolve() for a in o.attacks}]
    defense_specs = [s for s in both if s not in attack_specs]
    for spec in [s for s in attack_specs if Track.ATTACK not in s.tracks]:
        attack_specs.remove(spec)
        refused.append(HarnessError(
            f"{spec.name} declare no {Track.ATTACK.value} track", path=spec.path,
            fix=f'an attack hand-in has tracks = ["{Track.ATTACK.value}"] in submission.toml',
        ))  # fmt: skip
    go_on_without(refused, min(len(attack_specs), len(defense_specs)))
    store = o.store()
    with Reporter("tasks") as reporter, o.executor() as executor:
        summary = run_attack_track(
            attack_specs,
            defense_specs,
            train,
            o.instances,
            store,
            o.run_config(),
            executor=executor,
            progress=InstanceProgress(reporter, log),
        )
    out.print(markdown(run_rows(store, o.run_id)), highlight=False, markup=False)
    d = summary.defenses
    out.print(
        f"run {o.run_id}: {summary.built} instances built, {summary.reused} reused, "
        f"{summary.invalid} invalid or failed; defenses: {d.done if d else 0} tasks done, "
        f"{d.skipped if d else 0} already in the store; models in zoo index {summary.profile}",
        highlight=False,
    )


@attack_app.command("table")
@user_errors
def attack_table(
    run_id: Annotated[str, typer.Option("--run-id", help="The attack run.")] = "attack-track",
    fmt: Annotated[str, typer.Option("--format", help="md, csv, json or html.")] = "md",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of printing.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """The attack table of a run: per hand-in its evasion with its CI, ASR, CA drop, each
    detector's AUC and each filter's, valid or why not."""
    from harness.attack_track.score import run_rows
    from harness.report import attack_track as render

    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r}", fix=f"choose one of {', '.join(FORMATS)}")
    rows = run_rows(results_store(db), run_id)
    if not rows:
        raise HarnessError(
            f"run {run_id!r} holds no attack hand-in",
            fix="run `harness attack run` first, or name its --run-id",
        )
    text = {"md": render.markdown, "csv": render.to_csv, "json": render.to_json,
            "html": render.html_table}[fmt](rows)  # fmt: skip
    if out_file:
        out_file.write_text(text)
        out.print(f"wrote {out_file}", highlight=False)
    else:
        out.print(text, highlight=False, markup=False)
