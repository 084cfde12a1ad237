from harness.api import Detection


class OraclePeek:
    def detect(self, model, clean):
        n = 0 if clean.poisoned is None else len(clean.poisoned)
        return Detection(score=1.0 if n else 0.0, extra={"poisoned_seen": n})
