from harness.api import Detection


class Defense:
    def __init__(self, steps: int = 1) -> None:
        self.steps = steps

    def detect(self, model, clean):
        return Detection(score=0.5)
