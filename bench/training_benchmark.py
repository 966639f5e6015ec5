"""Training benchmark: train_model end to end against plain Keras model.fit, in one run.

    .venv/bin/python bench/training_benchmark.py               # 3 epochs, defaults otherwise
    .venv/bin/python bench/training_benchmark.py --epochs 5 --batch-size 128

On a fresh SQLite database holding the shipped hourly BTCUSD file it measures:
  (a) building the windows (feature columns, positions, log returns, sliding windows) for
      all 45,824 hourly bars, target < 1 s;
  (b) plain Keras: the same architecture fitted with model.fit on the very arrays
      train_model trains on (numpy in, Keras' own shuffling and batching);
  (c) ./manage.py train_model with the same flags, end to end: reading the bars from the
      database, windowing, scaling, fitting, scoring against the baselines, saving.
It prints samples per second of (b) and (c) and their ratio (target >= 0.9). Both fits run
in this process after a warm-up fit, so neither pays TensorFlow's start-up alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(folder: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "cryptooracle.settings.test"
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    os.environ["CRYPTOORACLE_MODEL_WEIGHTS_DIR"] = str(folder / "model_weights")
    os.environ["CRYPTOORACLE_SCALERS_DIR"] = str(folder / "scalers")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command(
        "import_stocks",
        str(ROOT / "data" / "gemini_BTCUSD_1hr.csv"),
        "--no-progress",
        stdout=StringIO(),
        stderr=StringIO(),
    )


def time_windows(symbol: str, window: int) -> tuple[int, float, float]:
    """(bars, seconds to read them, seconds to window them) for the whole hourly series."""
    from predictor.selectors import get_bars
    from utils.features import bar_positions, feature_frame, make_windows, model_values

    started = time.perf_counter()
    bars = get_bars(symbol, "H")
    read = time.perf_counter() - started
    started = time.perf_counter()
    frame = feature_frame({symbol: bars}, [symbol], "close_volume")
    positions = bar_positions(frame.index, 3600)
    values = model_values(frame, "log_return", positions)
    make_windows(values, frame[f"{symbol}_close"].to_numpy(), positions, window, 1)
    return len(bars), read, time.perf_counter() - started


def plain_keras(config, data) -> tuple[int, float]:
    """model.fit on the same scaled arrays; returns (samples per epoch, seconds)."""
    from utils import lstm
    from utils.features import make_scaler

    scaler = make_scaler(config.scaler).fit(data.series.values[: data.split_row])
    inputs = scaler.transform(data.train.inputs).astype("float32")
    targets = scaler.transform_target(data.train.targets, data.train.inputs).astype("float32")
    lstm.seed_everything(config.seed)
    model = lstm.build_model(
        config.window,
        inputs.shape[2],
        config.output_size,
        config.units,
        config.dropout,
        config.activation,
        config.optimizer,
        config.loss,
    )
    started = time.perf_counter()
    model.fit(
        inputs, targets, batch_size=config.batch_size, epochs=config.epochs, verbose=0, shuffle=True
    )
    return len(inputs), time.perf_counter() - started


def warm_up(config, data) -> None:
    """One small fit so TensorFlow's one-off start-up is paid by neither measurement."""
    from dataclasses import replace

    small = replace(data, train=data.train.select(slice(0, 2000)))
    plain_keras(replace(config, epochs=1), small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--window", type=int, default=24)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        setup_django(Path(folder))
        from django.core.management import call_command

        from predictor.services.training import TrainingConfig, prepare_training_data

        bars, read, windowing = time_windows("BTCUSD", args.window)
        print(f"windows for {bars} hourly bars: {windowing:.3f} s (reading them: {read:.3f} s)")

        config = TrainingConfig(
            symbol="BTCUSD",
            epochs=args.epochs,
            batch_size=args.batch_size,
            units=args.units,
            window=args.window,
            seed=1,
        )
        data = prepare_training_data(config)
        warm_up(config, data)

        samples, seconds = plain_keras(config, data)
        plain_rate = samples * args.epochs / seconds
        print(f"plain Keras model.fit: {samples} samples x {args.epochs} epochs in {seconds:.1f} s")

        flags = ["-N", "BTCUSD", "-P", str(args.epochs), "-B", str(args.batch_size)]
        flags += ["-U", str(args.units), "-W", str(args.window), "--seed", "1"]
        started = time.perf_counter()
        call_command("train_model", *flags, stdout=StringIO(), stderr=StringIO())
        end_to_end = time.perf_counter() - started
        command_rate = samples * args.epochs / end_to_end
        print(f"train_model end to end: {end_to_end:.1f} s")
        print(f"samples/s: plain Keras {plain_rate:,.0f}, train_model {command_rate:,.0f}")
        print(f"ratio train_model / plain Keras: {command_rate / plain_rate:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
