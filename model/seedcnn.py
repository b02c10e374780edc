"""The seed CNN: the original project's genre classifier, kept small and made sturdier.

Original: Conv2D(32, 3x3) -> MaxPool -> Conv2D(64, 3x3) -> MaxPool -> Flatten -> Dense(128) -> Dropout(0.3)
-> softmax. Changes, each because it plainly helps on small data and costs nothing at inference:

- a BatchNormalization on the input (a learned per-band standardisation of the log-mel values) and after
  each convolution (faster, steadier training from scratch);
- a third convolution block (128 filters): two 3x3 blocks see only ~0.2 s of context, too little for rhythm;
- global average pooling over time and frequency instead of Flatten: 64x fewer Dense weights, less
  overfitting, and the embedding no longer depends on where in the window an event falls.

The 128-wide Dense layer named ``embedding`` is the track embedding (its ReLU output, which the classifier
reads).
"""

from __future__ import annotations

from model.frontend import FrontEnd

NAME = "seedcnn"


def build(frontend: FrontEnd, n_classes: int, *, embedding_dim: int = 128, dropout: float = 0.3, seed: int = 0):
    """The uncompiled Keras model: input ``(n_mels, frames, 1)``, output softmax over ``n_classes``."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(*frontend.input_shape, 1), name="logmel")
    x = layers.BatchNormalization(name="input_norm")(inp)
    for i, filters in enumerate((32, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(embedding_dim, activation="relu", name="embedding")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inp, out, name=NAME)
