"""A constructor doing work: it stores a converted parameter and sets state of its own."""

from harness.api import Detection


class CtorState:
    def __init__(self, scale: int = 1, steps: int = 5) -> None:
        self.scale = float(scale)  # not the object it was given
        self.steps = steps
        self.history: list[float] = []  # state, not a parameter

    def detect(self, model, clean) -> Detection:
        return Detection(score=0.5)
