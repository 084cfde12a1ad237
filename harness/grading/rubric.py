"""The grading rubric, as data (TOML): lines of points on track metrics, failures, rank
points and the late policy. Every mistake in a rubric is one ``RubricError`` line.

```toml
[[line]]
name = "repaired net: clean accuracy"   # shown in grades.csv and the feedback
track = "repair"                        # detect, target, trigger, filter, repair, fuzz
metric = "ca"                           # a zoo-level metric of the track, or with
per_model = true                        # per_model: a per-model score, points split
models = "backdoored"                   #   evenly over these models (backdoored|clean|all)
points = 10
scale = { linear = [0.80, 0.95] }       # value worth 0 points, value worth all of them
# scale = { thresholds = [[0.5, 0.25], [0.9, 1.0]] }  # (value reached, share of points)

[failures]          # each failed or timed-out task of the hand-in costs points
points = 1
max = 10

[rank]              # extra points by rank among the graded hand-ins
track = "repair"
metric = "der"
points = [5, 3, 1]

[late]
due = 2026-12-01T23:59:00Z
penalty = 0.1       # share of the total lost per started late day
max_days = 5        # later than that: no points
```
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomllib

from harness.api import Track
from harness.errors import HarnessError
from harness.registry import suggest
from harness.scoring.metrics import METRICS
from harness.submission.files import read_bounded
from harness.tracks import kind_of

MODEL_SETS = ("backdoored", "clean", "all")
MAX_RUBRIC_BYTES = 1 << 20


class RubricError(HarnessError):
    """A rubric that cannot be used as written."""


@dataclass(frozen=True)
class Scale:
    """Value -> share of a line's points in [0, 1]. ``linear``: from ``zero`` (no points)
    to ``full`` (all), clipped, in either direction; ``thresholds``: the share of the best
    threshold reached, "reached" in the metric's direction."""

    linear: tuple[float, float] | None = None
    thresholds: tuple[tuple[float, float], ...] = ()
    higher_is_better: bool = True

    def share(self, value: float | None) -> float:
        if value is None or not math.isfinite(value):
            return 0.0
        if self.linear is not None:
            zero, full = self.linear
            return float(min(1.0, max(0.0, (value - zero) / (full - zero))))
        reached = [
            s for t, s in self.thresholds if (value >= t if self.higher_is_better else value <= t)
        ]
        return max(reached, default=0.0)


@dataclass(frozen=True)
class Line:
    name: str
    track: Track
    metric: str
    points: float
    scale: Scale
    per_model: bool = False
    models: str = "backdoored"


@dataclass(frozen=True)
class RankPoints:
    track: Track
    metric: str
    points: tuple[float, ...]

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better


@dataclass(frozen=True)
class LatePolicy:
    due: dt.datetime
    penalty: float
    max_days: int

    def days_late(self, handed_in: dt.datetime, extension_days: float = 0.0) -> int:
        """Started days after the due date (and the student's extension); 0 when on time."""
        late = handed_in - (self.due + dt.timedelta(days=extension_days))
        return max(0, math.ceil(late.total_seconds() / 86400))

    def factor(self, days: int) -> float:
        """The share of the total kept after ``days`` late days."""
        if days > self.max_days:
            return 0.0
        return max(0.0, 1.0 - self.penalty * days)


@dataclass(frozen=True)
class Rubric:
    path: Path
    lines: tuple[Line, ...]
    failure_points: float = 0.0
    failure_max: float = 0.0
    rank: RankPoints | None = None
    late: LatePolicy | None = None

    @property
    def max_points(self) -> float:
        return sum(line.points for line in self.lines) + (
            max(self.rank.points) if self.rank else 0.0
        )


# -- parsing ----------------------------------------------------------------------------------
def _err(path: Path, problem: str, fix: str) -> RubricError:
    return RubricError(problem, path=path, fix=fix)


def _keys(raw: dict[str, Any], allowed: set[str], where: str, path: Path) -> None:
    for key in sorted(set(raw) - allowed):
        hint = suggest(key, sorted(allowed))
        raise _err(path, f"unknown key {key!r} in {where}", hint)


