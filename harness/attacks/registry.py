"""The closed set of attack recipes, looked up by name with a "did you mean" on a miss.

A recipe is ``fn(ctx: AttackContext, **params) -> Backdoor``; its keyword-only parameters
are the ``attack_params`` a zoo spec may set, and its docstring documents them. Every
recipe also takes ``clean_counterpart = true``: the model-level recipes (pruning-aware,
TrojanNet) build their own; for the others ``harness.attacks.counterpart`` trains on the
attack's stamped images with their true labels.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from harness.attacks import (
    adaptive_blend,
    badnets,
    blended,
    faces,
    label_consistent,
    multi_trigger,
    pruning_aware,
    refool,
    sig,
    stealthy,
    trojannet,
    wanet,
)
from harness.attacks.base import AttackContext, Backdoor
from harness.attacks.counterpart import clean_counterpart
from harness.errors import SpecError
from harness.registry import Registry

RecipeFn = Callable[..., Backdoor]
#: The parameter every recipe takes: build the recipe's clean counterpart instead.
COUNTERPART = "clean_counterpart"


#: The families reports group attacks into, in the order they are shown: trigger-stamping
#: BadNets, attacks built into the model itself, the stealthy attacks designed to evade
#: trigger reconstruction, the clean-label attacks (labels never changed), the warping
#: trigger, the adaptive attacks that keep poisoned and clean latents together, and the
#: face BadNets of CSAW-HackML.
GROUPS = ("BadNets", "model-level", "stealthy", "clean-label", "warping", "adaptive", "faces")


@dataclass(frozen=True)
class AttackRecipe:
    name: str
    build: RecipeFn
    summary: str
    paper: str
    group: str  # one of GROUPS

    def own_param_names(self) -> list[str]:
        sig = inspect.signature(self.build)
        return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]

    @property
    def builds_own_counterpart(self) -> bool:
        """Does the recipe take ``clean_counterpart`` itself (a model-level attack)?"""
        return COUNTERPART in self.own_param_names()

    def param_names(self) -> list[str]:
        own = self.own_param_names()
        return own if COUNTERPART in own else [*own, COUNTERPART]

    def defaults(self) -> dict[str, object]:
        sig = inspect.signature(self.build)
        return {p.name: p.default for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}


RECIPES: Registry[AttackRecipe] = Registry(
    "attack recipe",
    [
        (r.name, r)
        for r in (
            AttackRecipe(
                "badnets_pixel_a2a",
                badnets.pixel_all_to_all,
                "single pixel, all-to-all y -> y+1",
                "BadNets (Gu et al. 2019); BackFuzz: An Automated Backdoor Detection Tool",
                "BadNets",
            ),
            AttackRecipe(
                "badnets_patch",
                badnets.patch_single_target,
                "square corner patch -> one target",
                "BadNets (Gu et al. 2019)",
                "BadNets",
            ),
            AttackRecipe(
                "blended",
                blended.blended,
                "random full-image pattern blended at alpha -> one target",
                "Chen et al. 2017, targeted backdoors by data poisoning",
                "BadNets",
            ),
            AttackRecipe(
                "multi_trigger_multi_target",
                multi_trigger.multi_target,
                "three distinct patches -> three targets",
                "CSAW-HackML 2020 multi-trigger BadNets",
                "BadNets",
            ),
            AttackRecipe(
                "multi_trigger_single_target",
                multi_trigger.single_target,
                "three distinct patches -> one target",
                "CSAW-HackML 2020 multi-trigger BadNets",
                "BadNets",
            ),
            AttackRecipe(
                "reconstructed_trigger",
                stealthy.reconstructed_trigger,
                "Neural Cleanse's own trigger + sub-mask noise (Alg. 1)",
                "Xiong et al. 2020, Escaping Backdoor Attack Detection of Deep Learning",
                "stealthy",
            ),
            AttackRecipe(
                "random_trigger",
                stealthy.random_trigger,
                "z random pixels, random pattern + sub-mask noise (Alg. 2)",
                "Xiong et al. 2020, Escaping Backdoor Attack Detection of Deep Learning",
                "stealthy",
            ),
            AttackRecipe(
                "pruning_aware",
                pruning_aware.pruning_aware,
                "patch trained into a pruned net; pruned channels restored as decoys",
                "Liu, Dolan-Gavitt, Garg 2018, Fine-Pruning",
                "model-level",
            ),
            AttackRecipe(
                "trojannet",
                trojannet.trojannet,
                "separately trained 4x4-code module inserted beside the host",
                "Tang et al. 2020, TrojanNet",
                "model-level",
            ),
            AttackRecipe(
                "sig",
                sig.sig,
                "faint sinusoid on target-class images, labels kept; stronger at test",
                "Barni, Kallas, Tondi 2019, A New Backdoor Attack in CNNs by Training Set "
                "Corruption without Label Poisoning",
                "clean-label",
            ),
            AttackRecipe(
                "label_consistent",
                label_consistent.label_consistent,
                "PGD-hardened target-class images + faint corner patches, labels kept",
                "Turner, Tsipras, Madry 2019, Label-Consistent Backdoor Attacks",
                "clean-label",
            ),
            AttackRecipe(
                "refool",
                refool.refool,
                "reflections (3 physical models) added to target-class images, labels kept",
                "Liu, Ma, Bailey, Lu 2020, Reflection Backdoor (ECCV)",
                "clean-label",
            ),
            AttackRecipe(
                "wanet",
                wanet.wanet,
                "smooth warping field -> one target; random-warp noise samples keep labels",
                "Nguyen, Tran 2021, WaNet - Imperceptible Warping-based Backdoor Attack",
                "warping",
            ),
            AttackRecipe(
                "adaptive_blend",
                adaptive_blend.adaptive_blend,
                "partitioned blend at a low rate + conservatism samples that keep labels",
                "Qi, Xie, Li, Mahloujifar, Mittal 2023, Revisiting the Assumption of Latent "
                "Separability for Backdoor Defenses",
                "adaptive",
            ),
            AttackRecipe(
                "sunglasses",
                faces.sunglasses,
                "sunglasses on a face -> one target",
                "CSAW-HackML 2020 sunglasses BadNet; Gu et al. 2019",
                "faces",
            ),
            AttackRecipe(
                "lipstick",
                faces.lipstick,
                "lipstick on a face -> one target",
                "CSAW-HackML 2020 anonymous BadNet",
                "faces",
            ),
            AttackRecipe(
                "face_multi_trigger_multi_target",
                faces.multi_target,
                "eyebrows, lipstick, sunglasses -> three targets",
                "CSAW-HackML multi-trigger multi-target BadNet (2020)",
                "faces",
            ),
            AttackRecipe(
                "face_multi_trigger_single_target",
                faces.single_target,
                "eyebrows, lipstick, sunglasses -> one target",
                "CSAW-HackML 2020 multi-trigger BadNet",
                "faces",
            ),
        )
    ],
)
if {r.group for r in RECIPES.values()} - set(GROUPS):
    raise ImportError("an attack recipe names a group that is not in GROUPS")


def lookup(name: str) -> AttackRecipe:
    """The recipe called ``name``; one line with the closest name when there is none."""
    return RECIPES[name]


def check_params(name: str, params: dict) -> AttackRecipe:
    """The recipe, once ``params`` name only its parameters (a SpecError otherwise)."""
    recipe = lookup(name)
    unknown = sorted(set(params) - set(recipe.param_names()))
    if unknown:
        raise SpecError(
            f"attack {name!r} has no parameter(s) {', '.join(unknown)}",
            fix=f"its parameters are: {', '.join(recipe.param_names())}",
        )
    return recipe


def make_backdoor(name: str, params: dict, ctx: AttackContext) -> Backdoor:
    """Design the named recipe's backdoor; unknown or bad params become a SpecError."""
    recipe = check_params(name, params)
    params = dict(params)
    counterpart = not recipe.builds_own_counterpart and bool(params.pop(COUNTERPART, False))
    try:
        backdoor = recipe.build(ctx, **params)
        return clean_counterpart(backdoor) if counterpart else backdoor
    except (ValueError, TypeError) as exc:
        raise SpecError(f"attack {name!r}: {exc}", fix="correct the attack_params") from None


def design(name: str, params: dict, input_shape: tuple[int, ...], num_classes: int, seed: int):  # noqa: ANN201
    """A recipe's trigger design without training (for tests, docs and pictures)."""
    return make_backdoor(name, params, AttackContext(tuple(input_shape), num_classes, seed))
