"""The pieces every reproduction figure is made of: submission variants, the stored
records they are measured from, the figure result and the registry."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.api import Track
from harness.paths import repo_root
from harness.registry import Registry
from harness.results import TaskRecord
from harness.tracks import outcome_field
from harness.zoo.store import ZooModel

SUBMISSIONS = repo_root() / "submissions"
CLEAN = "clean"  # pseudo attack name: a model without a backdoor


@dataclass(frozen=True)
class Variant:
    """A reference submission with parameter overrides, run on some of the zoo's models."""

    name: str  # the name its tasks are stored under
    folder: str  # submissions/<folder>
    tracks: tuple[Track, ...]
    models: tuple[str, ...]  # attack names (or CLEAN) whose MNIST/face models it runs on
    params: dict[str, Any] = field(default_factory=dict)
    oracle: bool = False
    dataset: str | tuple[str, ...] = "mnist"  # the data set family (or families) of them
    #: further overrides on one data set family's models only (its tasks then have their
    #: own content hash; the other families' tasks keep theirs)
    family_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def kinds(self) -> set[tuple[str, str]]:
        """The (attack, data set family) pairs of the models it runs on (``model_kind``)."""
        sets = (self.dataset,) if isinstance(self.dataset, str) else self.dataset
        return {(a, d) for a in self.models for d in sets}

    def params_for(self, family: str | None) -> dict[str, Any]:
        """Its overrides on the models of one data set family."""
        return {**self.params, **self.family_params.get(family or "", {})}


@dataclass(frozen=True)
class FigureResult:
    name: str
    source: str
    paper: str
    measured: str
    holds: bool | None  # None: the profile has no model to measure it on
    #: Markdown lines measured per instance, printed under the table (not kept in the store)
    details: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The figure's row (its per-instance lines are for the Markdown only)."""
        row = dataclasses.asdict(self)
        row.pop("details")
        return row


class Results:
    """Stored task records of a reproduction run, looked up by variant and attack."""

    def __init__(self, records: list[TaskRecord], models: dict[str, ZooModel]) -> None:
        self.records = records
        self.models = models

    def of(self, variant: str, track: str, attack: str, dataset: str = "mnist") -> list[TaskRecord]:
        return [
            r
            for r in self.records
            if r.submission == variant
            and r.track == track
            and r.model_id in self.models
            and model_kind(self.models[r.model_id]) == (attack, dataset)
        ]


def model_kind(model: ZooModel) -> tuple[str, str]:
    """(attack, data set family) of a zoo model; a clean model's attack is CLEAN, and
    SynthFaces with any number of identities (``synthfaces-K``) counts as ``synthfaces``:
    a figure about face BadNets is measured on the face models a profile has."""
    truth = model.truth()
    dataset = model.card().dataset
    family = "synthfaces" if re.fullmatch(r"synthfaces(-\d+)?", dataset) else dataset
    return (truth.attack if truth.poisoned else CLEAN), family


def mean_of_ok(recs: list[TaskRecord], name: str) -> float | None:
    """The mean of the outcome field ``name`` over the tasks that ran and stored it."""
    vals = [outcome_field(r, name) for r in recs if r.status == "ok"]
    vals = [float(v) for v in vals if isinstance(v, int | float)]
    return float(np.mean(vals)) if vals else None


def percent(v: float | None) -> str:
    """A share as a percentage with one decimal; "-" when not measured."""
    return "-" if v is None else f"{100 * v:.1f} %"


def not_measured(name: str, source: str, paper: str, what: str) -> FigureResult:
    """The result of a figure the profile cannot measure: it lacks ``what``."""
    return FigureResult(name, source, paper, f"not measured: the profile has no {what}", None)


#: A figure measures one claim (one row), or one claim per setting (a row each).
Figure = Callable[[Results], FigureResult | list[FigureResult]]
FIGURES: Registry[tuple[tuple[Variant, ...], Figure]] = Registry("figure")


def figure(*variants: Variant) -> Callable[[Figure], Figure]:
    """Register the decorated figure under its name with dashes, with the variants (the
    submission settings) it needs run."""

    def register(fn: Figure) -> Figure:
        FIGURES.register(fn.__name__.replace("_", "-"), (variants, fn))
        return fn

    return register
