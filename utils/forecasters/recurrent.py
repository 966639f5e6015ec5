"""Keras recurrent forecasters: one class, parameterised by its cell (LSTM here, GRU in gru.py).

The network is utils.lstm's (cell -> Dropout -> Dense); files are .keras archives loaded
with safe_mode=True, which refuses a Lambda layer (it would run code from the file).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from utils import lstm
from utils.features import Windows
from utils.forecasters.base import WindowForecaster, register

EpochCallback = Callable[[int, int, dict], None]


class RecurrentForecaster(WindowForecaster):
    """A Keras recurrent network of scaled windows; `cell` is the Keras layer's name."""

    cell: ClassVar[str] = "LSTM"
    production = True
    trains_network = True
    multi_step = True
    model_suffix = ".keras"
    file_format = "Keras model (.keras, loaded with safe_mode=True)"

    def __init__(
        self,
        *,
        output_size: int = 1,
        target: str = "price",
        seed: int = 0,
        scaler: str = "minmax",
        units: int = 50,
        dropout: float = 0.2,
        activation: str = "tanh",
        optimizer: str = "adam",
        loss: str = "mse",
        epochs: int = 10,
        batch_size: int = 64,
        shuffle_buffer: int = 1000,
        on_epoch: EpochCallback | None = None,
    ):
        super().__init__(output_size=output_size, target=target, seed=seed, scaler=scaler)
        self.units = units
        self.dropout = dropout
        self.activation = activation
        self.optimizer = optimizer
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle_buffer = shuffle_buffer
        self.on_epoch = on_epoch

    def _fit_scaled(self, inputs: np.ndarray, targets: np.ndarray) -> dict:
        lstm.seed_everything(self.seed)
        self.model_ = lstm.build_model(
            inputs.shape[1],
            inputs.shape[2],
            self.output_size,
            self.units,
            self.dropout,
            self.activation,
            self.optimizer,
            self.loss,
            cell=self.cell,
        )
        return self._train(inputs, targets)

    def _train(self, inputs: np.ndarray, targets: np.ndarray) -> dict:
        return lstm.fit_model(
            self.model_,
            inputs,
            targets,
            epochs=self.epochs,
            batch_size=self.batch_size,
            shuffle_buffer=self.shuffle_buffer,
            seed=self.seed,
            on_epoch=self.on_epoch,
        )

    def _predict_scaled(self, inputs: np.ndarray) -> np.ndarray:
        return lstm.predict(self.model_, inputs)

    def _save_model(self, path: Path) -> None:
        self.model_.save(path)

    def _load_state(self, model_path: Path, scaler_path: Path | None) -> None:
        # Keras answers junk bytes with "File not found": say what is wrong instead.
        if not zipfile.is_zipfile(model_path):
            raise ValueError("not a .keras zip archive")
        self.model_ = lstm.load_model(model_path)
        self.output_size = int(self.model_.output_shape[-1])

    def can_update(self) -> bool:
        return True

    def update(self, windows: Windows) -> dict:
        """Fine-tune on new windows with the scaler kept: the weights were learned on it."""
        lstm.seed_everything(self.seed)
        return self._train(
            self.scaler_.transform(windows.inputs),
            self.scaler_.transform_target(windows.targets, windows.inputs),
        )

    def library_versions(self) -> dict[str, str]:
        return lstm.library_versions()


@register
class LSTMForecaster(RecurrentForecaster):
    kind = "lstm"
    label = "LSTM"
    description = "Keras LSTM(units) -> Dropout -> Dense on scaled windows"
    cell = "LSTM"
