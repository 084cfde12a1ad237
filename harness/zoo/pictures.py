"""PNG pictures of each attack's trigger, rendered from what the recipe produced in a built
profile: a clean test image, the mask, what the trigger adds and the stamped image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.attacks.base import TriggerSpec
from harness.attacks.kinds import BLEND, kind_of
from harness.zoo.store import ZooStore


def _gray(img: np.ndarray) -> np.ndarray:
    return img[..., 0] if img.shape[-1] == 1 else img


def _middle_panel(
    trigger: TriggerSpec, x: np.ndarray, stamped: np.ndarray
) -> tuple[np.ndarray, str]:
    """What the trigger adds: the masked pattern of a blend; the change it makes (scaled to
    be seen) for an additive or warping trigger, whose ``pattern`` is not an image."""
    if kind_of(trigger) == BLEND:
        return trigger.mask[..., None] * trigger.pattern, "mask x pattern"
    change = np.abs(stamped - x)
    return change / max(float(change.max()), 1e-6), f"|change| (max {float(change.max()):.2f})"


def render_triggers(profile: str, out_dir: Path, store: ZooStore | None = None) -> list[Path]:
    """One PNG per attack (the first model of each attack in the profile)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = store or ZooStore()
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    written = []
    for model in store.models(profile):
        truth = model.truth()
        if not truth.poisoned or truth.attack in seen:
            continue
        seen.add(truth.attack)
        sets = model.test_sets()
        triggers = model.trigger_specs()
        fig, axes = plt.subplots(
            len(triggers), 4, figsize=(6.4, 1.7 * len(triggers)), squeeze=False
        )
        for row, (trigger, target_map) in enumerate(zip(triggers, truth.target_maps, strict=True)):
            source = next(s for s in range(len(target_map)) if target_map[s] != s)
            x = sets.x[np.flatnonzero(sets.y == source)[0]]
            stamped = trigger.stamp(x[None])[0]
            panels = [
                (x, f"clean ({source})"),
                (trigger.mask[..., None], "mask"),
                _middle_panel(trigger, x, stamped),
                (stamped, f"stamped (-> {target_map[source]})"),
            ]
            for ax, (img, title) in zip(axes[row], panels, strict=True):
                ax.imshow(_gray(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(title, fontsize=8)
                ax.axis("off")
        fig.suptitle(f"{truth.attack}: {model.id}", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"trigger-{truth.attack}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def render_synthfaces(
    dataset: str, out_dir: Path, identities: int = 8, per_identity: int = 6
) -> Path:
    """A grid of a SynthFaces data set: a row per identity, its images across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.data import load_dataset

    data = load_dataset(dataset)
    rows = [
        np.concatenate(list(data.x_train[np.flatnonzero(data.y_train == k)[:per_identity]]), 1)
        for k in range(min(identities, data.num_classes))
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "synthfaces.png"
    plt.imsave(path, np.kron(np.concatenate(rows, 0), np.ones((2, 2, 1))).clip(0, 1))
    return path
