"""The raw tables of a zoo profile's TOML, checked and expanded before they become entries.

Holds what reads the profile's dicts as TOML gave them: the unknown-key check (with a
"did you mean" hint), the ``[draw.<dataset>]`` tables of training-setting choices, and the
``instances = N`` expansion of one ``[[models]]`` table into N models. They are apart from
``harness.zoo.spec`` (the ``ZooEntry`` model, its content address and ``load_profile``)
because they know nothing of entries: they turn TOML tables into the plain dicts
``load_profile`` makes entries of.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from harness.errors import SpecError
from harness.registry import suggest

#: The learning-rate schedules an entry may name (``ZooEntry.lr_schedule``).
LR_SCHEDULES = ("constant", "cosine")
#: Training settings a profile may draw per model (``[draw.<dataset>]``) instead of fixing.
DRAWABLE = ("epochs", "batch_size", "learning_rate", "lr_schedule", "train_size")


def hint(word: str, options: list[str]) -> str:
    """The ``fix`` of an unknown name: the closest option, else every option."""
    return suggest(word, options)


def check_keys(keys: set[str], allowed: set[str], where: str, path: Path) -> None:
    """Refuse the first key of ``keys`` (sorted) that ``allowed`` lacks."""
    for key in sorted(keys - allowed):
        raise SpecError(
            f"unknown key {key!r} in {where}", path=path, fix=hint(key, sorted(allowed))
        )


def check_draw(draw: Any, path: Path) -> dict[str, dict[str, list[Any]]]:
    """``[draw.<dataset>]`` tables: each drawable setting -> a non-empty list of choices."""
    if not isinstance(draw, dict) or not all(isinstance(t, dict) for t in draw.values()):
        raise SpecError(
            "[draw] must hold one table per data set",
            path=path,
            fix="write [draw.mnist] with lists, e.g. epochs = [4, 5, 6]",
        )
    for dataset, table in draw.items():
        check_keys(set(table), set(DRAWABLE), f"[draw.{dataset}]", path)
        for key, choices in table.items():
            if not isinstance(choices, list) or not choices:
                raise SpecError(
                    f"[draw.{dataset}] {key} must be a non-empty list of choices",
                    path=path,
                    fix=f"write {key} = [a, b, ...]",
                )
            if not all(_valid_choice(key, c) for c in choices):
                raise SpecError(
                    f"[draw.{dataset}] {key} has an invalid choice in {choices}",
                    path=path,
                    fix=_CHOICE_FIX[key],
                )
    return draw


_CHOICE_FIX = {
    "epochs": "epochs are positive integers",
    "batch_size": "batch sizes are positive integers",
    "train_size": "train sizes are integers, 0 for the whole pool",
    "learning_rate": "learning rates are positive numbers",
    "lr_schedule": f"choose from: {', '.join(LR_SCHEDULES)}",
}


def _valid_choice(key: str, value: Any) -> bool:
    if key == "lr_schedule":
        return value in LR_SCHEDULES
    if key == "learning_rate":
        return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    is_int = isinstance(value, int) and not isinstance(value, bool)
    return is_int and (value >= 0 if key == "train_size" else value > 0)


def expand_instances(models: Any, path: Path) -> list[Any]:
    """``instances = N`` in a ``[[models]]`` table stands for N models of the same settings
    (an experiment repeated, as Xiong et al. repeat each attack setting 10 times): ids from
    the table's id with ``{i}`` replaced by 1 .. N (two digits), seeds ``seed + i - 1``.

    ``failed_seeds = [...]`` lists seeds whose backdoor missed its ASR floor: an attacker
    ships only backdoors that take (Xiong et al. require "a high success rate"), so the
    instance that would have one gets the next seed past the table's range (``seed + N``,
    then on) that is not listed either. Only that instance's model changes."""
    if not isinstance(models, list):
        raise SpecError("[[models]] must be a list of tables", path=path, fix="write [[models]]")
    out: list[Any] = []
    for index, raw in enumerate(models):
        if not isinstance(raw, dict) or "instances" not in raw:
            out.append(raw)
            continue
        raw = dict(raw)
        n = raw.pop("instances")
        model_id = str(raw.get("id", ""))
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise SpecError(
                f"[[models]] #{index + 1}: instances must be an integer >= 1, not {n!r}",
                path=path,
                fix="write instances = 10",
            )
        if "{i}" not in model_id:
            raise SpecError(
                f"[[models]] #{index + 1}: an id with instances needs {{i}} where the "
                f"instance number goes, not {model_id!r}",
                path=path,
                fix='write id = "mnist-random-z36-i{i}-v1"',
            )
        seed = raw.get("seed", 0)
        failed = raw.pop("failed_seeds", [])
        if not isinstance(failed, list) or not all(
            isinstance(f, int) and not isinstance(f, bool) for f in failed
        ):
            raise SpecError(
                f"[[models]] #{index + 1}: failed_seeds must be a list of seeds, not {failed!r}",
                path=path,
                fix="write failed_seeds = [1102]",
            )
        spare = (s for s in itertools.count(seed + n) if s not in failed)
        for i in range(1, n + 1):
            this = seed + i - 1
            this = next(spare) if this in failed else this
            out.append({**raw, "id": model_id.replace("{i}", f"{i:02d}"), "seed": this})
    return out
