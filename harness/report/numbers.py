"""Numbers formatted for people, by what each metric is (its registered unit): rates as
percentages, counts as integers, scores (AUC, cross-entropy, DER, IoU) to three places;
a confidence interval in brackets at the value's own precision."""

from __future__ import annotations

import math

from harness.scoring.metrics import METRICS

MISSING = "-"


def _missing(value: float | None) -> bool:
    return value is None or not math.isfinite(value)


def human(
    metric: str,
    value: float | None,
    low: float | None = None,
    high: float | None = None,
    spread: float | None = None,
) -> str:
    """``value`` of ``metric`` as a reader expects it, with its CI when it has one and its
    standard deviation over seeds (``± sd``) when it was measured under several."""
    if value is None or _missing(value):
        return MISSING
    unit = METRICS[metric].unit if metric in METRICS else "score"
    if unit == "count":
        return f"{value:.0f}"
    interval = (
        None if low is None or high is None or _missing(low) or _missing(high) else (low, high)
    )
    sd = None if spread is None or _missing(spread) else spread
    if unit == "rate":
        text = f"{100 * value:.1f} %" + (f" ± {100 * sd:.1f}" if sd is not None else "")
        return text + (f" [{100 * interval[0]:.0f}, {100 * interval[1]:.0f}]" if interval else "")
    text = f"{value:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")
    return text + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def seconds(value: float | None) -> str:
    """A task time: seconds under a minute, else minutes and seconds (hours past 99 min)."""
    if value is None or _missing(value):
        return MISSING
    if value < 60:
        return f"{value:.1f} s"
    if value >= 6000:
        minutes = round(value / 60)
        return f"{minutes // 60} h {minutes % 60:02d} min"
    whole = round(value)  # whole seconds first, so 119.7 s reads 2 min 00 s, not 1 min 60 s
    return f"{whole // 60} min {whole % 60:02d} s"
