"""The forecaster interface on a synthetic series, without Django: every kind fits, saves to
safe files, loads back to the same forecasts, and refuses files that are missing, corrupt or
tampered with, with one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.checks import present
from utils.features import make_windows
from utils.forecasters import MODEL_KINDS, REGISTRY, ArtifactError, TrainingPart, forecaster_class

TINY = {"units": 4, "epochs": 1, "batch_size": 32, "trees": 10}
WINDOW = 8


@pytest.fixture(scope="module")
def series():
    """A noisy sine of 200 hourly closes: windows of 8, the first 150 bars for training."""
    rng = np.random.default_rng(0)
    closes = 100 + 5 * np.sin(np.arange(200) / 6) + rng.normal(0, 0.5, 200)
    times = pd.date_range("2020-01-01", periods=200, freq="h", tz="UTC")
    windows = make_windows(closes[:, None], closes, np.arange(200), WINDOW, 1)
    train = windows.select(windows.first_target < 150)
    test = windows.select(windows.first_target >= 150)
    part = TrainingPart(
        windows=train, times=times[train.first_target], rows=closes[:150, None], columns=("c",)
    )
    return part, test, times[test.first_target]


def fitted(kind: str, part: TrainingPart, seed: int = 1):
    return forecaster_class(kind).from_options(**TINY, seed=seed).fit(part)


def saved(forecaster, folder: Path) -> tuple[Path, Path | None]:
    model = folder / f"model{forecaster.model_suffix}"
    scaler = folder / "scaler.json" if forecaster.uses_scaler else None
    forecaster.save(model, scaler)
    return model, scaler


def test_the_registry_lists_every_kind_once():
    assert set(MODEL_KINDS) == {"lstm", "gru", "lightgbm", "linear", "persistence", "prophet"}
    assert list(REGISTRY) == list(MODEL_KINDS)
    with pytest.raises(ValueError, match="unknown model 'forest': choose one of"):
        forecaster_class("forest")


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_fit_save_load_predict_the_same(series, tmp_path, kind):
    part, test, times = series
    forecaster = fitted(kind, part)
    predicted = forecaster.predict(test, times)
    assert predicted.shape == (len(test), 1) and np.isfinite(predicted).all()
    model, scaler = saved(forecaster, tmp_path)
    loaded = forecaster_class(kind).load(model, scaler, **TINY)
    np.testing.assert_allclose(loaded.predict(test, times), predicted, rtol=1e-9)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_persistence_is_the_last_close(series):
    part, test, times = series
    np.testing.assert_array_equal(
        fitted("persistence", part).predict(test, times)[:, 0], test.last_close
    )


@pytest.mark.parametrize("kind", ["lstm", "gru", "lightgbm"])
def test_same_seed_same_forecasts_other_seed_other_forecasts(series, kind):
    part, test, times = series
    first = fitted(kind, part, seed=3).predict(test, times)
    np.testing.assert_array_equal(fitted(kind, part, seed=3).predict(test, times), first)
    assert not np.array_equal(fitted(kind, part, seed=4).predict(test, times), first)


def assert_one_line_naming(caught, path: Path) -> None:
    message = str(caught.value)
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_missing_and_junk_model_files_are_refused(series, tmp_path, kind):
    model, scaler = saved(fitted(kind, series[0]), tmp_path)
    model.write_bytes(b"\x00junk\xff" * 50)
    with pytest.raises(ArtifactError, match="not a valid") as caught:
        forecaster_class(kind).load(model, scaler)
    assert_one_line_naming(caught, model)
    assert "File not found" not in str(caught.value)  # Keras' own words for junk bytes
    model.unlink()
    with pytest.raises(ArtifactError, match=r"file not found$") as caught:
        forecaster_class(kind).load(model, scaler)
    assert_one_line_naming(caught, model)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda state: state | {"scale_": [0.0]}, "not positive"),
        (lambda state: state | {"scale_": [float("nan")]}, "NaN"),
        (lambda state: state | {"center_": [float("inf")]}, "Infinity"),
        (lambda state: state | {"name": "pickle"}, "no known scaler"),
        (lambda state: state | {"scale_": [1.0, 2.0]}, "same, non-zero length"),
    ],
)
def test_tampered_scalers_are_refused(series, tmp_path, tamper, reason):
    model, maybe_scaler = saved(fitted("linear", series[0]), tmp_path)
    scaler = present(maybe_scaler)
    scaler.write_text(json.dumps(tamper(json.loads(scaler.read_text()))))
    with pytest.raises(ArtifactError, match=reason) as caught:
        forecaster_class("linear").load(model, scaler)
    assert_one_line_naming(caught, scaler)
    scaler.write_bytes(b"\x89PNG junk")
    with pytest.raises(ArtifactError) as caught:
        forecaster_class("linear").load(model, scaler)
    assert_one_line_naming(caught, scaler)


def test_a_keras_file_with_a_lambda_layer_is_refused(series, tmp_path):
    """A Lambda layer's code would run on loading: safe_mode refuses it, and we say where."""
    import keras

    model, scaler = saved(fitted("lstm", series[0]), tmp_path)
    evil = keras.Sequential(
        [
            keras.Input(shape=(WINDOW, 1)),
            keras.layers.Lambda(lambda x: x * 2),
            keras.layers.Flatten(),
        ]
    )
    evil.save(model)
    with pytest.raises(ArtifactError, match=r"safe_mode|Lambda") as caught:
        forecaster_class("lstm").load(model, scaler)
    assert_one_line_naming(caught, model)


def test_tampered_linear_coefficients_are_refused(series, tmp_path):
    model, maybe_scaler = saved(fitted("linear", series[0]), tmp_path)
    scaler = present(maybe_scaler)
    state = json.loads(model.read_text())
    model.write_text(json.dumps(state | {"intercept_": [1.0, 2.0]}))
    with pytest.raises(ArtifactError, match="do not fit together") as caught:
        forecaster_class("linear").load(model, scaler)
    assert_one_line_naming(caught, model)


def test_no_recorded_file_is_named_as_such(series):
    with pytest.raises(ArtifactError, match=r"^\(model file\): none recorded$"):
        forecaster_class("prophet").load("", None)
    with pytest.raises(ArtifactError, match=r"^\(scaler file\): none recorded$"):
        forecaster_class("linear").load(__file__, None)
