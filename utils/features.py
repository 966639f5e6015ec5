"""Bars to model inputs: feature columns, sliding windows, targets, and JSON-saved scalers.

Framework-free (no Django, no TensorFlow) so notebooks, tests and the benchmark use exactly
the arrays the training service uses. Windows are built with numpy's sliding_window_view and
masks, never a Python loop, because 45,000 hourly bars must window in well under a second.

A window never spans a missing bar: the bar store never invents prices, so a window that
would silently join the two sides of a gap is dropped instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

FEATURE_SETS = ("close", "close_volume")
TARGETS = ("price", "log_return")
SCALERS = ("standard", "minmax", "robust", "window")


def column_names(symbols: list[str], features: str) -> list[str]:
    """'<SYMBOL>_close' (and '<SYMBOL>_volume') per symbol; the target symbol comes first."""
    if features not in FEATURE_SETS:
        raise ValueError(f"features {features!r} is not one of {', '.join(FEATURE_SETS)}")
    kinds = ["close"] if features == "close" else ["close", "volume"]
    return [f"{symbol}_{kind}" for symbol in symbols for kind in kinds]


def feature_frame(bars: dict[str, pd.DataFrame], symbols: list[str], features: str) -> pd.DataFrame:
    """The symbols' close (and volume) columns, aligned on the bars all of them have.

    An inner join: a bar missing from any series is missing from the inputs, so no input is
    ever forward-filled. `symbols[0]` is the predicted one, its close the first column.
    """
    parts = []
    for symbol in symbols:
        frame = bars[symbol]
        part = frame[["close", "volume"]] if features == "close_volume" else frame[["close"]]
        parts.append(part.add_prefix(f"{symbol}_"))
    joined = pd.concat(parts, axis=1, join="inner").sort_index()
    return joined[column_names(symbols, features)].astype("float64")


def bar_positions(index: pd.DatetimeIndex, step_seconds: int) -> np.ndarray:
    """Each bar's number of steps since the first bar: consecutive bars differ by exactly 1."""
    if len(index) == 0:
        return np.zeros(0, dtype="int64")
    seconds = (index - index[0]).total_seconds().to_numpy()
    return np.round(seconds / step_seconds).astype("int64")


def model_values(frame: pd.DataFrame, target: str, positions: np.ndarray) -> np.ndarray:
    """The (bars, features) array the model sees: prices, or log returns of the closes.

    For the log-return target each close column becomes log(close_t / close_t-1); the first
    bar and the bar after a gap have no return (NaN), so windows containing them are dropped.
    Volume columns stay as they are.
    """
    if target not in TARGETS:
        raise ValueError(f"target {target!r} is not one of {', '.join(TARGETS)}")
    values = frame.to_numpy(dtype="float64", copy=True)
    if target == "price":
        return values
    follows = np.concatenate([[False], np.diff(positions) == 1])
    for column, name in enumerate(frame.columns):
        if name.endswith("_close"):
            logs = np.log(values[:, column])
            returns = np.concatenate([[np.nan], np.diff(logs)])
            values[:, column] = np.where(follows, returns, np.nan)
    return values


@dataclass(frozen=True)
class Windows:
    """Windows of W input bars and the O bars that follow each (rows index the frame).

    inputs: (N, W, F) raw values; targets: (N, O) raw values of column 0 (empty when O=0);
    first_target: (N,) frame row of the first bar after the window (may be past the end
    when O=0); last_close: (N,) the predicted symbol's close on the window's last bar.
    """

    inputs: np.ndarray
    targets: np.ndarray
    first_target: np.ndarray
    last_close: np.ndarray

    def __len__(self) -> int:
        return len(self.first_target)

    def select(self, mask: np.ndarray) -> Windows:
        return Windows(
            self.inputs[mask], self.targets[mask], self.first_target[mask], self.last_close[mask]
        )


def make_windows(
    values: np.ndarray,
    closes: np.ndarray,
    positions: np.ndarray,
    window: int,
    output_size: int,
) -> Windows:
    """Every window of `window` bars followed by `output_size` bars, contiguous and complete.

    `closes` is the predicted symbol's close per bar (for last_close). With output_size 0
    the windows are inputs only, up to and including the last bar (for forecasting).
    """
    if window < 1 or output_size < 0:
        raise ValueError("window must be at least 1 and output size at least 0")
    total = window + output_size
    features = values.shape[1]
    if len(values) < total:
        empty = np.zeros((0, window, features))
        return Windows(empty, np.zeros((0, output_size)), np.zeros(0, "int64"), np.zeros(0))
    spans = sliding_window_view(values, total, axis=0)  # (N, F, total), a view
    starts = np.arange(len(spans))
    contiguous = positions[starts + total - 1] - positions[starts] == total - 1
    complete = np.isfinite(spans).all(axis=(1, 2))
    keep = starts[contiguous & complete]
    chosen = spans[keep].transpose(0, 2, 1)  # (n, total, F), a copy
    return Windows(
        inputs=np.ascontiguousarray(chosen[:, :window, :]),
        targets=np.ascontiguousarray(chosen[:, window:, 0]),
        first_target=keep + window,
        last_close=closes[keep + window - 1],
    )


def target_prices(model_targets: np.ndarray, last_close: np.ndarray, target: str) -> np.ndarray:
    """Model-space targets (N, O) as prices: log returns accumulate from the last close."""
    if target == "price":
        return model_targets
    return last_close[:, None] * np.exp(np.cumsum(model_targets, axis=1))


