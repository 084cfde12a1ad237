"""The public card and the private truth of one zoo model, as JSON-backed dataclasses."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _read(cls: type[T], path: Path) -> T:
    raw = json.loads(path.read_text())
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass(frozen=True)
class ModelCard:
    """What a submission may know about a model. Same keys for clean and backdoored."""

    id: str
    dataset: str
    input_shape: list[int]
    num_classes: int
    input_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    preprocessing: str = "none"
    clean_split_size: int = 0
    format_version: int = 1

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        return _read(cls, path)


@dataclass(frozen=True)
class TruthRecord:
    """Hidden ground truth, never shown to a submission."""

    id: str
    spec_hash: str
    poisoned: bool | None  # None: imported with unknown truth
    attack: str
    params: dict[str, Any]
    targets: list[int]
    all_to_all: bool
    target_maps: list[list[int]]  # one source -> target map per trigger
    trigger_sizes: list[int]
    ca: float
    asr: float | None
    asr_floor: float | None
    arch: str
    seed: int
    build_seconds: float
    harness_version: str
    details: dict[str, Any] = field(default_factory=dict)  # what the recipe derived

    @property
    def role(self) -> str | None:
        """backdoored, counterpart (a recipe run with nothing implanted) or clean; None
        when the truth is unknown. The built model's side of ``ZooEntry.role``."""
        if self.poisoned is None:
            return None
        if self.poisoned:
            return "backdoored"
        return "counterpart" if self.params.get("clean_counterpart") else "clean"

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))

    @classmethod
    def read(cls, path: Path) -> TruthRecord:
        return _read(cls, path)
