"""Returns a dict instead of a PoisonedSet."""

TRACKS = ["attack"]


class Entry:
    def poison(self, x, y, rng):
        return {"x": x, "y": y}
