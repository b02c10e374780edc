"""The seed CNN: the original project's genre classifier, kept small and made sturdier.

Original: Conv2D(32, 3x3) -> MaxPool -> Conv2D(64, 3x3) -> MaxPool -> Flatten -> Dense(128) -> Dropout(0.3)
-> softmax. Changes, each because it plainly helps on small data and costs nothing at inference:

- a BatchNormalization on the input (a learned per-band standardisation of the log-mel values) and after
  each convolution (faster, steadier training from scratch);
- a third convolution block (128 filters): two 3x3 blocks see only ~0.2 s of context, too little for rhythm;
- global average pooling over time and frequency instead of Flatten: 64x fewer Dense weights, less
  overfitting, and the embedding no longer depends on where in the window an event falls.

The 128-wide Dense layer, batch-normalised (layer ``embedding``, before its ReLU), is the window
embedding. Taken there rather than after the ReLU, the vectors are centred and spread over the whole
sphere instead of crowding one corner of the positive orthant, so cosine scores use their full range.

Batch-norm momentum is 0.9 instead of Keras's 0.99: on a few hundred windows the moving statistics must
settle within a few epochs, or validation (which uses them) sees a different network from training.
"""

from __future__ import annotations

from ..model._quiet import import_keras
from ..model.frontend import FrontEnd

NAME = "seedcnn"


def build(frontend: FrontEnd, n_classes: int, *, embedding_dim: int = 128, dropout: float = 0.3, seed: int = 0):
    """The uncompiled Keras model: input ``(n_mels, frames, 1)``, output softmax over ``n_classes``."""
    keras = import_keras()
    layers = keras.layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(*frontend.input_shape, 1), name="logmel")
    x = layers.BatchNormalization(momentum=0.9, name="input_norm")(inp)
    for i, filters in enumerate((32, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(embedding_dim, use_bias=False, name="dense")(x)
    x = layers.BatchNormalization(momentum=0.9, name="embedding")(x)
    x = layers.ReLU(name="relu_embedding")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inp, out, name=NAME)
