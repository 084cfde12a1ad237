"""How the conformance checks get their inputs: by name, from the suite and from the checks
before them.

A check is a plain function. Its parameters name what it needs: one of the suite's
``INPUTS`` (the submission's folder, the models, the sandbox backend and limits, a scratch
folder, and ``closing``, where a check registers what the suite must close when the checks
end), the ``kind`` a per-track check runs for, or a product that a check before it gives.
It returns ``None`` (it does not apply here: not reported) or a ``Verdict``: whether it
passed, why not, optionally a fix that replaces its own, and the products it gives the
checks after it (``gives``, by the parameter name they are read under; each declared in
its ``Check``). The suite never changes a product: each check's products are added to a new
mapping, passed on to the checks after it.

``run_checks`` runs checks in order and reports the chosen ones. A failed check that
``stops`` ends the run (the checks after it could not run). The ``per_track`` checks come
last and run once for each track kind in the ``kinds`` product, each time with that
``kind`` and with the products of the checks that ran before them; what one track's checks
give is not seen by another's. ``wiring_problems`` says, without running anything, which
check would miss an input.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import cast

from harness.tracks import TrackKind

#: What the suite gives every check, by parameter name.
INPUTS = ("path", "models", "backend", "limits", "workdir", "closing")
#: The product that lists the track kinds the per-track checks run for.
KINDS = "kinds"
#: The input of a per-track check that names its track kind.
KIND = "kind"

#: Inputs and products by name (never changed: each check's products make a new one).
Products = Mapping[str, object]


@dataclass(frozen=True)
class CheckResult:
    name: str  # what was checked, as printed ("detect: outputs valid on every model")
    passed: bool
    message: str = ""
    fix: str = ""
    check: str = ""  # the check's name in CHECKS ("check_outputs_valid")


Report = Callable[[CheckResult], None]


@dataclass(frozen=True)
class Verdict:
    """A check's answer on one submission (a check that does not apply returns None)."""

    passed: bool
    message: str = ""  # why it failed (not reported when it passed)
    fix: str | None = None  # replaces the check's own fix
    #: what it gives the checks after it, by the parameter name they read it under: all that
    #: its ``Check`` declares, unless it failed and stops the run
    gives: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    title: str  # printed; "{track}" is the track's name for per-track checks
    fix: str
    run: Callable[..., Verdict | None]  # its parameters name its inputs (see the docstring)
    gives: tuple[str, ...] = ()  # the products its verdict gives
    per_track: bool = False
    stops: bool = True  # a failure stops the checks after it (they could not run)

    @property
    def needs(self) -> tuple[str, ...]:
        """The names of its inputs: its parameters."""
        return tuple(inspect.signature(self.run).parameters)


def wiring_problems(checks: Iterable[Check], inputs: Iterable[str] = INPUTS) -> list[str]:
    """One line for each check that would miss an input (one neither the suite nor a check
    before it gives), gives a product already given, runs per track with no ``kinds`` given
    before it, or runs once after a per-track check; none: the checks are wired."""
    known, problems, per_track = set(inputs), [], False
    for check in checks:
        if check.per_track and not per_track:
            per_track = True
            if KINDS not in known:
                problems.append(f"{check.name} runs per track, after no check that gives {KINDS}")
            known.add(KIND)
        elif per_track and not check.per_track:
            problems.append(f"{check.name} runs once but comes after a per-track check")
        missing = [n for n in check.needs if n not in known]
        if missing:
            said = ", ".join(missing)
            problems.append(f"{check.name} needs {said}: not an input, nor given before it")
        twice = [n for n in check.gives if n in known]
        if twice:
            problems.append(f"{check.name} gives {', '.join(twice)}, already given")
        known |= set(check.gives)
    return problems


def run_checks(
    checks: Sequence[Check],
    inputs: Products,
    chosen: Set[str],
    report: Report | None = None,
) -> list[CheckResult]:
    """Run ``checks`` in order on ``inputs`` and return the results of the ``chosen`` ones
    (the others run unreported); a failed check that stops ends the run there."""
    results: list[CheckResult] = []

    def run(check: Check, products: Products, kind: TrackKind | None) -> tuple[bool, Products]:
        """Whether the checks after it may run, and the products with its own added."""
        verdict = check.run(**{name: products[name] for name in check.needs})
        gives = verdict.gives if verdict is not None else {}
        passed = verdict is None or verdict.passed
        undeclared = set(gives) - set(check.gives)
        missing = set(check.gives) - set(gives) if passed or not check.stops else set()
        if undeclared or missing:
            raise RuntimeError(f"{check.name} gave {sorted(gives)}, not {list(check.gives)}")
        products = MappingProxyType({**products, **gives})
        if verdict is None:
            return True, products
        if check.name in chosen:
            fix = check.fix if verdict.fix is None else verdict.fix
            result = CheckResult(
                check.title.format(track=kind.name if kind else ""),
                passed,
                "" if passed else verdict.message,
                "" if passed else fix,
                check.name,
            )
            results.append(result)
            if report:
                report(result)
        return passed or not check.stops, products

    products: Products = MappingProxyType(dict(inputs))
    for check in checks:
        if check.per_track:
            break
        go_on, products = run(check, products, None)
        if not go_on:
            return results
    per_track = [c for c in checks if c.per_track]
    if per_track:
        for kind in cast("Iterable[TrackKind]", products[KINDS]):
            track: Products = MappingProxyType({**products, KIND: kind})
            for check in per_track:
                go_on, track = run(check, track, kind)
                if not go_on:
                    break
    return results
