"""Compact classifiers (tf-keras / Keras 2, as tfmot requires).

- ``cnn``: 4 × (Conv → BatchNorm → ReLU), strided; then 2 dilated temporal convolutions
  (rhythm over the whole window), global average pooling (``pool='avg_max'``: average
  and maximum side by side), dropout, dense softmax.
  He-normal initialisation, BatchNorm momentum 0.9 (0.99 lags on short runs). ~48 k
  parameters.
- ``cnn_gru``: the same convolutional front, then a GRU over time (unrolled, so it
  converts to plain int8 ops) instead of the average: firing rhythm has an order.
"""

from __future__ import annotations

import convert  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

ARCHS = ("cnn", "cnn_gru")


def _keras():
    import tf_keras as keras

    return keras


def _conv_front(x, keras, seed: int, width: float):
    init = keras.initializers.HeNormal(seed=seed)
    for i, (filters, kernel, stride) in enumerate(
            [(12, 5, 2), (24, 3, 2), (32, 3, 2), (48, 3, 1)]):
        x = keras.layers.Conv2D(max(4, int(filters * width)), kernel, strides=stride,
                                padding="same", use_bias=False, kernel_initializer=init,
                                name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return x


POOLS = ("avg", "avg_max")


def build(arch: str, frames: int, mels: int, classes: int, *, seed: int = 0,
          dropout: float = 0.3, width: float = 1.0, pool: str = "avg"):
    keras = _keras()
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r} (choose from {', '.join(ARCHS)})")
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r} (choose from {', '.join(POOLS)})")
    inp = keras.Input((frames, mels, 1), name="features")
    x = _conv_front(inp, keras, seed, width)
    if arch == "cnn":
        # Temporal head: dilated (5 × 1) convolutions along time over the 25 steps
        # (80 ms each) reach across the whole 2 s window, so firing rate, regularity and
        # bursts are seen before the average — what separates fibrillations from
        # fasciculations, PSWs from myotonic runs, myokymic bursts from voluntary units.
        # Conv2D, not Conv1D: tfmot quantises Conv2D (and it maps to int8 CONV_2D).
        init = keras.initializers.HeNormal(seed=seed)
        for i, dilation in enumerate((2, 4)):
            x = keras.layers.Conv2D(max(4, int(48 * width)), (5, 1), padding="same",
                                    dilation_rate=(dilation, 1),
                                    use_bias=False, kernel_initializer=init,
                                    name=f"tconv{i}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"tbn{i}")(x)
            x = keras.layers.ReLU(name=f"trelu{i}")(x)
        avg = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        if pool == "avg":
            x = avg
        else:
            # The maximum keeps a sparse discharge (a few PSWs between a voluntary unit's
            # firings) that the average over 25 steps dilutes; the average keeps density.
            x = keras.layers.Concatenate(name="avg_max")(
                [avg, keras.layers.GlobalMaxPooling2D(name="gmp")(x)])
    else:
        t, f, c = x.shape[1], x.shape[2], x.shape[3]
        x = keras.layers.Reshape((t, f * c), name="to_sequence")(x)
        x = keras.layers.GRU(32, unroll=True, name="gru",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    out = keras.layers.Dense(classes, activation="softmax", name="scores",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(x)
    return keras.Model(inp, out, name=f"nemg_{arch}")


def load_checkpoint(path):
    keras = _keras()
    return keras.models.load_model(str(path), compile=False)
