"""./manage.py train_model: fit a forecaster (any -M kind) on stored bars and record a session.

Thin: parse and check the flags, call the training service, print the scores.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from predictor.management.base import OracleCommand
from predictor.management.queueing import queued_message, user_name
from predictor.management.training_flags import (
    add_training_flags,
    flag_name,
    given_training_options,
)
from predictor.models import Job
from predictor.services.jobs import enqueue_now, training_arguments
from predictor.services.training import (
    TrainingConfig,
    prepare_training_data,
    prepare_update,
    train,
    update,
    validate_model_kind,
)

# With -X the session's own settings are kept; only these may change.
UPDATE_FLAGS = {"end", "epochs", "seed"}


class Command(OracleCommand):
    help = (
        "Train a forecaster (-M; an LSTM by default) on stored bars: an evaluation session "
        "(-V true: train/test split, scores against baselines) or a production session "
        "(-V false: all bars; -X updates one on the bars that arrived since)."
    )

    def add_arguments(self, parser):
        add_training_flags(parser)
        parser.add_argument("-X", "--session", help="id of a production session to update")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="check the flags here, then queue the training for a worker and print the "
            "job's id (follow it with ./manage.py jobs <id>) instead of training now",
        )

    def handle(self, *args, **options):
        self.verbosity = options["verbosity"]
        self.queue = options["queue"]
        given = given_training_options(options)
        if options["session"] is not None:
            session = self._update(options["session"], given)
        else:
            session = self._train(given)
        if session is not None:
            self._report(session)

    def _train(self, given: dict):
        if "symbol" not in given:
            raise CommandError("-N/--symbol is required (or -X to update a session)")
        config = TrainingConfig(**given)
        validate_model_kind(config)
        data = prepare_training_data(config)
        self.stdout.write(
            f"{config.symbol} {config.interval}: {len(data.series.frame)} bars "
            f"{data.series.frame.index[0]:%Y-%m-%d %H:%M} to "
            f"{data.series.frame.index[-1]:%Y-%m-%d %H:%M}, {len(data.train)} training and "
            f"{len(data.test) if config.evaluation else 0} test samples"
        )
        if self.queue:
            job = enqueue_now(
                Job.Kind.TRAIN,
                {"config": training_arguments(config)},
                label=f"train {config.model_kind} {config.symbol} {config.interval} "
                f"({'evaluation' if config.evaluation else 'production'})",
                created_by=user_name(),
            )
            self.stdout.write(queued_message(job))
            return None
        return train(config, data, on_epoch=self._progress)

    def _update(self, session_id: str, given: dict):
        extra = sorted(set(given) - UPDATE_FLAGS)
        if extra:
            names = ", ".join(flag_name(n) for n in extra)
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
        if self.queue:
            end = given.get("end")
            job = enqueue_now(
                Job.Kind.TRAIN,
                {
                    "update": {
                        "session": str(session.id),
                        "end": end.isoformat() if end else None,
                        "epochs": given.get("epochs"),
                        "seed": given.get("seed"),
                    }
                },
                label=f"update {session.model_kind} {session.symbol} {session.interval} "
                f"session {session.id}",
                created_by=user_name(),
            )
            self.stdout.write(queued_message(job))
            return None
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