# Scalers ------------------------------------------------------------------------------------
#
# scikit-learn conventions: configuration in __init__, learned state in attributes ending
# with "_", fit returns self. They save as JSON (never pickle: loading a pickle runs code).
# Column scalers scale each feature column; column 0 (the predicted close or return) also
# scales the targets. The window scaler learns nothing: it divides each window by its first
# value, so it needs the raw windows to undo the scaling of a prediction.


class ColumnScaler:
    """Base of the per-column scalers: x_scaled = (x - center_) / scale_."""

    name = ""
    center_: np.ndarray
    scale_: np.ndarray

    def fit(self, rows: np.ndarray) -> Self:
        """Learn the statistics from (bars, features) rows: the training part only."""
        rows = rows[np.isfinite(rows).all(axis=1)]
        if len(rows) == 0:
            raise ValueError("no complete rows to fit the scaler on")
        center, scale = self._statistics(rows)
        self.center_ = center
        self.scale_ = np.where(scale > 0, scale, 1.0)  # a constant column is left unscaled
        return self

    def _statistics(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def transform(self, windows: np.ndarray) -> np.ndarray:
        return (windows - self.center_) / self.scale_

    def transform_target(self, targets: np.ndarray, windows: np.ndarray) -> np.ndarray:
        return (targets - self.center_[0]) / self.scale_[0]

    def inverse_target(self, scaled: np.ndarray, windows: np.ndarray) -> np.ndarray:
        return scaled * self.scale_[0] + self.center_[0]

    def to_dict(self) -> dict:
        return {"name": self.name, "center_": self.center_.tolist(), "scale_": self.scale_.tolist()}

    def _load(self, state: dict) -> None:
        """Refuse what no fit can produce: a tampered scale of 0 would make every prediction
        the same price, and a NaN would make every prediction NaN."""
        center = np.asarray(state["center_"], dtype="float64")
        scale = np.asarray(state["scale_"], dtype="float64")
        if center.ndim != 1 or center.shape != scale.shape or len(center) == 0:
            raise ValueError("center_ and scale_ must be lists of the same, non-zero length")
        if not (np.isfinite(center).all() and np.isfinite(scale).all()):
            raise ValueError("center_ or scale_ holds a value that is not finite")
        if not (scale > 0).all():
            raise ValueError("scale_ holds a value that is not positive")
        self.center_ = center
        self.scale_ = scale


class StandardScaler(ColumnScaler):
    """Zero mean, unit standard deviation (population, as scikit-learn's)."""

    name = "standard"

    def _statistics(self, rows):
        return rows.mean(axis=0), rows.std(axis=0)


class MinMaxScaler(ColumnScaler):
    """Training minimum to 0 and maximum to 1; later prices may leave that range."""

    name = "minmax"

    def _statistics(self, rows):
        low = rows.min(axis=0)
        return low, rows.max(axis=0) - low


class RobustScaler(ColumnScaler):
    """Median to 0, interquartile range to 1: robust to the odd spike."""

    name = "robust"

    def _statistics(self, rows):
        q1, median, q3 = np.percentile(rows, [25, 50, 75], axis=0)
        return median, q3 - q1


class WindowScaler:
    """Each window divided by its first bar, minus 1 (the classic window normalisation).

    Stateless, so it transfers across price levels; it needs price inputs (a return can be 0).
    A column whose first value is 0 (a bar with no volume) is divided by 1 instead.
    """

    name = "window"

    def fit(self, rows: np.ndarray) -> Self:
        return self

    @staticmethod
    def _base(windows: np.ndarray) -> np.ndarray:
        first = windows[:, :1, :]
        return np.where(first != 0, first, 1.0)

    def transform(self, windows: np.ndarray) -> np.ndarray:
        return windows / self._base(windows) - 1.0

    def transform_target(self, targets: np.ndarray, windows: np.ndarray) -> np.ndarray:
        return targets / self._base(windows)[:, 0, :1] - 1.0

    def inverse_target(self, scaled: np.ndarray, windows: np.ndarray) -> np.ndarray:
        return (scaled + 1.0) * self._base(windows)[:, 0, :1]

    def to_dict(self) -> dict:
        return {"name": self.name}

    def _load(self, state: dict) -> None:
        pass


Scaler = StandardScaler | MinMaxScaler | RobustScaler | WindowScaler
_SCALER_CLASSES = {
    cls.name: cls for cls in (StandardScaler, MinMaxScaler, RobustScaler, WindowScaler)
}


def make_scaler(name: str) -> Scaler:
    if name not in _SCALER_CLASSES:
        raise ValueError(f"scaler {name!r} is not one of {', '.join(SCALERS)}")
    return _SCALER_CLASSES[name]()


def scaler_to_json(scaler: Scaler, **context) -> str:
    """The scaler's state, plus any context (columns, target) worth keeping beside it."""
    return json.dumps({**scaler.to_dict(), "context": context}, indent=2)


def scaler_from_json(text: str) -> Scaler:
    state = json.loads(text)
    if not isinstance(state, dict) or state.get("name") not in _SCALER_CLASSES:
        raise ValueError("not a scaler's JSON (no known scaler name)")
    scaler = make_scaler(state["name"])
    scaler._load(state)
    return scaler
