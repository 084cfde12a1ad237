"""`harness zoo ...`: release, audit, picture and import zoo models (and make a zoo of the
attack track's best hand-ins).

The commands on the zoo store's own models (build, list, show, report, verify) are in
``harness.cli.zoo_models``, imported first so that they register first: `harness zoo
--help` lists them before the ones here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from harness.cli import zoo_models  # noqa: F401 - registers build ... verify before the commands below
from harness.cli.common import (
    DbOpt,
    ProfileOpt,
    err,
    out,
    results_store,
    user_errors,
    zoo_app,
)
from harness.cli.options import takes_options

if TYPE_CHECKING:
    from harness.zoo.importer import ImportRequest


@zoo_app.command("release")
@user_errors
def zoo_release(
    out_dir: Annotated[
        Path, typer.Option("--out", help="A new (or empty) folder to write the release to.")
    ],
    profile: ProfileOpt = "default",
    split: Annotated[
        str,
        typer.Option(
            "--split", help="The split to release: train (the evaluation split never is)."
        ),
    ] = "train",
) -> None:
    """Write a profile's labelled training split to a folder, as the Trojan Detection
    Challenge released its training models: per model its public bundle (model.keras,
    card.json, clean_val.npz), truth.json and triggers.npz, and index.json listing them.
    The profile marks those models split = "train"; `harness run` never scores them."""
    from harness.zoo.splits import release

    n = release(profile, out_dir, split)
    out.print(f"released {n} training models of {profile} to {out_dir}", highlight=False)


@zoo_app.command("from-attacks")
@user_errors
def zoo_from_attacks(
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="Name of the zoo to write (not a shipped one).")
    ] = "final-round",
    run_id: Annotated[
        str, typer.Option("--run-id", help="The attack run to take hand-ins from.")
    ] = "attack-track",
    top: Annotated[int, typer.Option(min=1, help="How many valid hand-ins, best first.")] = 3,
    db: DbOpt = None,
) -> None:
    """The attack track's final round: a zoo of the best valid attack hand-ins' models (by
    evasion) and their clean counterparts, for `harness run DEFENSES --profile NAME` (as the
    Trojan Detection Challenge 2022 re-ran its detectors on the winning attacks)."""
    from harness.attack_track.final_round import from_attacks

    taken, n = from_attacks(results_store(db), run_id, profile, top)
    out.print(
        f"wrote zoo {profile}: {n} models of {', '.join(taken)} and their counterparts; "
        f"run defenses on it with `harness run SUBMISSIONS --profile {profile}`",
        highlight=False,
    )


@zoo_app.command("audit")
@user_errors
def zoo_audit(
    profile: ProfileOpt = "default",
    repeats: Annotated[
        int, typer.Option(min=1, help="Repeats of the 5-fold cross validation.")
    ] = 20,
    permutations: Annotated[
        int,
        typer.Option(
            min=0,
            help="Label shuffles for the permutation test of a bounded AUC over the limit "
            "(0: no test, so any AUC over the limit fails).",
        ),
    ] = 39,
) -> None:
    """Leakage audit: do the bytes a submission receives tell clean from backdoored?

    Can simple classifiers tell clean from backdoored models from the bytes a submission
    receives (every staged file: sizes, times, zip members, JSON fields, array headers, the
    weights file's structure), without running them? Exits 1 when the metadata alone, or
    clean counterparts vs plain clean models (the data pipeline), reach a cross-validated
    ROC-AUC above 0.6 that label shuffles rarely reach (permutation test, p < 0.05: a few
    dozen models' AUC is noisy). The weight signature (statistics of the weight values), every
    feature together and each data set alone are reported, not bounded: they carry the
    backdoor itself, which is what a learned detector should find."""
    from harness.errors import ZooError
    from harness.zoo.audit import ALPHA, AUC_LIMIT, audit_models
    from harness.zoo.store import ZooStore

    try:
        result = audit_models(
            ZooStore().models(profile),
            repeats=repeats,
            permutations=permutations,
            note=lambda text: err.print(text, highlight=False),
        )
    except ValueError as exc:
        raise ZooError(str(exc), fix="audit a profile with more models (e.g. full)") from None
    out.print(
        f"{profile}: {result.n_clean} clean, {result.n_backdoored} backdoored, "
        f"{result.n_features} features",
        highlight=False,
    )
    bounded = result.bounded()

    def line(group: str, aucs: dict[str, float]) -> None:
        found = ", ".join(f"{name} {auc:.3f}" for name, auc in aucs.items())
        out.print(f"  {group}: {found}", highlight=False)

    out.print(f"bounded (ROC-AUC <= {AUC_LIMIT}):", highlight=False)
    for group, aucs in bounded.items():
        line(group, aucs)
        for clf, test in result.chance.get(group, {}).items():
            verdict = "above chance" if test.significant else "within chance"
            out.print(
                f"    {clf} over {AUC_LIMIT}: {verdict}, p = {test.p_value:.3f} "
                f"({test.shuffles} label shuffles, their 95th percentile {test.q95:.3f})",
                highlight=False,
            )
    out.print("reported:", highlight=False)
    line("every feature", result.aucs)
    for group, aucs in result.by_group.items():
        if group not in bounded:
            line(group, aucs)
    verdict = "passed" if result.passed else "FAILED"
    out.print(f"audit {verdict} (limit {AUC_LIMIT}, or chance at p >= {ALPHA})", highlight=False)
    if not result.passed:
        raise typer.Exit(1)


@zoo_app.command("pictures")
@user_errors
def zoo_pictures(
    profile: ProfileOpt = "default",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNGs.")] = Path("docs/img"),
) -> None:
    """Render each attack's trigger and a SynthFaces grid as PNGs (shows private truth).

    From a built profile: per attack the clean image, mask, pattern and stamped image; and a
    grid of SynthFaces identities. For documentation, not for submissions."""
    from harness.zoo.pictures import render_synthfaces, render_triggers
    from harness.zoo.store import ZooStore

    paths = render_triggers(profile, out_dir)
    datasets = {m.card().dataset for m in ZooStore().models(profile)}
    faces = sorted(d for d in datasets if d.startswith("synthfaces"))
    paths += [render_synthfaces(faces[0], out_dir)] if faces else []
    for path in paths:
        out.print(str(path), highlight=False)


@dataclass(frozen=True)
class ZooImportOptions:
    """`harness zoo import`'s arguments and options: named as ``ImportRequest``'s fields."""

    model_file: Annotated[
        Path,
        typer.Argument(
            help="A contest model: a full Keras 2 .h5 model, or a weights-only .h5 file "
            "(loaded into --arch)."
        ),
    ]
    model_id: Annotated[str, typer.Option("--id", help="The entry's id in the profile.")]
    clean_val: Annotated[
        Path,
        typer.Option(
            help="Clean data handed to submissions (contest HDF5: 'data', 'label'), e.g. "
            "clean_validation_data.h5."
        ),
    ]
    test: Annotated[
        Path, typer.Option(help="Clean test data for scoring, e.g. clean_test_data.h5.")
    ]
    poisoned: Annotated[
        Path | None,
        typer.Option(
            help="Poisoned test data, e.g. sunglasses_poisoned_data.h5: makes the entry "
            "backdoored and measures its ASR."
        ),
    ] = None
    poisoned_labels: Annotated[
        str,
        typer.Option(
            help="What the poisoned file's labels are: 'target' (the contest's files) or "
            "'source' (true labels; give --target)."
        ),
    ] = "target"
    target: Annotated[
        int | None,
        typer.Option(help="The attack's target label, when known."),
    ] = None
    truth: Annotated[
        str,
        typer.Option(
            help="unknown, clean or backdoored. Unknown-truth models are scored only on what "
            "needs no truth (repair on clean data)."
        ),
    ] = "unknown"
    preprocessing: Annotated[
        str,
        typer.Option(
            help="How the model reads pixels: 'x/255' (the contest's nets) or 'raw' (0-255)."
        ),
    ] = "x/255"
    arch: Annotated[str, typer.Option(help="Architecture for a weights-only file.")] = "deepid"
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="Profile index to add the entry to.")
    ] = "imported"

    def request(self) -> ImportRequest:
        """The import these options ask for."""
        from harness.zoo.importer import ImportRequest

        return ImportRequest(**{f.name: getattr(self, f.name) for f in fields(self)})


@zoo_app.command("import")
@user_errors
@takes_options
def zoo_import(o: ZooImportOptions) -> None:
    """Turn CSAW-HackML contest files into a zoo entry, then `harness run --profile imported`."""
    from harness.zoo.importer import import_model

    model = import_model(o.request())
    t, card = model.truth(), model.card()
    state = {None: "truth unknown", True: "backdoored", False: "clean"}[t.poisoned]
    asr = f", ASR {t.asr:.3f}" if t.asr is not None else ""
    out.print(
        f"imported {model.id} into profile {o.profile!r} ({t.params['loaded']}; "
        f"{card.num_classes} classes, preprocessing {card.preprocessing}): "
        f"CA {t.ca:.3f}{asr}, {state}",
        highlight=False,
    )


# -- submissions ----------------------------------------------------------------------------
