"""How a harness process loads TensorFlow and Keras: once, and without what it never uses.

Keras imports scikit-learn (for ``keras.wrappers``) and pandas (for its data adapters),
and scipy and matplotlib through them, whenever they are installed. The harness's
environment has them for its own host-side work (ROC-AUC, reports), but a process that
only loads models and predicts spends a second or more of CPU on them at every start
(measured: Keras's import 3.1-3.6 CPU s with them, 2.1-2.5 s without, in a `harness`
process). Sandbox workers, the harness's own scoring (``harness.zoo.predict``) and zoo
builds load Keras through :func:`import_tensorflow`, which keeps them out of that import
only: whoever imports one of them later gets it as usual, and one already imported is
used as it is.
"""

from __future__ import annotations

import importlib.abc
import sys
from types import ModuleType

#: Packages kept out of TensorFlow's and Keras's own import.
DEFERRED = frozenset({"sklearn", "pandas", "scipy", "matplotlib"})


class _Defer(importlib.abc.MetaPathFinder):
    """Refuses DEFERRED imports while installed (each library treats the refusal as "not
    installed": an optional dependency it skips)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in DEFERRED:
            raise ImportError(f"{name} is deferred while TensorFlow and Keras load")
        return None


def import_tensorflow(threads: int | None = None) -> ModuleType:
    """Import TensorFlow and Keras without DEFERRED (on ``threads`` threads when given, else
    TensorFlow's own choice, which TF_NUM_INTRAOP_THREADS sets); Keras's module."""
    if "keras" in sys.modules and threads is None:
        return sys.modules["keras"]
    finder = _Defer()
    sys.meta_path.insert(0, finder)
    try:
        import tensorflow as tf

        if threads is not None:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras
    finally:
        sys.meta_path.remove(finder)
    return keras
