"""utils.metrics and utils.baselines on numbers worked out by hand."""

import numpy as np
import pytest

from utils.baselines import Persistence, WindowLinearRegression
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


def test_persistence_repeats_the_last_value_or_a_constant():
    inputs = np.arange(12.0).reshape(2, 3, 2)
    np.testing.assert_array_equal(
        Persistence(2).fit(inputs, None).predict(inputs), [[4, 4], [10, 10]]
    )
    np.testing.assert_array_equal(Persistence(1, constant=0.5).predict(inputs), [[0.5], [0.5]])


def test_linear_regression_is_least_squares_on_flattened_windows():
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(50, 4, 2))
    targets = inputs[:, -1, :1] * 2 - inputs[:, 0, 1:] + 0.25
    model = WindowLinearRegression().fit(inputs, targets)
    np.testing.assert_allclose(model.predict(inputs), targets, atol=1e-10)
    design = np.column_stack([inputs.reshape(50, -1), np.ones(50)])
    coefficients = np.linalg.lstsq(design, targets, rcond=None)[0]
    np.testing.assert_allclose(model.predict(inputs[:3]), design[:3] @ coefficients, atol=1e-10)


def test_rounding_noise_around_the_last_close_is_no_call():
    """Persistence through a scaler and back lands ~1e-12 off the close: that is "no change"."""
    last_close = np.array([100.0, 200.0, 300.0, 400.0])
    actual = np.array([101.0, 199.0, 301.0, 399.0])
    noisy_persistence = last_close * (1 + np.array([1e-12, -1e-12, 1e-12, -1e-12]))
    assert directional_accuracy(actual, noisy_persistence, last_close) == 0.0
    assert move_direction(noisy_persistence, last_close).tolist() == [0.0, 0.0, 0.0, 0.0]
    assert move_direction(actual, last_close).tolist() == [1.0, -1.0, 1.0, -1.0]
