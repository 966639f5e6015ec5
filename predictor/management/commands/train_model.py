"""./manage.py train_model: fit a forecaster (any -M kind) on stored bars and record a session.

Thin: parse and check the flags, call the training service, print the scores.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from predictor.services.training import (
    TrainingConfig,
    TrainingInputError,
    prepare_training_data,
    prepare_update,
    train,
    update,
    validate_model_kind,
)
from utils.forecasters import MODEL_KINDS, REGISTRY

DEFAULTS = {f.name: f.default for f in fields(TrainingConfig) if f.name != "symbol"}
# With -X the session's own settings are kept; only these may change.
UPDATE_FLAGS = {"end", "epochs", "seed"}
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


class Command(BaseCommand):
    help = (
        "Train a forecaster (-M; an LSTM by default) on stored bars: an evaluation session "
        "(-V true: train/test split, scores against baselines) or a production session "
        "(-V false: all bars; -X updates one on the bars that arrived since)."
    )

    def add_arguments(self, parser):
        add = parser.add_argument
        add("-N", "--symbol", help="symbol to predict, e.g. BTCUSD")
        add("-V", "--evaluation", help="true: evaluation session (default); false: production")
        add("-S", "--start", help="first bar's time, e.g. 2020-08-01 (default: the first stored)")
        add("-E", "--end", help="bars opening before this time (exclusive; default: all)")
        add("-X", "--session", help="id of a production session to update with new bars")
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

    def handle(self, *args, **options):
        self.verbosity = options["verbosity"]
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
        try:
            if options["session"] is not None:
                session = self._update(options["session"], given)
            else:
                session = self._train(given)
        except TrainingInputError as error:
            raise CommandError(str(error)) from error
        self._report(session)

    def _train(self, given: dict):
        if "symbol" not in given:
            raise CommandError("-N/--symbol is required (or -X to update a session)")
        given["symbol"] = given["symbol"].strip().upper()
        if "model_kind" in given:
            given["model_kind"] = given["model_kind"].strip().lower()
        config = TrainingConfig(**given)
        validate_model_kind(config)
        data = prepare_training_data(config)
        self.stdout.write(
            f"{config.symbol} {config.interval}: {len(data.series.frame)} bars "
            f"{data.series.frame.index[0]:%Y-%m-%d %H:%M} to "
            f"{data.series.frame.index[-1]:%Y-%m-%d %H:%M}, {len(data.train)} training and "
            f"{len(data.test) if config.evaluation else 0} test samples"
        )
        return train(config, data, on_epoch=self._progress)

    def _update(self, session_id: str, given: dict):
        extra = sorted(set(given) - UPDATE_FLAGS)
        if extra:
            names = ", ".join(SHORT.get(n, "--" + n.replace("_", "-")) for n in extra)
            raise CommandError(
                f"with -X only -E, -P and --seed may be given (the session keeps its own "
                f"settings): remove {names}"
            )
        session, config, data = prepare_update(
            session_id, given.get("end"), given.get("epochs"), given.get("seed")
        )
        self.stdout.write(
            f"updating {session.id} (version {session.version}) on {len(data.train)} new samples"
        )
        return update(session, config, data, on_epoch=self._progress)

    def _progress(self, epoch: int, epochs: int, logs: dict) -> None:
        if self.verbosity >= 1:
            losses = " ".join(f"{name} {value:.6g}" for name, value in logs.items())
            self.stderr.write(f"epoch {epoch}/{epochs}: {losses}")

    def _report(self, session) -> None:
        self.stdout.write(
            f"session {session.id} ({session.kind}, version {session.version}) {session.status}"
        )
        self.stdout.write(f"model ({session.model_kind}): {session.model_path}")
        if session.scaler_path:
            self.stdout.write(f"scaler: {session.scaler_path}")
        for part, table in session.metrics.items():
            count = next(iter(table.values()))["n"]
            fitted = ", in-sample (fitted)" if part == "train" or part.startswith("update") else ""
            self.stdout.write(f"{part}{fitted}, in price units ({count} forecasts):")
            self.stdout.write(
                f"  {'':18} {'MAE':>12} {'RMSE':>12} {'MAPE %':>8} {'direction':>9} "
                f"{'rel MAE':>7} {'MASE':>7}"
            )
            for name, s in table.items():
                self.stdout.write(
                    f"  {name:18} {s['mae']:12.4f} {s['rmse']:12.4f} {s['mape']:8.3f} "
                    f"{_number(s['directional_accuracy'], 3):>9} "
                    f"{_number(s.get('rel_mae'), 4):>7} {_number(s.get('mase'), 4):>7}"
                )


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
