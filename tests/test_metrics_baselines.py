"""utils.metrics and the baseline forecasters (utils.forecasters.baselines) on numbers worked
out by hand."""

import numpy as np
import pandas as pd
import pytest

from utils.features import Windows, make_windows
from utils.forecasters import TrainingPart, forecaster_class
from utils.metrics import (
    directional_accuracy,
    mae,
    mape,
    mase,
    move_direction,
    naive_scale,
    rel_mae,
    rmse,
    scores,
)

ACTUAL = np.array([[110.0], [90.0], [100.0]])
PREDICTED = np.array([[105.0], [95.0], [100.0]])
LAST = np.array([100.0, 100.0, 100.0])


def test_error_scores():
    assert mae(ACTUAL, PREDICTED) == pytest.approx(10 / 3)
    assert rmse(ACTUAL, PREDICTED) == pytest.approx(np.sqrt(50 / 3))
    assert mape(ACTUAL, PREDICTED) == pytest.approx((5 / 110 + 5 / 90) / 3 * 100)


def test_directional_accuracy_skips_bars_that_did_not_move():
    # Up called up, down called down; the flat bar is left out.
    assert directional_accuracy(ACTUAL, PREDICTED, LAST) == 1.0
    assert directional_accuracy(ACTUAL, np.array([[99.0], [101.0], [0.0]]), LAST) == 0.0
    assert directional_accuracy(np.array([[100.0]]), np.array([[101.0]]), LAST[:1]) is None


def test_rel_mae_is_relative_to_persistence_on_the_same_bars():
    # Persistence errs 10, 10, 0 (MAE 20/3); the forecast 5, 5, 0 (MAE 10/3).
    assert rel_mae(ACTUAL, PREDICTED, LAST) == pytest.approx(0.5)
    assert rel_mae(ACTUAL, np.repeat(LAST[:, None], 1, axis=1), LAST) == pytest.approx(1.0)


def test_mase_is_scaled_by_the_training_parts_naive_error():
    # Training closes 100, 102, 99, 103: naive one-step errors 2, 3, 4, scale 3.
    train_closes = np.array([100.0, 102.0, 99.0, 103.0])
    scale = naive_scale(train_closes[1:], train_closes[:-1])
    assert scale == pytest.approx(3.0)
    # Independently: the textbook formula on the same closes.
    independent = np.abs(np.diff(train_closes)).sum() / (len(train_closes) - 1)
    assert scale == pytest.approx(independent)
    # Test forecasts with MAE 10/3 scaled by 3, not by the test bars' own naive MAE.
    assert mase(ACTUAL, PREDICTED, scale=scale) == pytest.approx(10 / 9)
    assert mase(ACTUAL, PREDICTED, scale=None) is None
    assert naive_scale(np.array([5.0, 5.0]), np.array([5.0, 5.0])) is None
    assert naive_scale(np.array([]), np.array([])) is None


def test_scores_bundle():
    result = scores(ACTUAL, PREDICTED, LAST, scale=3.0)
    assert result["n"] == 3 and set(result) == {
        "mae",
        "rmse",
        "mape",
        "directional_accuracy",
        "rel_mae",
        "mase",
        "n",
    }
    assert result["rel_mae"] == pytest.approx(0.5) and result["mase"] == pytest.approx(10 / 9)
    assert scores(ACTUAL, PREDICTED, LAST)["mase"] is None


def baseline(kind: str, windows: Windows, rows: np.ndarray, **options):
    """A baseline forecaster fitted on `windows`, its scaler (if any) on `rows`."""
    times = pd.date_range("2020-01-01", periods=len(windows), freq="h", tz="UTC")
    part = TrainingPart(windows=windows, times=times, rows=rows)
    return forecaster_class(kind).from_options(**options).fit(part)


def test_persistence_repeats_the_last_close_whatever_the_target():
    # Bars 0-2 and 10-12 of two columns: the only two contiguous windows of 3 bars are
    # [[0, 1], [2, 3], [4, 5]] and [[6, 7], [8, 9], [10, 11]]; their last closes are 4 and 10.
    values = np.arange(12.0).reshape(6, 2)
    windows = make_windows(values, values[:, 0], np.array([0, 1, 2, 10, 11, 12]), 3, 0)
    np.testing.assert_array_equal(windows.inputs, np.arange(12.0).reshape(2, 3, 2))
    predicted = baseline("persistence", windows, values, output_size=2).predict(windows)
    np.testing.assert_array_equal(predicted, [[4, 4], [10, 10]])
    # With a log-return target persistence is a return of 0: still the last close, in prices.
    returns = baseline("persistence", windows, values, target="log_return").predict(windows)
    np.testing.assert_array_equal(returns, [[4], [10]])


def test_linear_regression_is_least_squares_on_flattened_windows():
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(50, 4, 2))
    targets = inputs[:, -1, :1] * 2 - inputs[:, 0, 1:] + 0.25
    windows = Windows(inputs, targets, np.arange(50) + 4, inputs[:, -1, 0])
    rows = inputs.reshape(-1, 2)  # what the scaler is fitted on
    model = baseline("linear", windows, rows)
    np.testing.assert_allclose(model.predict(windows), targets, atol=1e-10)
    design = np.column_stack([inputs.reshape(50, -1), np.ones(50)])
    coefficients = np.linalg.lstsq(design, targets, rcond=None)[0]
    np.testing.assert_allclose(
        model.predict(windows.select(np.arange(50) < 3)), design[:3] @ coefficients, atol=1e-10
    )
    # Not an exact fit: scaling the columns (an affine map) leaves least squares' forecasts
    # in prices unchanged, whichever column scaler the forecaster uses.
    noisy = targets + rng.normal(0, 0.1, size=targets.shape)
    windows = Windows(inputs, noisy, windows.first_target, windows.last_close)
    coefficients = np.linalg.lstsq(design, noisy, rcond=None)[0]
    for scaler in ("minmax", "standard", "robust"):
        model = baseline("linear", windows, rows, scaler=scaler)
        np.testing.assert_allclose(model.predict(windows), design @ coefficients, atol=1e-10)


def test_rounding_noise_around_the_last_close_is_no_call():
    """Persistence through a scaler and back lands ~1e-12 off the close: that is "no change"."""
    last_close = np.array([100.0, 200.0, 300.0, 400.0])
    actual = np.array([101.0, 199.0, 301.0, 399.0])
    noisy_persistence = last_close * (1 + np.array([1e-12, -1e-12, 1e-12, -1e-12]))
    assert directional_accuracy(actual, noisy_persistence, last_close) == 0.0
    assert move_direction(noisy_persistence, last_close).tolist() == [0.0, 0.0, 0.0, 0.0]
    assert move_direction(actual, last_close).tolist() == [1.0, -1.0, 1.0, -1.0]
