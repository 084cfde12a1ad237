"""The attack x defense matrix: which defense catches which attack family.

For each track's ``matrix`` metrics (``TrackKind.matrix``: detection AUC, filter AUC, DER
and ASR after repair, fuzzing's activation rate), one cell per (submission, attack family):
the track's own aggregation over that family's backdoored models, with the clean models of
the family's data sets as the negatives where the metric needs them (an AUC). Families are
grouped as ``harness.attacks.GROUPS`` orders them: BadNets and the model-level attacks at
the left, then the stealthy, clean-label, warping and adaptive attacks, the face BadNets
at the right.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.attack_track import ATTACK_PREFIX
from harness.attacks.registry import GROUPS, RECIPES
from harness.report.view import RunView
from harness.results import TaskRecord
from harness.tracks import KINDS, aggregate_kind
from harness.tracks.base import Heat, TrackKind


@dataclass(frozen=True)
class Family:
    """One column: an attack family, its group and how many backdoored models it has."""

    attack: str
    group: str
    models: int


@dataclass(frozen=True)
class Matrix:
    kind: TrackKind
    heat: Heat
    rows: list[str]  # submissions, in the track's ranking order
    cells: dict[tuple[str, str], float | None]  # (submission, attack) -> value

    @property
    def title(self) -> str:
        return f"{self.kind.table.title}: {self.heat.metric}"


#: The group of the attack track's hand-ins (``harness.attack_track``), each its own family.
HAND_IN = "hand-in"


def group_of(attack: str) -> str:
    if attack.startswith(ATTACK_PREFIX):
        return HAND_IN
    recipe = RECIPES.get(attack)
    return recipe.group if recipe else "other"


def display_order(attack: str) -> tuple[int, str]:
    """Sort key of attack families: by group in ``GROUPS`` order (clean models first)."""
    if attack == "none":
        return (-1, attack)
    return (GROUPS.index(g) if (g := group_of(attack)) in GROUPS else len(GROUPS), attack)


def families(records: list[TaskRecord]) -> list[Family]:
    """The attack families of the run's backdoored models, in group order."""
    count: dict[str, set[str]] = {}
    for r in records:
        if r.facts.poisoned and r.facts.attack:
            count.setdefault(r.facts.attack, set()).add(r.model_id)
    names = sorted(count, key=display_order)
    return [Family(a, group_of(a), len(count[a])) for a in names]


def _cell(kind: TrackKind, metric: str, submission: str, recs: list[TaskRecord]) -> float | None:
    for score in aggregate_kind(kind, submission, recs):
        if score.metric == metric:
            return score.value
    return None


def matrices(view: RunView) -> tuple[list[Family], list[Matrix]]:
    """The columns and every track's matrices for a run (tracks without entries left out)."""
    cols = families(view.records)
    out = []
    rankings = dict(view.rankings())
    for kind in KINDS:
        rows = [r.submission for r in rankings.get(kind, [])]
        if not rows or not kind.matrix:
            continue
        mine = [r for r in view.records if r.track == kind.name]
        for heat in kind.matrix:
            cells: dict[tuple[str, str], float | None] = {}
            for sub in rows:
                recs = [r for r in mine if r.submission == sub]
                for fam in cols:
                    backdoored = [
                        r for r in recs if r.facts.poisoned and r.facts.attack == fam.attack
                    ]
                    sets = {r.facts.dataset for r in backdoored}
                    clean = [
                        r for r in recs if r.facts.poisoned is False and r.facts.dataset in sets
                    ]
                    cells[(sub, fam.attack)] = (
                        _cell(kind, heat.metric, sub, backdoored + clean) if backdoored else None
                    )
            out.append(Matrix(kind, heat, rows, cells))
    return cols, out
