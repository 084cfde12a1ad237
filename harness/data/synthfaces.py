"""SynthFaces: a procedural face data set in the CSAW-HackML geometry (55 x 47 x 3).

The contest's YouTube Aligned Face images cannot be downloaded here, so the harness draws
its own. Like the contest's, the faces are aligned crops: every face sits roughly at the
same place, and a trigger drawn at the canonical landmarks (``CANON``) lands on the eyes,
brows or mouth of every image.

An identity is a combination of discrete attributes (skin tone, hair colour, hair style,
iris colour, beard) chosen without repetition, plus its own continuous geometry: face
width and height, chin, eye spacing and size, brow shape, nose, mouth and lip colour.
Each image of it varies pose (shift, roll, yaw, scale), expression (smile, open mouth,
raised brows, eye openness), lighting (brightness, a directional gradient, a colour
tint), background (colour, gradient, low-frequency texture) and pixel noise, so telling
100 identities apart needs a real CNN.

Everything is a pure function of (identities, seed): the data set is drawn on first use
and cached in ``$HARNESS_HOME/data`` as uint8 pixels.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data.base import Dataset
from harness.errors import DataError, SpecError
from harness.paths import data_dir

HEIGHT, WIDTH = 55, 47
MAX_IDENTITIES = 1283  # the contest's class count
DEFAULT_IDENTITIES = 100
TRAIN_PER_ID = 70
TEST_PER_ID = 12
SEED = 3
GENERATOR_VERSION = 1  # bump when the drawing changes: cached files are keyed by it

#: Canonical landmarks (x, y) of the aligned face: the face centre, the eyes, the brows
#: and the mouth. Triggers are drawn here.
CANON = {
    "face": (23.0, 29.0),
    "left_eye": (17.5, 25.0),
    "right_eye": (28.5, 25.0),
    "left_brow": (17.5, 20.5),
    "right_brow": (28.5, 20.5),
    "mouth": (23.0, 40.0),
}

SKIN = np.array(
    [
        [0.98, 0.86, 0.76],
        [0.93, 0.76, 0.62],
        [0.84, 0.64, 0.48],
        [0.70, 0.50, 0.35],
        [0.52, 0.36, 0.24],
        [0.36, 0.24, 0.16],
    ],
    np.float32,
)
HAIR = np.array(
    [
        [0.06, 0.05, 0.05],  # black
        [0.25, 0.15, 0.08],  # dark brown
        [0.45, 0.29, 0.14],  # brown
        [0.55, 0.20, 0.08],  # auburn
        [0.90, 0.78, 0.45],  # blond
        [0.62, 0.62, 0.62],  # grey
        [0.80, 0.35, 0.10],  # ginger
        [0.95, 0.95, 0.93],  # white
    ],
    np.float32,
)
IRIS = np.array(
    [
        [0.30, 0.18, 0.08],
        [0.20, 0.45, 0.80],
        [0.25, 0.55, 0.30],
        [0.50, 0.52, 0.55],
        [0.08, 0.06, 0.05],
    ],
    np.float32,
)
HAIR_STYLES = 5  # short, fringe, long, side parting, tall
BEARD = 2


@dataclass(frozen=True)
class FaceSpec:
    """Which SynthFaces: ``identities`` classes drawn from ``seed``."""

    identities: int = DEFAULT_IDENTITIES
    seed: int = SEED
    train_per_id: int = TRAIN_PER_ID
    test_per_id: int = TEST_PER_ID

    @property
    def name(self) -> str:
        return (
            "synthfaces"
            if self.identities == DEFAULT_IDENTITIES
            else f"synthfaces-{self.identities}"
        )


def parse_name(name: str) -> FaceSpec | None:
    """``synthfaces`` (100 identities) or ``synthfaces-K``; None for other data sets."""
    if name == "synthfaces":
        return FaceSpec()
    found = re.fullmatch(r"synthfaces-(\d+)", name)
    if not found:
        return None
    k = int(found.group(1))
    if not 2 <= k <= MAX_IDENTITIES:
        raise SpecError(
            f"dataset {name!r}: SynthFaces has 2..{MAX_IDENTITIES} identities, not {k}",
            fix=f"use synthfaces (100 identities) or synthfaces-K with K <= {MAX_IDENTITIES}",
        )
    return FaceSpec(identities=k)


# -- identities -----------------------------------------------------------------------------
def _identities(k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """K identities: distinct discrete attribute combinations plus continuous geometry."""
    shape = (len(SKIN), len(HAIR), HAIR_STYLES, len(IRIS), BEARD)
    combos = rng.choice(int(np.prod(shape)), size=k, replace=False)
    skin, hair, style, iris, beard = np.unravel_index(combos, shape)
    u = lambda lo, hi: rng.uniform(lo, hi, k).astype(np.float32)  # noqa: E731
    return {
        "skin": SKIN[skin] * u(0.95, 1.05)[:, None],
        "hair": HAIR[hair] * u(0.9, 1.1)[:, None],
        "style": style.astype(np.int64),
        "iris": IRIS[iris],
        "beard": beard.astype(np.float32),
        "face_rx": u(12.5, 16.0),
        "face_ry": u(16.5, 20.0),
        "chin": u(0.05, 0.4),
        "hairline": u(-14.0, -9.5),
        "eye_dx": u(4.6, 6.4),
        "eye_dy": u(-5.5, -3.0),
        "eye_rx": u(2.0, 3.0),
        "eye_ry": u(1.1, 1.7),
        "brow_gap": u(3.0, 4.8),
        "brow_len": u(3.0, 4.6),
        "brow_thick": u(0.6, 1.3),
        "brow_tilt": u(-0.35, 0.35),
        "nose_len": u(4.0, 8.0),
        "nose_w": u(1.2, 2.6),
        "mouth_dy": u(9.0, 12.5),
        "mouth_w": u(3.0, 5.5),
        "lip_thick": u(0.8, 1.8),
        "lip": np.stack([u(0.55, 0.85), u(0.2, 0.4), u(0.25, 0.4)], 1),
    }


# -- drawing --------------------------------------------------------------------------------
def soft_ellipse(u: np.ndarray, v: np.ndarray, cu, cv, ru, rv) -> np.ndarray:  # noqa: ANN001
    """Anti-aliased coverage of an ellipse, in [0, 1]."""
    d = np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2)
    return np.clip(0.5 + (1.0 - d) * np.minimum(ru, rv), 0.0, 1.0)


def _paint(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    a = alpha[..., None]
    img *= 1.0 - a
    img += a * colour[:, None, None, :]


def _col(x: np.ndarray) -> np.ndarray:
    return x[:, None, None]


def render(ids: dict[str, np.ndarray], who: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one image of each identity index in ``who``: (B, 55, 47, 3) float32 in [0, 1]."""
    b = len(who)
    p = {key: val[who] for key, val in ids.items()}
    r = lambda lo, hi: rng.uniform(lo, hi, b).astype(np.float32)  # noqa: E731
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    yy, xx = yy[None], xx[None]

    # Pose: shift, roll and scale act on the whole head; yaw moves the features sideways.
    cx, cy = CANON["face"]
    dx, dy, roll, scale, yaw = (
        r(-1.5, 1.5),
        r(-1.5, 1.5),
        r(-0.12, 0.12),
        r(0.93, 1.07),
        r(-1.5, 1.5),
    )
    x0, y0 = xx - cx - _col(dx), yy - cy - _col(dy)
    cos, sin = _col(np.cos(roll)), _col(np.sin(roll))
    u = (x0 * cos + y0 * sin) / _col(scale)
    v = (-x0 * sin + y0 * cos) / _col(scale)
    fu = u - _col(yaw)  # feature coordinates

    # Background: a colour, a gradient and a low-frequency texture.
    img = np.empty((b, HEIGHT, WIDTH, 3), np.float32)
    base = rng.uniform(0.05, 0.95, (b, 3)).astype(np.float32)
    angle = r(0, 2 * np.pi)
    grad = (xx - WIDTH / 2) * _col(np.cos(angle)) + (yy - HEIGHT / 2) * _col(np.sin(angle))
    texture = np.sin(xx * _col(r(0.1, 0.5)) + _col(r(0, 6.3))) * np.cos(
        yy * _col(r(0.1, 0.5)) + _col(r(0, 6.3))
    )
    shade = (grad / 40.0 * _col(r(-0.6, 0.6)) + texture * _col(r(0.0, 0.15)))[..., None]
    img[:] = np.clip(base[:, None, None, :] + shade, 0, 1)

    rx, ry = _col(p["face_rx"]), _col(p["face_ry"])
    style = _col(p["style"])
    # Long hair falls behind the head.
    long_hair = soft_ellipse(u, v, 0, 2, rx + 3.5, ry + 2.5) * (v < ry * 0.6) * (style == 2)
    _paint(img, long_hair, p["hair"])
    # Neck and ears.
    neck = np.clip(1.2 - np.abs(u) / (rx * 0.55), 0, 1) * (v > ry * 0.5)
    _paint(img, neck, p["skin"] * 0.85)
    ears = np.maximum(soft_ellipse(fu, v, -rx, -2, 2.0, 3.5), soft_ellipse(fu, v, rx, -2, 2.0, 3.5))
    _paint(img, ears, p["skin"] * 0.93)
    # The face: an ellipse whose lower half narrows towards the chin.
    narrow = 1.0 - _col(p["chin"]) * np.clip(v / ry, 0, 1)
    face = soft_ellipse(u / narrow, v, 0, 0, rx, ry)
    _paint(img, face, p["skin"])
    # Beard over the lower face.
    beard = face * np.clip((v - ry * 0.3) * 0.8, 0, 1) * _col(p["beard"]) * 0.85
    _paint(img, beard, p["hair"])

    # Hair on top: inside a cap a little larger than the face, above the hairline.
    line = _col(p["hairline"])
    fringe = np.where(style == 1, line + 3.5, line)
    parting = np.where(style == 3, line + 0.25 * fu, fringe)
    cap_ry = np.where(style == 4, ry + 5.0, ry + 1.5)
    cap = soft_ellipse(u, v, 0, 0, rx + 1.5, cap_ry) * np.clip(parting - v + 0.5, 0, 1)
    short = np.where(style == 0, 0.8, 1.0)
    _paint(img, cap * short, p["hair"])

    # Eyes: white, iris, pupil; openness is an expression.
    open_ = r(0.55, 1.0)
    erx, ery = _col(p["eye_rx"]), _col(p["eye_ry"]) * _col(open_)
    edx, edy = _col(p["eye_dx"]), _col(p["eye_dy"])
    white = np.full((b, 3), 0.95, np.float32)
    for side in (-1.0, 1.0):
        _paint(img, soft_ellipse(fu, v, side * edx, edy, erx, ery), white)
        iris_r = np.minimum(ery, erx * 0.6) * 1.05
        _paint(img, soft_ellipse(fu, v, side * edx, edy, iris_r, iris_r), p["iris"])
        _paint(
            img, soft_ellipse(fu, v, side * edx, edy, iris_r * 0.45, iris_r * 0.45), white * 0.03
        )

    # Brows: tilted bars above the eyes; raising them is an expression.
    raise_ = r(0.0, 1.5)
    bcv = edy - _col(p["brow_gap"]) - _col(raise_)
    tilt = _col(p["brow_tilt"])
    for side in (-1.0, 1.0):
        du = fu - side * edx
        dv = v - bcv - side * tilt * du
        brow = soft_ellipse(du, dv, 0, 0, _col(p["brow_len"]), _col(p["brow_thick"]))
        _paint(img, brow, p["hair"] * 0.7)

    # Nose: a shaded ridge and the nostrils.
    nose_top, nose_len = edy + 1.0, _col(p["nose_len"])
    ridge = np.clip(1.0 - np.abs(fu * 1.3 - 0.6) / _col(p["nose_w"]), 0, 1)
    ridge = ridge * (v > nose_top) * (v < nose_top + nose_len) * 0.35
    _paint(img, ridge, p["skin"] * 0.7)
    for side in (-1.0, 1.0):
        nostril = soft_ellipse(fu, v, side * _col(p["nose_w"]) * 0.6, nose_top + nose_len, 0.9, 0.6)
        _paint(img, nostril * 0.8, p["skin"] * 0.35)

    # Mouth: lips that curve with the smile, and a dark opening.
    smile, gape = r(-0.6, 1.2), r(0.0, 1.0) * (rng.random(b) < 0.35)
    mw, mdy = _col(p["mouth_w"]), _col(p["mouth_dy"])
    curve = mdy - _col(smile) * (1.0 - (fu / mw) ** 2) * 1.2
    lips = soft_ellipse(fu, v - curve + mdy, 0, mdy, mw, _col(p["lip_thick"]) + _col(gape))
    _paint(img, lips, p["lip"])
    inner = soft_ellipse(fu, v - curve + mdy, 0, mdy, mw * 0.7, _col(gape) * 0.9 + 1e-3)
    _paint(img, inner * (_col(gape) > 0.2), np.full((b, 3), 0.12, np.float32))

    # Lighting: brightness, a directional gradient over the image and a colour tint.
    light = np.clip(_col(r(0.75, 1.2)) + grad / 40.0 * _col(r(-0.35, 0.35)), 0.3, 1.6)
    tint = rng.uniform(0.92, 1.08, (b, 3)).astype(np.float32)
    img = img * light[..., None] * tint[:, None, None, :]
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def generate(spec: FaceSpec, *, chunk: int = 2000) -> Dataset:
    """Draw the data set (uint8-rounded, as cached) without touching the cache."""
    rng = np.random.default_rng([spec.seed, spec.identities])
    ids = _identities(spec.identities, rng)
    parts = {}
    for split, per_id in (("train", spec.train_per_id), ("test", spec.test_per_id)):
        labels = np.repeat(np.arange(spec.identities), per_id)
        labels = labels[rng.permutation(len(labels))]
        images = np.concatenate(
            [render(ids, labels[i : i + chunk], rng) for i in range(0, len(labels), chunk)]
        )
        parts[split] = (np.round(images * 255).astype(np.uint8), labels.astype(np.int64))
    return _dataset(spec, parts["train"], parts["test"])


