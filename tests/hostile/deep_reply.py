"""Returns a reply nested 100,000 lists deep (in Detection.extra)."""

from harness.api import Detection

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        deep: list = []
        for _ in range(100_000):
            deep = [deep]
        return Detection(score=0.5, extra={"deep": deep})
