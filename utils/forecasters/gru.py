"""The GRU: the LSTM's network and training with Keras' GRU cell instead."""

from __future__ import annotations

from utils.forecasters.base import register
from utils.forecasters.recurrent import RecurrentForecaster


@register
class GRUForecaster(RecurrentForecaster):
    kind = "gru"
    label = "GRU"
    description = "Keras GRU(units) -> Dropout -> Dense on scaled windows"
    cell = "GRU"
