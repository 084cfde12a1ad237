"""Attack recipes: each designs a Backdoor from an AttackContext and implants it."""

from harness.attacks.base import AttackContext, Backdoor, Trainer, TriggerSpec
from harness.attacks.registry import RECIPES, AttackRecipe, check_params, design, make_backdoor

__all__ = [
    "RECIPES",
    "AttackContext",
    "AttackRecipe",
    "Backdoor",
    "Trainer",
    "TriggerSpec",
    "check_params",
    "design",
    "make_backdoor",
]
