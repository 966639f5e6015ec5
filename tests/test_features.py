"""utils.features: windows against a plain loop, gaps, log returns, scalers against sklearn."""

import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn import preprocessing

from utils.features import (
    bar_positions,
    feature_frame,
    make_scaler,
    make_windows,
    model_values,
    scaler_from_json,
    scaler_to_json,
    target_prices,
)


def hourly(values, start="2020-01-01", drop=()):
    index = pd.date_range(start, periods=len(values), freq="h", tz="UTC")
    frame = pd.DataFrame({"close": values, "volume": np.arange(len(values)) + 1.0}, index=index)
    return frame.drop(index[list(drop)])


def loop_windows(values, window, output_size):
    """The obvious loop the vectorised code must agree with (no gaps)."""
    inputs, targets = [], []
    for i in range(len(values) - window - output_size + 1):
        inputs.append(values[i : i + window])
        targets.append(values[i + window : i + window + output_size, 0])
    return np.array(inputs), np.array(targets)


@pytest.mark.parametrize(("window", "output_size"), [(1, 1), (5, 1), (4, 3)])
def test_windows_match_a_plain_loop(window, output_size):
    values = np.random.default_rng(1).normal(size=(30, 2))
    positions = np.arange(30)
    result = make_windows(values, values[:, 0], positions, window, output_size)
    inputs, targets = loop_windows(values, window, output_size)
    np.testing.assert_array_equal(result.inputs, inputs)
    np.testing.assert_array_equal(result.targets, targets)
    np.testing.assert_array_equal(result.first_target, np.arange(len(inputs)) + window)
    np.testing.assert_array_equal(result.last_close, values[result.first_target - 1, 0])


def test_windows_never_span_a_missing_bar():
    frame = hourly(np.arange(1.0, 13.0), drop=[5])  # 11 bars, hour 5 missing
    positions = bar_positions(frame.index, 3600)
    values = frame[["close"]].to_numpy()
    result = make_windows(values, values[:, 0], positions, 3, 1)
    # Spans of 4 consecutive hours in 0..11 without hour 5: starts 0, 1, 6, 7, 8.
    np.testing.assert_array_equal(result.inputs[:, 0, 0], [1.0, 2.0, 7.0, 8.0, 9.0])
    np.testing.assert_array_equal(result.targets[:, 0], [4.0, 5.0, 10.0, 11.0, 12.0])


def test_input_only_windows_reach_the_last_bar():
    values = np.arange(6.0)[:, None]
    result = make_windows(values, values[:, 0], np.arange(6), 4, 0)
    assert result.targets.shape == (3, 0)
    np.testing.assert_array_equal(result.first_target, [4, 5, 6])


def test_log_returns_and_gaps():
    frame = feature_frame({"X": hourly([100.0, 110.0, 99.0, 120.0], drop=[2])}, ["X"], "close")
    positions = bar_positions(frame.index, 3600)
    values = model_values(frame, "log_return", positions)
    assert np.isnan(values[0, 0]) and np.isnan(values[2, 0])  # first bar, bar after the gap
    assert values[1, 0] == pytest.approx(np.log(110 / 100))


def test_target_prices_accumulate_log_returns():
    prices = target_prices(np.log([[1.1, 0.5]]), np.array([100.0]), "log_return")
    np.testing.assert_allclose(prices, [[110.0, 55.0]])


def test_other_symbols_align_on_shared_bars():
    a = hourly([1.0, 2.0, 3.0, 4.0])
    b = hourly([10.0, 20.0, 30.0, 40.0], drop=[1])
    frame = feature_frame({"A": a, "B": b}, ["A", "B"], "close_volume")
    assert list(frame.columns) == ["A_close", "A_volume", "B_close", "B_volume"]
    assert list(frame["A_close"]) == [1.0, 3.0, 4.0]
    assert list(frame["B_close"]) == [10.0, 30.0, 40.0]


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("standard", preprocessing.StandardScaler()),
        ("minmax", preprocessing.MinMaxScaler()),
        ("robust", preprocessing.RobustScaler()),
    ],
)
def test_column_scalers_match_scikit_learn_and_survive_json(name, reference):
    rng = np.random.default_rng(3)
    rows = rng.lognormal(size=(200, 2)) * [9000, 40]
    windows = rng.lognormal(size=(7, 5, 2)) * [9000, 40]
    scaler = scaler_from_json(scaler_to_json(make_scaler(name).fit(rows)))
    expected = reference.fit(rows).transform(windows.reshape(-1, 2)).reshape(windows.shape)
    np.testing.assert_allclose(scaler.transform(windows), expected, rtol=1e-12)
    targets = rng.lognormal(size=(7, 3)) * 9000
    scaled = scaler.transform_target(targets, windows)
    np.testing.assert_allclose(scaler.inverse_target(scaled, windows), targets, rtol=1e-12)


def test_window_scaler_is_the_classic_normalisation():
    # The second window's volume starts at 0 (no trades): divided by 1 instead.
    windows = np.array([[[100.0, 5.0], [110.0, 0.0]], [[50.0, 0.0], [25.0, 2.0]]])
    scaler = scaler_from_json(scaler_to_json(make_scaler("window").fit(windows[0])))
    np.testing.assert_allclose(
        scaler.transform(windows), [[[0.0, 0.0], [0.1, -1.0]], [[0.0, -1.0], [-0.5, 1.0]]]
    )
    targets = np.array([[121.0], [75.0]])
    np.testing.assert_allclose(scaler.transform_target(targets, windows), [[0.21], [0.5]])
    np.testing.assert_allclose(scaler.inverse_target(np.array([[0.21], [0.5]]), windows), targets)


def test_scaler_json_holds_no_pickle():
    text = scaler_to_json(make_scaler("standard").fit(np.array([[1.0], [3.0]])), target="price")
    assert json.loads(text) == {
        "name": "standard",
        "center_": [2.0],
        "scale_": [1.0],
        "context": {"target": "price"},
    }


def test_unknown_scaler_is_refused():
    with pytest.raises(ValueError, match="scaler 'zscore'"):
        make_scaler("zscore")


def test_windows_of_45000_hourly_bars_build_in_under_a_second():
    bars = hourly(np.random.default_rng(0).lognormal(size=45_000) + 1000)
    started = time.perf_counter()
    frame = feature_frame({"X": bars}, ["X"], "close_volume")
    positions = bar_positions(frame.index, 3600)
    values = model_values(frame, "log_return", positions)
    windows = make_windows(values, frame["X_close"].to_numpy(), positions, 48, 3)
    elapsed = time.perf_counter() - started
    assert len(windows) == 45_000 - 1 - 48 - 3 + 1  # the first bar has no return
    assert elapsed < 1.0