def _finite(raw: Any) -> bool:
    """A TOML number that is a finite float (a 400-digit integer overflows one)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return False
    try:
        return math.isfinite(float(raw))
    except OverflowError:
        return False


def _number(raw: Any, what: str, path: Path, *, positive: bool = False) -> float:
    if not _finite(raw):
        raise _err(path, f"{what} must be a number, not {str(raw)[:40]!r}", f"e.g. {what} = 10")
    if positive and raw <= 0:
        raise _err(path, f"{what} must be above 0, not {raw!r}", f"e.g. {what} = 10")
    return float(raw)


def _track(raw: Any, where: str, path: Path) -> Track:
    try:
        return Track.parse(str(raw))
    except ValueError:
        names = [t.value for t in Track]
        hint = suggest(str(raw), names)
        raise _err(path, f"{where}: unknown track {raw!r}", hint) from None


def zoo_metrics(track: Track) -> list[str]:
    """The zoo-level metrics a track reports (what aggregation stores under it)."""
    kind = kind_of(track)
    names = ["failures"] + [m.name for m in kind.metrics if kind.track_of(m) == track.value]
    return sorted(set(names))


def model_metrics(track: Track) -> list[str]:
    """The per-model scores of a track that have a direction (registered metrics)."""
    return sorted(f.name for f in fields(kind_of(track).outcome) if f.name in METRICS)


def _metric(raw: Any, track: Track, per_model: bool, where: str, path: Path) -> str:
    known = model_metrics(track) if per_model else zoo_metrics(track)
    if raw not in known:
        hint = suggest(str(raw), known)
        kind = "per-model score" if per_model else "zoo-level metric"
        raise _err(path, f"{where}: {raw!r} is not a {kind} of track {track.value}", hint)
    return str(raw)


def _scale(raw: Any, metric: str, where: str, path: Path) -> Scale:
    fix = "scale = { linear = [0.5, 0.9] } or { thresholds = [[0.6, 0.5], [0.9, 1.0]] }"
    if not isinstance(raw, dict) or len(raw) != 1 or not {"linear", "thresholds"} & set(raw):
        raise _err(path, f"{where}: scale must name one of linear or thresholds", fix)
    hib = METRICS[metric].higher_is_better
    if "linear" in raw:
        pair = raw["linear"]
        if not isinstance(pair, list) or len(pair) != 2:
            raise _err(path, f"{where}: linear needs two values [zero points, full points]", fix)
        zero, full = (_number(v, "a linear bound", path) for v in pair)
        if zero == full:
            raise _err(path, f"{where}: linear bounds are equal ({zero:g})", fix)
        return Scale(linear=(zero, full), higher_is_better=hib)
    steps = raw["thresholds"]
    if not isinstance(steps, list) or not steps:
        raise _err(path, f"{where}: thresholds must be a list of [value, share] pairs", fix)
    out = []
    for step in steps:
        if not isinstance(step, list) or len(step) != 2:
            raise _err(path, f"{where}: threshold {step!r} is not a [value, share] pair", fix)
        value, share = _number(step[0], "a threshold", path), _number(step[1], "a share", path)
        if not 0.0 <= share <= 1.0:
            raise _err(path, f"{where}: share {share:g} is outside [0, 1]", fix)
        out.append((value, share))
    return Scale(thresholds=tuple(out), higher_is_better=hib)


def _line(raw: Any, i: int, path: Path) -> Line:
    where = f"[[line]] {i + 1}"
    if not isinstance(raw, dict):
        raise _err(path, f"{where} is not a table", "write [[line]] tables")
    _keys(raw, {"name", "track", "metric", "per_model", "models", "points", "scale"}, where, path)
    for key in ("track", "metric", "points", "scale"):
        if key not in raw:
            raise _err(path, f"{where} has no {key}", f"add {key} = ...")
    track = _track(raw["track"], where, path)
    per_model = raw.get("per_model", False)
    if not isinstance(per_model, bool):
        raise _err(path, f"{where}: per_model must be true or false", "per_model = true")
    metric = _metric(raw["metric"], track, per_model, where, path)
    models = raw.get("models", "backdoored")
    if models not in MODEL_SETS:
        raise _err(path, f"{where}: models = {models!r}", f"choose from {', '.join(MODEL_SETS)}")
    name = str(raw.get("name") or f"{track.value} {metric}")
    points = _number(raw["points"], f"{where} points", path, positive=True)
    return Line(
        name, track, metric, points, _scale(raw["scale"], metric, where, path), per_model, models
    )


def _rank(raw: Any, path: Path) -> RankPoints:
    if not isinstance(raw, dict):
        raise _err(path, "[rank] is not a table", "write [rank] with track, metric, points")
    _keys(raw, {"track", "metric", "points"}, "[rank]", path)
    track = _track(raw.get("track"), "[rank]", path)
    metric = _metric(raw.get("metric"), track, False, "[rank]", path)
    pts = raw.get("points")
    if not isinstance(pts, list) or not pts:
        raise _err(path, "[rank] points must be a list", "e.g. points = [5, 3, 1]")
    return RankPoints(track, metric, tuple(_number(p, "a rank's points", path) for p in pts))


def _late(raw: Any, path: Path) -> LatePolicy:
    if not isinstance(raw, dict):
        raise _err(path, "[late] is not a table", "write [late] with due, penalty, max_days")
    _keys(raw, {"due", "penalty", "max_days"}, "[late]", path)
    due = raw.get("due")
    if isinstance(due, dt.datetime):
        due = due if due.tzinfo else due.replace(tzinfo=dt.timezone.utc)
    elif isinstance(due, dt.date):
        due = dt.datetime.combine(due, dt.time(23, 59, 59), dt.timezone.utc)
    else:
        raise _err(
            path, f"[late] due must be a TOML date-time, not {due!r}", "due = 2026-12-01T23:59:00Z"
        )
    if not 1970 <= due.year <= 2999:  # a roster's extension (365 days at most) is added to it
        raise _err(path, f"[late] due {due:%Y-%m-%d} is not a date from 1970 to 2999",
                   "due = 2026-12-01T23:59:00Z")  # fmt: skip
    penalty = _number(raw.get("penalty"), "[late] penalty", path)
    if not 0.0 <= penalty <= 1.0:
        raise _err(
            path, f"[late] penalty {penalty:g} is outside [0, 1]", "e.g. penalty = 0.1 per day"
        )
    max_days = raw.get("max_days", 10**6)
    if isinstance(max_days, bool) or not isinstance(max_days, int) or max_days < 0:
        raise _err(
            path, f"[late] max_days must be a whole number, not {max_days!r}", "max_days = 5"
        )
    return LatePolicy(due, penalty, max_days)


def load_rubric(path: Path) -> Rubric:
    """Read and check a rubric file."""
    path = Path(path)
    try:
        raw = tomllib.loads(read_bounded(path, MAX_RUBRIC_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise _err(path, "no such rubric file", "give --rubric the path of a rubric.toml") from None
    except OSError as exc:
        raise _err(path, f"cannot read the rubric ({exc.strerror})", "give a TOML file") from None
    except UnicodeDecodeError as exc:
        raise _err(path, f"cannot read the rubric ({exc.reason})", "save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise _err(path, f"invalid TOML: {exc}", "correct the syntax") from None
    except (ValueError, RecursionError):  # a 5,000-digit integer; arrays nested too deep
        raise _err(
            path, "a number too long or arrays nested too deep", "correct the rubric"
        ) from None
    _keys(raw, {"title", "line", "failures", "rank", "late"}, "the rubric", path)
    lines = raw.get("line", [])
    if not isinstance(lines, list) or not lines:
        raise _err(path, "the rubric has no [[line]]", "add [[line]] tables (docs/GRADING.md)")
    parsed = tuple(_line(raw_line, i, path) for i, raw_line in enumerate(lines))
    names = [line.name for line in parsed]
    if len(set(names)) != len(names):
        dupe = next(n for n in names if names.count(n) > 1)
        raise _err(path, f"two lines are named {dupe!r}", "give every line its own name")
    fail_pts = fail_max = 0.0
    if "failures" in raw:
        f = raw["failures"]
        if not isinstance(f, dict):
            raise _err(path, "[failures] is not a table", "write [failures] with points, max")
        _keys(f, {"points", "max"}, "[failures]", path)
        fail_pts = _number(f.get("points", 0), "[failures] points", path)
        fail_max = _number(f["max"], "[failures] max", path) if "max" in f else math.inf
    rank = _rank(raw["rank"], path) if "rank" in raw else None
    late = _late(raw["late"], path) if "late" in raw else None
    return Rubric(path, parsed, fail_pts, fail_max, rank, late)
