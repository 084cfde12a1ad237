"""Raises inside poison()."""

TRACKS = ["attack"]


class Entry:
    def poison(self, x, y, rng):
        raise RuntimeError("this attack crashed on purpose")
