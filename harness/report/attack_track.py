"""The attack track's table in Markdown, CSV, JSON and HTML (``harness attack table``, and
the run's report when it holds attack hand-ins)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from harness.attack_track.score import MAX_CA_DROP, MIN_ASR, AttackRow
from harness.report.encode import csv_cell, html_text, md_text


def _num(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _detectors(rows: list[AttackRow]) -> list[str]:
    return sorted({d for r in rows for d in r.auc})


def _filters(rows: list[AttackRow]) -> list[str]:
    return sorted({d for r in rows for d in r.filter_auc})


def table_cells(rows: list[AttackRow]) -> tuple[list[str], list[list[str]]]:
    """(header, rows of text cells): what every format shows."""
    detectors, filters = _detectors(rows), _filters(rows)
    header = ["rank", "attack", "valid", "evasion [95% CI]", "ASR", "counterpart ASR"]
    header += ["CA drop (pts)", "instances"]
    header += [f"AUC {d}" for d in detectors] + [f"filter AUC {f}" for f in filters]
    body = []
    rank = 0
    for r in rows:
        rank += r.valid
        ci = f" [{r.ci[0]:.2f}, {r.ci[1]:.2f}]" if r.ci else ""
        cells = [
            str(rank) if r.valid else "-",
            r.attack,
            "yes" if r.valid else f"no: {r.reason}",
            f"{_num(r.evasion)}{ci}",
            _num(r.asr),
            _num(r.counterpart_asr),
            _num(r.ca_drop, 2),
            f"{r.built}/{r.asked}",
        ]
        cells += [_num(r.auc.get(d)) for d in detectors]
        cells += [_num(r.filter_auc.get(f)) for f in filters]
        body.append(cells)
    return header, body


RULE = (
    f"Evasion = 1 - the best detector's ROC-AUC (its models vs their clean counterparts), "
    f"bootstrap 95% CI over models; valid when the mean ASR, and the mean ASR above the clean "
    f"counterparts' on the same stamped images, are >= {MIN_ASR}, every trigger keeps the "
    f"track's budget and the CA drop is at most {MAX_CA_DROP:g} point. Filter AUC: triggered "
    "vs clean test inputs, mean over the attack's models (not part of the evasion)."
)


def markdown(rows: list[AttackRow]) -> str:
    header, body = table_cells(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_text(c) for c in cells) + " |" for cells in body]
    return "\n".join(["## Attack track", "", RULE, "", *lines, ""])


def to_csv(rows: list[AttackRow]) -> str:
    detectors, filters = _detectors(rows), _filters(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["attack", "valid", "reason", "evasion", "evasion_ci_low", "evasion_ci_high", "asr",
         "counterpart_asr", "ca", "ca_drop", "built", "asked"]
        + [f"auc:{d}" for d in detectors]
        + [f"filter_auc:{f}" for f in filters]
    )  # fmt: skip
    for r in rows:
        w.writerow(
            [csv_cell(r.attack), int(r.valid), csv_cell(r.reason or ""), r.evasion,
             *(r.ci or (None, None)), r.asr, r.counterpart_asr, r.ca, r.ca_drop, r.built,
             r.asked]
            + [r.auc.get(d) for d in detectors]
            + [r.filter_auc.get(f) for f in filters]
        )  # fmt: skip
    return buf.getvalue()


def to_json(rows: list[AttackRow]) -> str:
    def one(r: AttackRow) -> dict[str, Any]:
        return {
            "attack": r.attack,
            "valid": r.valid,
            "reason": r.reason,
            "evasion": r.evasion,
            "evasion_ci": list(r.ci) if r.ci else None,
            "asr": r.asr,
            "counterpart_asr": r.counterpart_asr,
            "ca": r.ca,
            "ca_drop": r.ca_drop,
            "built": r.built,
            "asked": r.asked,
            "auc": r.auc,
            "filter_auc": r.filter_auc,
        }

    return json.dumps([one(r) for r in rows], indent=2)


def html_table(rows: list[AttackRow]) -> str:
    """The table as an HTML fragment (the report's stylesheet styles it)."""
    header, body = table_cells(rows)
    head = "".join(f"<th>{html_text(h)}</th>" for h in header)
    trs = []
    for r, cells in zip(rows, body, strict=True):
        cls = "" if r.valid else ' class="invalid"'
        trs.append(f"<tr{cls}>" + "".join(f"<td>{html_text(c)}</td>" for c in cells) + "</tr>")
    return (
        f'<section id="attack-track"><h2>Attack track</h2><p>{html_text(RULE)}</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table></section>"
    )
