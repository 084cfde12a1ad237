"""The final round (as the Trojan Detection Challenge 2022 ran one): a zoo made of the best
valid attack hand-ins' models and their clean counterparts, so every defense hand-in can be
run again on the attacks that evaded best (`harness zoo from-attacks`, then `harness run`).
"""

from __future__ import annotations

import re

from harness.attack_track.run import index_name
from harness.attack_track.score import VALID, Validity, run_rows
from harness.errors import HarnessError
from harness.paths import zoo_specs_dir
from harness.results import ResultsStore
from harness.zoo.store import ZooStore

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def from_attacks(
    results: ResultsStore,
    run_id: str,
    profile: str,
    top: int,
    zoo: ZooStore | None = None,
    rule: Validity = VALID,
) -> tuple[list[str], int]:
    """Write zoo index ``profile`` from the ``top`` valid hand-ins of an attack run (by
    evasion): (the hand-ins taken, the number of models)."""
    if not _NAME.match(profile):
        raise HarnessError(
            f"{profile!r} is not a usable zoo name", fix="use letters, digits, - _ ."
        )
    if (zoo_specs_dir() / f"{profile}.toml").is_file():
        raise HarnessError(
            f"{profile!r} is a shipped zoo profile: its index would be overwritten",
            fix="choose another --profile name, e.g. final-round",
        )
    rows = [r for r in run_rows(results, run_id, rule) if r.valid]
    if not rows:
        raise HarnessError(
            f"run {run_id!r} has no valid attack hand-in to build a final round from",
            fix=f"see why with `harness attack table --run-id {run_id}`",
        )
    taken = [r.attack for r in rows[:top]]
    zoo = zoo or ZooStore()
    built = {m.id: m.hash for m in zoo.models(index_name(run_id))}
    pairs = []
    for inst in results.attack_instances(run_id):
        if inst.attack in taken and inst.status == "ok":
            for model_id in (inst.model_id, inst.counterpart_id):
                if model_id in built:
                    pairs.append((model_id, built[model_id]))
    zoo.write_index(profile, pairs)
    return taken, len(pairs)