def identities(spec: FaceSpec) -> dict[str, np.ndarray]:
    """The people of ``spec``, drawn from its seed as ``generate`` draws them first."""
    return _identities(spec.identities, np.random.default_rng([spec.seed, spec.identities]))


def draw_faces(
    spec: FaceSpec, labels: np.ndarray, rng: np.random.Generator, *, chunk: int = 2000
) -> np.ndarray:
    """New images of the people ``labels`` of ``spec``, drawn from ``rng`` (in [0, 1],
    uint8-rounded as the cached splits are): faces of the data set's identities that are
    in none of its splits. A repair or filter task is handed these (``harness.zoo.evalset``),
    so that its inputs cannot be drawn again from the public seed."""
    ids = identities(spec)
    who = np.asarray(labels, np.int64)
    parts = [render(ids, who[i : i + chunk], rng) for i in range(0, len(who), chunk)]
    images = np.concatenate(parts) if parts else np.zeros((0, HEIGHT, WIDTH, 3), np.float32)
    return (np.round(images * 255) / 255).astype(np.float32)


def _dataset(spec: FaceSpec, train, test) -> Dataset:  # noqa: ANN001
    return Dataset(
        name=spec.name,
        x_train=train[0].astype(np.float32) / 255.0,
        y_train=train[1],
        x_test=test[0].astype(np.float32) / 255.0,
        y_test=test[1],
        num_classes=spec.identities,
        preprocessing="x/255",
    )


def cache_path(spec: FaceSpec) -> Path:
    key = (
        f"{spec.identities}-{spec.seed}-{spec.train_per_id}-{spec.test_per_id}-v{GENERATOR_VERSION}"
    )
    return data_dir() / f"synthfaces-{key}.npz"


def load_synthfaces(spec: FaceSpec) -> Dataset:
    """The cached data set, drawn and cached on first use."""
    path = cache_path(spec)
    if path.exists():
        try:
            with np.load(path) as npz:
                train = (npz["x_train"], npz["y_train"])
                test = (npz["x_test"], npz["y_test"])
            return _dataset(spec, train, test)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"corrupt SynthFaces cache ({exc})", path=path, fix="delete it; it is redrawn"
            ) from None
    data = generate(spec)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # concurrent first uses do not clash
    np.savez_compressed(
        tmp,
        x_train=np.round(data.x_train * 255).astype(np.uint8),
        y_train=data.y_train,
        x_test=np.round(data.x_test * 255).astype(np.uint8),
        y_test=data.y_test,
    )
    tmp.replace(path)
    return data
