"""Building, fitting, predicting with and loading the Keras recurrent network (LSTM or GRU).

The forecaster classes (utils.forecasters.recurrent) use these and own saving.

Framework-free (no Django). TensorFlow is imported inside the functions, not at module level,
because importing it takes many seconds: the web app, the other commands and most tests never
need it, and the name lists below let commands validate flags without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam")
LOSSES = ("mse", "mae", "huber", "log_cosh", "mape", "msle")
# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) is noise on every run.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear", "elu", "selu", "softsign", "gelu", "swish")


def seed_everything(seed: int) -> None:
    """Same seed, same data, same machine: same weights and predictions.

    Seeds Python, numpy and TensorFlow, and makes TensorFlow's ops deterministic (a
    process-wide switch that stays on; it costs little on CPU).
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(
    window: int,
    n_features: int,
    output_size: int,
    units: int,
    dropout: float,
    activation: str,
    optimizer: str,
    loss: str,
    *,
    cell: str = "LSTM",
):
    """LSTM(units) -> Dropout -> Dense(output_size): the original tool's architecture.

    `cell` names the Keras recurrent layer ("LSTM" or "GRU"): the GRU session is the same
    network with the other cell, so the two differ in nothing else.
    """
    import keras

    if cell not in ("LSTM", "GRU"):
        raise ValueError(f"cell must be LSTM or GRU, not {cell!r}")
    model = keras.Sequential(
        [
            keras.Input(shape=(window, n_features)),
            getattr(keras.layers, cell)(units, activation=activation),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(output_size),
        ]
    )
    model.compile(optimizer=optimizer, loss=loss)
    return model


def make_dataset(
    inputs: np.ndarray, targets: np.ndarray, shuffle_buffer: int, batch_size: int, seed: int
):
    """A tf.data pipeline: shuffled within a buffer of `shuffle_buffer` samples, then batched.

    The buffer bounds how far apart two samples can swap (the original -F flag); a buffer at
    least the number of samples is a full shuffle. The shuffle order is seeded.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(
        (inputs.astype("float32"), targets.astype("float32"))
    )
    if shuffle_buffer > 1:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fit_model(
    model,
    inputs: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    batch_size: int,
    shuffle_buffer: int,
    seed: int,
    on_epoch: Callable[[int, int, dict], None] | None = None,
) -> dict[str, list[float]]:
    """Fit and return the loss history (metric name -> one value per epoch).

    `on_epoch(epoch, epochs, logs)` is called after each epoch, for progress reports; Keras'
    own progress bar stays off because it writes straight to the terminal.
    """
    import keras

    callbacks = []
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, epochs, dict(logs or {}))
            )
        )
    dataset = make_dataset(inputs, targets, shuffle_buffer, batch_size, seed)
    history = model.fit(dataset, epochs=epochs, verbose=0, callbacks=callbacks, shuffle=False)
    return {name: [float(v) for v in values] for name, values in history.history.items()}


def predict(model, inputs: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Predictions as float64 (N, output_size); large batches, since nothing is learned."""
    if len(inputs) == 0:
        return np.zeros((0, model.output_shape[-1]))
    return np.asarray(model.predict(inputs.astype("float32"), batch_size=batch_size, verbose=0))


def load_model(path: Path):
    """Load a .keras file with safe_mode on: no arbitrary code from lambdas in the file."""
    import keras

    return keras.models.load_model(Path(path), safe_mode=True, compile=True)


def library_versions() -> dict[str, str]:
    """Versions of everything that can change a fitted model's numbers."""
    import platform

    import keras
    import pandas
    import sklearn
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
