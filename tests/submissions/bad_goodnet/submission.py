import numpy as np


class BadGoodNet:
    """Repairs nothing; exports a GoodNet the contest's grader cannot use.

    mode "n_plus_one": N+2 outputs, answering N+1 for "rejected" (an off-by-one seen in
    CSAW submissions); mode "lambda": a Lambda layer, which plain load_model refuses.
    """

    def __init__(self, mode: str = "n_plus_one") -> None:
        self.mode = mode

    def repair(self, model, clean):
        self.model = model

    def predict(self, x):
        return np.argmax(self.model.predict(x, verbose=0), axis=1)

    def export(self):
        import keras
        from keras import layers

        inputs = keras.Input(tuple(self.model.inputs[0].shape[1:]))
        p = self.model(inputs)
        if self.mode == "lambda":
            return keras.Model(inputs, layers.Lambda(lambda t: t * 1.0)(p))
        extra = layers.Dense(2, kernel_initializer="zeros", name="extra")(p)
        model = keras.Model(inputs, layers.Concatenate()([p, extra]))
        n = int(p.shape[-1])
        model.get_layer("extra").set_weights(
            [np.zeros((n, 2), np.float32), np.array([0.0, 0.99], np.float32)]
        )
        return model
