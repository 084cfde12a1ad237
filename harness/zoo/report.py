"""`harness zoo report`: every entry of a built profile with its truth and measured CA/ASR.

This reads private truth: it is for the zoo's owner (a grader), never for a submission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.zoo.store import ZooStore

#: A backdoored model's CA may sit at most this far under the mean of the clean models of
#: its data set (the zoo's acceptance rule; `zoo report` lists each model over it as a
#: failure, and docs/ZOO.md gives the measured gaps).
CA_TOLERANCE = 0.015


@dataclass(frozen=True)
class ZooReport:
    profile: str
    rows: list[dict[str, Any]]
    clean_ca_means: dict[str, float]  # data set -> mean CA of its clean models

    @property
    def failures(self) -> list[str]:
        """Entries whose CA is too far under the clean mean or whose ASR is under its floor."""
        bad = []
        for r in self.rows:
            if r["poisoned"] and r["ca_gap"] is not None and r["ca_gap"] > CA_TOLERANCE:
                bad.append(
                    f"{r['id']}: CA {r['ca']:.3f} is {100 * r['ca_gap']:.1f} points "
                    f"under the clean {r['dataset']} models' mean"
                )
            if r["poisoned"] and r["asr_floor"] is not None and r["asr"] < r["asr_floor"]:
                bad.append(f"{r['id']}: ASR {r['asr']:.3f} < floor {r['asr_floor']:.2f}")
        return bad


def zoo_report(profile: str, store: ZooStore | None = None) -> ZooReport:
    store = store or ZooStore()
    rows: list[dict[str, Any]] = []
    for model in store.models(profile):
        t = model.truth()
        card = model.card()
        rows.append(
            {
                "id": model.id,
                "dataset": card.dataset,
                "attack": t.attack,
                "poisoned": t.poisoned,
                "targets": t.targets,
                "all_to_all": t.all_to_all,
                "trigger_sizes": t.trigger_sizes,
                "arch": t.arch,
                "ca": t.ca,
                "asr": t.asr,
                "asr_floor": t.asr_floor,
                "build_seconds": t.build_seconds,
            }
        )
    means = {
        ds: float(np.mean([r["ca"] for r in rows if r["dataset"] == ds and r["poisoned"] is False]))
        for ds in sorted({r["dataset"] for r in rows if r["poisoned"] is False})
    }
    for r in rows:
        mean = means.get(r["dataset"])
        r["ca_gap"] = None if mean is None else round(mean - r["ca"], 4)
    return ZooReport(profile, rows, means)


def _targets(row: dict[str, Any]) -> str:
    if row["poisoned"] is None:
        return "? (truth unknown)"
    if not row["poisoned"]:
        return "-"
    if row["all_to_all"]:
        return "all (y -> y+1)"
    return ",".join(map(str, row["targets"]))


def _attack(row: dict[str, Any]) -> str:
    if row["attack"] not in ("none", "imported") and not row["poisoned"]:
        return f"none ({row['attack']} counterpart)"
    return row["attack"]


def table_rows(report: ZooReport) -> tuple[list[list[Any]], list[str]]:
    """The report as (rows, headers) for tabulate (Markdown or plain)."""
    headers = ["id", "attack", "targets", "trigger px", "CA", "CA gap", "ASR", "ASR floor"]
    rows = [
        [
            r["id"],
            _attack(r),
            _targets(r),
            "+".join(map(str, r["trigger_sizes"])) or "-",
            f"{r['ca']:.3f}",
            "-" if r["ca_gap"] is None or not r["poisoned"] else f"{100 * r['ca_gap']:+.1f}",
            "-" if r["asr"] is None else f"{r['asr']:.3f}",
            "-" if r["asr_floor"] is None else f"{r['asr_floor']:.2f}",
        ]
        for r in report.rows
    ]
    return rows, headers
