"""./manage.py forecast -T <session id>: store a session's predictions beside the actual closes.

Evaluation sessions are then evaluated (backtest and tests, as `./manage.py evaluate`).
"""

from django.core.management.base import BaseCommand, CommandError

from predictor.management.commands.evaluate import describe
from predictor.models import TrainingSession
from predictor.services.evaluation import EvaluationError, evaluate
from predictor.services.forecasting import ForecastError, forecast


class Command(BaseCommand):
    help = (
        "Store one-step-ahead predictions of a training session for every bar of its range "
        "(only bars not predicted yet), and for production sessions the next O bars."
    )

    def add_arguments(self, parser):
        parser.add_argument("-T", "--session", required=True, help="training session id (UUID)")

    def handle(self, *args, **options):
        try:
            result = forecast(options["session"])
        except ForecastError as error:
            raise CommandError(str(error)) from error
        session = result.session
        self.stdout.write(
            f"session {session.id} ({session.kind} {session.symbol} {session.interval}): "
            f"{result.inserted} new predictions, {result.future} beyond the last bar, "
            f"{result.actuals_filled} actual closes filled in"
        )
        if session.kind == TrainingSession.Kind.EVALUATION:
            try:
                self.stdout.write("\n".join(describe(evaluate(str(session.id)))))
            except EvaluationError as error:
                self.stderr.write(f"not evaluated: {error}")
