"""The closed set of attack recipes, looked up by name with a "did you mean" on a miss."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.attacks import badnets
from harness.attacks.base import Backdoor
from harness.errors import SpecError

RecipeFn = Callable[..., Backdoor]


@dataclass(frozen=True)
class AttackRecipe:
    name: str
    build: RecipeFn
    summary: str
    paper: str

    def param_names(self) -> list[str]:
        sig = inspect.signature(self.build)
        return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]


RECIPES: dict[str, AttackRecipe] = {
    r.name: r
    for r in (
        AttackRecipe(
            "badnets_pixel_a2a",
            badnets.pixel_all_to_all,
            "single pixel, all-to-all y -> y+1",
            "BadNets; BackFuzz (seed 000)",
        ),
        AttackRecipe(
            "badnets_patch",
            badnets.patch_single_target,
            "square corner patch -> one target",
            "BadNets (Gu et al. 2019)",
        ),
    )
}


def lookup(name: str) -> AttackRecipe:
    if name in RECIPES:
        return RECIPES[name]
    close = difflib.get_close_matches(name, RECIPES, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"choose from {', '.join(RECIPES)}"
    raise SpecError(f"unknown attack {name!r}", fix=hint)


def make_backdoor(
    name: str, params: dict[str, Any], input_shape: tuple[int, ...], num_classes: int, seed: int
) -> Backdoor:
    """Build the named recipe's backdoor; unknown or bad params become a SpecError."""
    recipe = lookup(name)
    unknown = sorted(set(params) - set(recipe.param_names()))
    if unknown:
        raise SpecError(
            f"attack {name!r} has no parameter(s) {', '.join(unknown)}",
            fix=f"its parameters are: {', '.join(recipe.param_names())}",
        )
    try:
        return recipe.build(tuple(input_shape), num_classes, np.random.default_rng(seed), **params)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"attack {name!r}: {exc}", fix="correct the attack_params") from None
