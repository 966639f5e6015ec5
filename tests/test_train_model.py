"""train_model end to end on slices of the shipped hourly bars, with tiny models.

Baselines are recomputed here from the stored closes with a plain loop and scikit-learn,
never through the code under test, and compared with what the session recorded.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from django.core.management import CommandError
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import MinMaxScaler

from predictor.models import Stock, TrainingSession
from tests.checks import present
from tests.training_support import (
    BTC_FILE,
    ETH_FILE,
    files_in,
    import_days,
    stored_path,
    train_model,
)

pytestmark = pytest.mark.django_db

TINY = ["-P", "1", "-U", "4", "-W", "12", "-B", "64"]
JULY = ["-N", "BTCUSD", "-S", "2020-07-01", "-E", "2020-07-15"]


@pytest.fixture
def bars(tmp_path):
    # Oldest first: a file's newest bar is provisional, and one older than the stored bars
    # would be rejected (it could never be replaced).
    import_days(tmp_path, BTC_FILE, "2019-05-01", "2019-05-10")
    import_days(tmp_path, BTC_FILE, "2019-11-10", "2019-11-16")  # a missing hour on 11-13
    import_days(tmp_path, BTC_FILE, "2020-06-25", "2020-07-20")
    import_days(tmp_path, ETH_FILE, "2019-05-01", "2019-05-10")


def july_closes() -> np.ndarray:
    rows = Stock.objects.filter(
        symbol="BTCUSD", time__gte="2020-07-01T00:00Z", time__lt="2020-07-15T00:00Z"
    ).order_by("time")
    times = np.array([row.time.timestamp() for row in rows])
    assert (np.diff(times) == 3600).all()  # no gap in this range: a loop may window it
    return np.array([row.close for row in rows])


def independent_scores(actual, predicted, last, scale=None):
    """The scores by their textbook formulas; MASE only when the training scale is given."""
    result = {
        "mae": np.mean(np.abs(predicted - actual)),
        "rmse": np.sqrt(np.mean((predicted - actual) ** 2)),
        "mape": np.mean(np.abs(predicted - actual) / actual) * 100,
        "rel_mae": np.mean(np.abs(predicted - actual)) / np.mean(np.abs(last - actual)),
    }
    if scale is not None:
        result["mase"] = np.mean(np.abs(predicted - actual)) / scale
    return result


def assert_scores(recorded: dict, expected: dict, rel=1e-6):
    for name, value in expected.items():
        assert recorded[name] == pytest.approx(value, rel=rel), name


def test_evaluation_session_records_files_and_honest_scores(bars, artifact_dirs):
    session, printed = train_model(*JULY, *TINY, "--seed", "7")
    models, scalers = artifact_dirs

    assert session.status == "succeeded" and session.kind == "evaluation" and not session.error
    assert (session.window, session.units, session.epochs, session.seed) == (12, 4, 1, 7)
    assert session.bars == 14 * 24
    assert present(session.train_end) < present(session.test_start)
    assert f"{session.data_start:%Y-%m-%d %H}" == "2020-07-01 00"
    assert f"{session.data_end:%Y-%m-%d %H}" == "2020-07-14 23"
    assert len(session.loss_history) == 1 and len(session.loss_history[0]["loss"]) == 1
    assert {"tensorflow", "keras", "numpy"} <= set(session.library_versions)
    assert files_in(models, scalers) == [f"{session.id}.json", f"{session.id}.keras"]
    assert session.model_path == f"model_weights/{session.id}.keras"  # a storage name
    assert stored_path(session.model_path).parent == models
    assert json.loads(stored_path(session.scaler_path).read_text())["name"] == "minmax"
    assert str(session.id) in printed and "linear_regression" in printed

    # The same windows, split, scaler and baselines, built independently.
    closes = july_closes()
    split = round(len(closes) * 0.8)
    starts = np.arange(len(closes) - 12)
    inputs = np.stack([closes[i : i + 12] for i in starts])
    actual = closes[starts + 12]
    last = inputs[:, -1]
    train, test = starts + 12 < split, starts + 12 >= split
    assert (session.train_samples, session.test_samples) == (train.sum(), test.sum())
    scaler = MinMaxScaler().fit(closes[:split, None])

    def scale(a):
        return scaler.transform(a.reshape(-1, 1)).reshape(a.shape)

    regression = LinearRegression().fit(scale(inputs[train]), scale(actual[train]))
    # Hyndman-Koehler: the in-sample one-step naive MAE of the training part's closes (those
    # with a full window before them), for both parts.
    naive = np.mean(np.abs(np.diff(closes[11:split])))

    def regress(mask):
        return scaler.inverse_transform(regression.predict(scale(inputs[mask]))[:, None])[:, 0]

    for part, mask in (("train", train), ("test", test)):
        recorded = session.metrics[part]
        assert_scores(
            recorded["persistence"],
            independent_scores(actual[mask], last[mask], last[mask], naive),
        )
        assert recorded["persistence"]["directional_accuracy"] == 0.0
        assert_scores(
            recorded["linear_regression"],
            independent_scores(actual[mask], regress(mask), last[mask], naive),
        )

    # The saved model, reloaded, reproduces the recorded model scores.
    import keras

    model = keras.models.load_model(stored_path(session.model_path))
    predicted = model.predict(scale(inputs[test])[..., None].astype("float32"), verbose=0)
    prices = scaler.inverse_transform(predicted.astype("float64"))[:, 0]
    expected = independent_scores(actual[test], prices, last[test], naive)
    assert_scores(session.metrics["test"]["model"], expected, rel=1e-4)

    with pytest.raises(CommandError, match="is an evaluation session"):
        train_model("-X", str(session.id))


def test_same_seed_same_model(bars, artifact_dirs):
    first, _ = train_model(*JULY, *TINY, "--seed", "11", "-P", "2")
    second, _ = train_model(*JULY, *TINY, "--seed", "11", "-P", "2")
    assert first.loss_history[0]["loss"] == second.loss_history[0]["loss"]
    assert first.metrics == second.metrics


@pytest.mark.parametrize("scaler", ["standard", "robust", "window"])
def test_each_scaler_trains(bars, artifact_dirs, scaler):
    session, _ = train_model(*JULY, *TINY, "-C", scaler, "-O", "2", "--seed", "1")
    persistence = session.metrics["test"]["persistence"]
    assert session.status == "succeeded" and persistence["rel_mae"] == pytest.approx(1.0)
    assert persistence["n"] == session.test_samples * 2


def test_multivariate_log_returns_from_another_symbol(bars, artifact_dirs):
    session, _ = train_model(
        *("-N", "ETHUSD", "-S", "2019-05-01", "-E", "2019-05-11"),
        *TINY,
        *("--features", "close_volume", "--target", "log_return", "-C", "standard"),
        *("--other-symbols", "BTCUSD", "--seed", "3"),
    )
    scaler = json.loads(stored_path(session.scaler_path).read_text())
    assert scaler["context"]["columns"] == [
        "ETHUSD_close",
        "ETHUSD_volume",
        "BTCUSD_close",
        "BTCUSD_volume",
    ]
    assert session.other_symbols == ["BTCUSD"] and session.target == "log_return"
    # Log-return forecasts are scored as prices: persistence (a zero return) is the last close.
    eth = np.array(
        Stock.objects.filter(symbol="ETHUSD", time__lt="2019-05-11T00:00Z")
        .order_by("time")
        .values_list("close", flat=True)
    )
    split = round(len(eth) * 0.8)
    targets = np.arange(split, len(eth))
    expected = independent_scores(eth[targets], eth[targets - 1], eth[targets - 1])
    assert_scores(session.metrics["test"]["persistence"], expected)


def test_windows_skip_the_missing_hour(bars, artifact_dirs):
    session, _ = train_model("-N", "BTCUSD", "-S", "2019-11-12", "-E", "2019-11-15", *TINY)
    # 72 hours less the missing one: 71 bars, split at 57. A 13-bar span fits in hours
    # 0..23 of 11-12 and 02..23 (11-13)+(11-14) but never across 01:00 on 11-13.
    assert session.bars == 71
    assert session.train_samples + session.test_samples == (25 - 12) + (46 - 12)


def test_production_session_and_update(bars, artifact_dirs):
    models, scalers = artifact_dirs
    session, _ = train_model(*JULY[:4], "-E", "2020-07-10", "-V", "false", *TINY, "--seed", "5")
    assert session.kind == "production" and "test" not in session.metrics
    assert session.train_end == session.data_end and session.test_start is None
    old_model = stored_path(session.model_path).read_bytes()
    old_scaler = stored_path(session.scaler_path).read_text()

    with pytest.raises(CommandError, match="only -E, -P and --seed"):
        train_model("-X", str(session.id), "-W", "5")
    updated, printed = train_model("-X", str(session.id), "-E", "2020-07-12", "-P", "2")

    assert updated.id == session.id and updated.version == 2 and updated.status == "succeeded"
    assert f"{updated.data_end:%Y-%m-%d %H}" == "2020-07-11 23"
    assert [entry["version"] for entry in updated.loss_history] == [1, 2]
    assert len(updated.loss_history[1]["loss"]) == 2
    assert "update_v2" in updated.metrics and "update_v2" in printed
    archived = updated.archived_artifacts[0]
    assert stored_path(archived["model_path"]).read_bytes() == old_model
    assert stored_path(archived["scaler_path"]).read_text() == old_scaler
    assert stored_path(updated.scaler_path).read_text() == old_scaler  # the scaler is kept
    assert stored_path(updated.model_path).read_bytes() != old_model
    assert files_in(models, scalers) == sorted(
        [
            f"{session.id}.keras",
            f"{session.id}.v1.keras",
            f"{session.id}.json",
            f"{session.id}.v1.json",
        ]
    )
    with pytest.raises(CommandError, match="nothing to update"):
        train_model("-X", str(session.id), "-E", "2020-07-12")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-N", "BTCUSD", "-S", "July 1st"], "-S 'July 1st' is not a date"),
        (["-N", "BTCUSD", "-E", "2020-13-01"], "-E '2020-13-01' is not a date"),
        (["-N", "BTCUSD", "-S", "2020-07-10", "-E", "2020-07-01"], "is not before end"),
        (["-N", "DOGEUSD"], "unknown symbol 'DOGEUSD'"),
        (["-N", "BTCUSD", "-S", "2010-01-01", "-E", "2010-02-01"], "no stored BTCUSD bars between"),
        (["-N", "BTCUSD", "-S", "2030-01-01"], "its 1h bars run from"),
        (["-N", "BTCUSD", "-I", "M"], "no stored BTCUSD bars fine enough"),
        (["-N", "BTCUSD", "-I", "fortnightly"], "interval 'fortnightly'"),
        (["-N", "BTCUSD", "-S", "2020-07-01", "-E", "2020-07-02", "-W", "48"], "too few bars"),
        ([*JULY, "-T", "0.999"], "the test part"),
        (["-N", "BTCUSD", "-C", "zscore"], "unknown scaler 'zscore'"),
        (["-N", "BTCUSD", "-Z", "adamx"], "unknown optimizer 'adamx'"),
        (["-N", "BTCUSD", "-L", "cross"], "unknown loss 'cross'"),
        (["-N", "BTCUSD", "-A", "step"], "unknown activation 'step'"),
        (["-N", "BTCUSD", "-V", "maybe"], "-V 'maybe' is not true or false"),
        (["-N", "BTCUSD", "-T", "1.5"], "training split"),
        (["-N", "BTCUSD", "-D", "1"], "dropout"),
        (["-N", "BTCUSD", "-W", "0"], "window must be at least 1"),
        (["-N", "BTCUSD", "-C", "window", "--target", "log_return"], "window scaler"),
        (["-N", "BTCUSD", "--other-symbols", "DOGEUSD"], "unknown symbol 'DOGEUSD'"),
        (["-X", str(uuid.UUID(int=1))], "no training session 00000000"),
        (["-X", "not-a-uuid"], "is not a session id"),
        ([], "-N/--symbol is required"),
    ],
)
def test_bad_input_fails_before_training(bars, artifact_dirs, args, message):
    with pytest.raises(CommandError, match=message) as caught:
        train_model(*args)
    assert "\n" not in str(caught.value)
    assert not TrainingSession.objects.exists()
    assert files_in(*artifact_dirs) == []


@pytest.mark.parametrize("where", ["fit", "save_scaler"])
def test_interrupted_run_is_marked_failed_and_leaves_no_model(
    bars, artifact_dirs, monkeypatch, where
):
    from utils import lstm
    from utils.forecasters import base

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    module, name = {"fit": (lstm, "fit_model"), "save_scaler": (base, "write_text_atomically")}[
        where
    ]
    monkeypatch.setattr(module, name, interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_model(*JULY, *TINY)
    session = TrainingSession.objects.get()
    assert session.status == "failed" and session.error == "KeyboardInterrupt"
    assert files_in(*artifact_dirs) == []
