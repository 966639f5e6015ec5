"""train_model's data and model flags (the original tool's short flags), shared with backtest.

One definition, so `backtest` takes exactly the flags `train_model` takes and parses them the
same way: a user learns them once.
"""

from __future__ import annotations

from argparse import ArgumentParser
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandError

from predictor.services.training import TrainingConfig
from utils.forecasters import MODEL_KINDS, REGISTRY

DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TrainingConfig) if f.name != "symbol"}
SHORT = {
    "evaluation": "-V",
    "start": "-S",
    "window": "-W",
    "output_size": "-O",
    "interval": "-I",
    "shuffle_buffer": "-F",
    "train_split": "-T",
    "units": "-U",
    "batch_size": "-B",
    "dropout": "-D",
    "optimizer": "-Z",
    "loss": "-L",
    "activation": "-A",
    "scaler": "-C",
    "symbol": "-N",
    "model_kind": "-M",
}


def add_training_flags(parser: ArgumentParser, *, evaluation_flag: bool = True) -> None:
    """-N -S -E -W -O -I -F -T -U -P -B -D -Z -L -A -C -M and the long-only model flags."""
    add = parser.add_argument
    add("-N", "--symbol", help="symbol to predict, e.g. BTCUSD")
    if evaluation_flag:
        add("-V", "--evaluation", help="true: evaluation session (default); false: production")
    add("-S", "--start", help="first bar's time, e.g. 2020-08-01 (default: the first stored)")
    add("-E", "--end", help="bars opening before this time (exclusive; default: all)")
    add("-W", "--window", type=int, help=f"input bars per sample ({DEFAULTS['window']})")
    add("-O", "--output-size", type=int, help="bars ahead to predict (1)")
    add("-I", "--interval", help="bar interval: M, H, D or a timeframe like 4h (H)")
    add("-F", "--shuffle-buffer", type=int, help="tf.data shuffle buffer in samples (1000)")
    add("-T", "--train-split", type=float, help="share of bars for training (0.8)")
    add("-U", "--units", type=int, help="LSTM units (50)")
    add("-P", "--epochs", type=int, help="training epochs (10)")
    add("-B", "--batch-size", type=int, help="samples per batch (64)")
    add("-D", "--dropout", type=float, help="dropout after the LSTM (0.2)")
    add("-Z", "--optimizer", help="Keras optimizer name (adam)")
    add("-L", "--loss", help="Keras loss name (mse)")
    add("-A", "--activation", help="LSTM activation (tanh)")
    add("-C", "--scaler", help="standard, minmax (default), robust or window")
    add("--features", help="close (default) or close_volume")
    add("--target", help="price (default) or log_return")
    add("--other-symbols", help="comma-separated symbols whose series are extra inputs")
    add("--seed", type=int, help="random seed (default: a random one, recorded)")
    add(
        "-M",
        "--model",
        dest="model_kind",
        help="what forecasts (lstm): "
        + "; ".join(f"{kind}: {REGISTRY[kind].description}" for kind in MODEL_KINDS)
        + ". Only kinds that can be updated make production sessions.",
    )


def given_training_options(options: dict) -> dict:
    """The training flags given on the command line, parsed (times, booleans, symbols)."""
    given = {
        name: options[name]
        for name in (*DEFAULTS, "symbol")
        if name in options and options[name] is not None
    }
    if "start" in given:
        given["start"] = parse_time(given["start"], "-S")
    if "end" in given:
        given["end"] = parse_time(given["end"], "-E")
    if "evaluation" in given:
        given["evaluation"] = parse_bool(given["evaluation"])
    if "other_symbols" in given:
        given["other_symbols"] = tuple(
            s.strip().upper() for s in given["other_symbols"].split(",") if s.strip()
        )
    if "symbol" in given:
        given["symbol"] = given["symbol"].strip().upper()
    if "model_kind" in given:
        given["model_kind"] = given["model_kind"].strip().lower()
    return given


def parse_time(text: str, flag: str) -> datetime:
    """'2020-08-01' or '2020-08-01 13:00' (ISO 8601); naive times are UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{flag} {text!r} is not a date like 2020-08-01 or 2020-08-01T13:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "t", "yes", "y", "1"):
        return True
    if value in ("false", "f", "no", "n", "0"):
        return False
    raise CommandError(f"-V {text!r} is not true or false")


def flag_name(name: str) -> str:
    """How a TrainingConfig field is given on the command line: -W for window, --target..."""
    return SHORT.get(name, "--" + name.replace("_", "-"))


def refuse_grid_flags(grid: dict, given: dict, entries: list[str]) -> None:
    """A setting swept by --grid may not also be given as its flag (which would win?)."""
    from predictor.services.sweeps import SweepError

    for name, entry in zip(grid, entries, strict=True):
        if name in given:
            raise SweepError(
                f"--grid {entry!r}: {name} is also given as {flag_name(name)}; drop one"
            )
