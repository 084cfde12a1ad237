"""Attack recipes: each turns (params, input shape, classes, seed) into a Backdoor."""

from harness.attacks.base import Backdoor, TriggerSpec
from harness.attacks.registry import RECIPES, AttackRecipe, make_backdoor

__all__ = ["RECIPES", "AttackRecipe", "Backdoor", "TriggerSpec", "make_backdoor"]
