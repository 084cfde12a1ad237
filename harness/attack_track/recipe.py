"""How the harness trains an attack hand-in's poisoned sets: the zoo's architecture and
training settings, one recipe per data set (and a small one for tests and trials).

Instance i of a hand-in trains with seed ``seed + i`` (its data split, its initial
weights, the hand-in's ``rng``); its clean counterpart trains on the same images, with
their true labels, from the initial weights of seed ``seed + i + COUNTERPART_OFFSET``. Both
models of a pair get the same settings, so training tells them apart by the poison alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from harness.registry import Registry
from harness.zoo.spec import ZooEntry

#: The counterpart's weights are drawn from this far along the seed line.
COUNTERPART_OFFSET = 50_000


@dataclass(frozen=True)
class TrainRecipe:
    """A data set, an architecture and the zoo's training settings for them."""

    name: str
    description: str
    dataset: str = "mnist"
    arch: str = "mnist_cnn_a"
    epochs: int = 4
    batch_size: int = 128
    learning_rate: float = 1e-3
    train_size: int = 0
    val_per_class: int = 50
    test_size: int = 5000
    seed: int = 7000

    def entry(self, attack: str, instance: int) -> ZooEntry:
        """The zoo entry instance ``instance`` of ``attack`` trains as (a clean entry: the
        poison comes from the hand-in)."""
        return ZooEntry(
            id=f"{attack}-{instance}",
            dataset=self.dataset,
            arch=self.arch,
            seed=self.seed + instance,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            train_size=self.train_size,
            val_per_class=self.val_per_class,
            test_size=self.test_size,
        )

    def counterpart(self, entry: ZooEntry) -> ZooEntry:
        return replace(entry, id=f"{entry.id}-counterpart", seed=entry.seed + COUNTERPART_OFFSET)


TRAIN_RECIPES: Registry[TrainRecipe] = Registry(
    "training recipe",
    [
        (r.name, r)
        for r in (
            TrainRecipe("mnist", "MNIST, the default zoo's CNN A: 4 epochs on the whole pool"),
            TrainRecipe(
                "mnist-stealthy",
                "MNIST, CNN A, 6 epochs on the whole pool: the zoo's stealthy models' training "
                "(noise-augmented poison needs the extra epochs to recover clean accuracy)",
                epochs=6,
            ),
            TrainRecipe(
                "mnist-small",
                "MNIST on 20,000 images, 4 epochs: a third of the time of the same recipe",
                train_size=20_000,
                test_size=2000,
            ),
            TrainRecipe(
                "tiny",
                "MNIST on 3,000 images, 2 epochs: for tests; backdoors take, evasion means little",
                epochs=2,
                train_size=3000,
                val_per_class=10,
                test_size=1000,
            ),
            TrainRecipe(
                "mnist-12k",
                "MNIST on 12,000 images, 3 epochs, batch 64: the demo zoo's training, where a "
                "clean-label attack that the whole pool drowns out (Refool) still takes",
                epochs=3,
                batch_size=64,
                train_size=12_000,
                val_per_class=20,
                test_size=2000,
            ),
            TrainRecipe(
                "faces",
                "SynthFaces (100 identities), DeepID, 12 epochs: the face track's recipe",
                dataset="synthfaces",
                arch="deepid",
                epochs=12,
                batch_size=64,
                val_per_class=9,
                test_size=1200,
            ),
        )
    ],
)


def recipe(name: str) -> TrainRecipe:
    """The training recipe called ``name``; one line with the closest when there is none."""
    return TRAIN_RECIPES[name]
