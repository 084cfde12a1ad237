import random

from harness.api import Detection


class WeightChanger:
    """Breaks two rules: modifies the input model and is not deterministic."""

    def detect(self, model, clean):
        layer = model.get_layer("output")
        w, b = layer.get_weights()
        layer.set_weights([w * 0.5, b])
        return Detection(score=random.SystemRandom().random())
