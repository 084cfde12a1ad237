"""Looks everywhere it can for the data it must not see (the test split, zoo objects, the
results store, truth files), says what it found on stderr, and fails when it found any;
when it found nothing it hands in a plain BadNets patch."""

import os
import sys

import numpy as np

from harness.api import PoisonedSet, Trigger

TRACKS = ["attack"]
FORBIDDEN = ("test.npz", "poisoned_test.npz", "truth.json", "results.sqlite", "clean_val.npz")


class Entry:
    def poison(self, x, y, rng):
        found, seen = [], 0
        for root, dirs, files in os.walk("/", onerror=lambda e: None):
            dirs[:] = [d for d in dirs if not root.startswith(("/proc", "/sys", "/dev"))]
            for name in files:
                seen += 1
                if "site-packages" in root:  # libraries' own fixtures (scipy has a test.npz)
                    continue
                if name in FORBIDDEN or name == "train.npz" and "given" not in root:
                    found.append(os.path.join(root, name))
        env = sorted(k for k in os.environ if k.startswith("HARNESS"))
        print(f"snoop: {seen} files seen, {len(found)} forbidden, env {env}", file=sys.stderr)
        if found:
            raise RuntimeError(f"found {found[:5]}")
        mask = np.zeros(x.shape[1:3], np.float32)
        mask[-4:-1, -4:-1] = 1.0
        trigger = Trigger(mask, np.ones(x.shape[1:], np.float32))
        chosen = rng.choice(np.flatnonzero(y != 0), len(y) // 10, replace=False)
        x[chosen] = trigger.stamp(x[chosen])
        y[chosen] = 0
        return PoisonedSet(x, y, [trigger], [0])
