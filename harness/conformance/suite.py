"""`harness submission check`: the conformance suite, the checks in the order they run.

Like scikit-learn's ``check_estimator``: each check tests one property of the contract and
says how to fix a failure; ``CHECKS`` lists them in order, and
``check_submission(..., only=[...])`` runs a selection (the checks a selected one needs
still run first, unreported). The per-track checks run once for every task the submission
declares, on a two-model toy zoo.

Each check takes what it needs as arguments and returns what it gives the checks after it
(``harness.conformance.wiring``): the suite's inputs are the submission's ``path``, the
``models``, the sandbox ``backend`` and ``limits``, a scratch ``workdir`` and ``closing``
(what the checks open, closed when they end); ``gives=`` below names each check's products
(``check_manifest`` the ``spec``, ``check_declares_a_track`` the ``kinds`` the per-track
checks run for, ``check_configures`` the ``configured`` folder, ``check_worker_starts`` the
``runner`` and its start ``reply``, ``check_outputs_valid`` a track's ``results`` and their
``seconds``). Importing this module fails if a check would miss an input.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

from harness.conformance.checks import (
    check_configures,
    check_constructor_stores_params,
    check_declares_a_track,
    check_entry_resolves,
    check_manifest,
    check_methods_exist,
    check_outputs_valid,
    check_params_bind,
    check_poisons,
    check_same_seed,
    check_time_budget,
    check_weights_unchanged,
    check_worker_starts,
)
from harness.conformance.wiring import Check, CheckResult, Report, run_checks, wiring_problems
from harness.registry import Registry
from harness.sandbox.limits import SandboxLimits
from harness.tracks import KINDS, PRODUCERS
from harness.zoo.store import ZooModel

CHECKS: Registry[Check] = Registry(
    "conformance check",
    [
        (c.name, c)
        for c in (
            Check(
                "check_manifest",
                "submission.toml valid",
                "see the message; docs/SUBMITTING.md lists every key",
                check_manifest,
                gives=("spec",),
            ),
            Check(
                "check_declares_a_track",
                "declares a runnable track",
                f"declare at least one of {', '.join(repr(n) for n in [k.name for k in KINDS] + [t.value for t in PRODUCERS])}",
                check_declares_a_track,
                gives=("kinds",),
            ),
            Check(
                "check_configures",
                "configure step runs (learned detectors)",
                "make configure(training_dir, out_dir) finish within [resources] configure_seconds",
                check_configures,
                gives=("configured",),
            ),
            Check(
                "check_worker_starts",
                "worker starts",
                "make the module importable with only numpy, tensorflow and keras",
                check_worker_starts,
                gives=("runner", "reply"),
            ),
            Check(
                "check_entry_resolves",
                "entry resolves",
                "define the class named by entry = 'module:Class' in submission.toml",
                check_entry_resolves,
            ),
            Check(
                "check_params_bind",
                "params match the constructor",
                "make [params] keys keyword arguments of __init__, with values it accepts",
                check_params_bind,
            ),
            Check(
                "check_constructor_stores_params",
                "constructor only stores its parameters",
                "in __init__ store each parameter unchanged as self.<name> and nothing else; "
                "build state in the track methods (class attributes may give defaults)",
                check_constructor_stores_params,
                stops=False,
            ),
            Check(
                "check_methods_exist",
                "track methods exist",
                "implement them or drop the track from tracks = [...]",
                check_methods_exist,
            ),
            Check(
                "check_poisons",
                "attack: poisoned set within the track's limits",
                "return a harness.api.PoisonedSet as docs/ATTACK-TRACK.md describes (same length as "
                "the training set, in its range, within the limits on changed images and labels)",
                check_poisons,
            ),
            Check(
                "check_outputs_valid",
                "{track}: outputs valid on every model",
                "return what harness/api.py documents for this track (types, ranges, no NaN)",
                check_outputs_valid,
                gives=("results", "seconds"),
                per_track=True,
            ),
            Check(
                "check_time_budget",
                "{track}: time budget kept",
                "speed up or raise resources.wall_seconds_per_model",
                check_time_budget,
                per_track=True,
                stops=False,
            ),
            Check(
                "check_weights_unchanged",
                "{track}: input model's weights unchanged",
                "work on a copy: keras.models.clone_model(model) + set_weights",
                check_weights_unchanged,
                per_track=True,
                stops=False,
            ),
            Check(
                "check_same_seed",
                "{track}: same seed, same result",
                "draw randomness from keras/numpy/tf seeded generators, not time or os.urandom",
                check_same_seed,
                per_track=True,
                stops=False,
            ),
        )
    ],
)
NAMES = tuple(CHECKS)
if _problems := wiring_problems(CHECKS.values()):
    raise RuntimeError(f"the conformance checks are miswired: {'; '.join(_problems)}")


def chosen_checks(only: Iterable[str] | None) -> set[str]:
    """The names of the checks to report: all, or ``only`` (an unknown name is one line
    with the closest known one)."""
    return set(NAMES) if only is None else {CHECKS[name].name for name in only}


def check_submission(
    path: Path,
    models: list[ZooModel],
    *,
    backend: str = "auto",
    limits: SandboxLimits | None = None,
    report: Report | None = None,
    only: Iterable[str] | None = None,
) -> list[CheckResult]:
    """Run the checks (``only``: a selection of CHECKS' names) and return their results;
    a failed check whose later ones could not run stops the suite there."""
    chosen = chosen_checks(only)
    last = max(NAMES.index(n) for n in chosen)
    with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp, ExitStack() as closing:
        inputs = {
            "path": path,
            "models": models,
            "backend": backend,
            "limits": limits or SandboxLimits(),
            "workdir": Path(tmp),
            "closing": closing,
        }
        return run_checks(list(CHECKS.values())[: last + 1], inputs, chosen, report)
