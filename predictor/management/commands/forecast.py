"""./manage.py forecast -T <session id>: store a session's predictions beside the actual closes."""

from django.core.management.base import BaseCommand, CommandError

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
