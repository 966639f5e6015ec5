"""./manage.py demo: queue the first-run demo (predictor.services.demo) for the workers."""

from django.core.management.base import CommandError

from predictor.management.base import OracleCommand
from predictor.management.queueing import queued_message, user_name
from predictor.services.backtesting import BacktestInputError
from predictor.services.demo import nothing_trained_yet, queue_demo
from predictor.services.training import TrainingInputError


class Command(OracleCommand):
    help = (
        "Queue a small demo on the shipped hourly BTCUSD (persistence, linear, a small LSTM, "
        "a production LSTM with forecasts, a short walk-forward backtest) for the job workers."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="only on a database with no sessions and no jobs yet (what make run does)",
        )

    def handle(self, *args, **options):
        if options["if_empty"] and not nothing_trained_yet():
            self.stdout.write("demo skipped: this database already has sessions or jobs")
            return
        try:
            job = queue_demo(created_by=user_name())
        except (TrainingInputError, BacktestInputError) as error:
            raise CommandError(
                f"{error} (the demo needs the shipped bars: ./manage.py import_stocks)"
            ) from error
        self.stdout.write(queued_message(job))
        self.stdout.write("its sessions appear on the Forecast and Evaluation pages as they finish")
