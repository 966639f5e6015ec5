"""./manage.py forecast -T <session id>: store a session's predictions beside the actual closes.

Evaluation sessions are then evaluated (backtest and tests, as `./manage.py evaluate`);
production sessions print their live record: the forecasts made before their bar existed,
scored once the bars arrived (predictor.selectors.live).
"""

from django.core.management.base import CommandError

from predictor.management.base import OracleCommand
from predictor.management.commands.evaluate import describe
from predictor.management.queueing import queued_message, user_name
from predictor.models import Job, TrainingSession
from predictor.selectors.live import live_record
from predictor.services.evaluation import EvaluationError, evaluate
from predictor.services.forecasting import forecast
from predictor.services.jobs import enqueue_now
from predictor.services.training import get_session


def describe_live(record: dict, session_id: str) -> list[str]:
    """The live-record section: counts, and the scores once any forecast is scored."""
    lines = [
        f"live record: {record['made']} forecasts made before their bar, "
        f"{record['scored']} scored, {record['pending']} pending (one bar ahead"
        + (
            f"; model version {', '.join(map(str, record['model_versions']))}"
            if record["model_versions"]
            else ""
        )
        + ")"
    ]
    result = record["result"]
    if result is None:
        if record["next_pending"] is not None:
            lines.append(
                f"  none scored yet: the first, for the bar opening "
                f"{record['next_pending']:%Y-%m-%d %H:%M} UTC, is scored once that bar has "
                f"closed and is stored: run ./manage.py update_stocks, then "
                f"./manage.py forecast -T {session_id}"
            )
        return lines
    scores, direction = result["scores"], result["direction_test"]
    mine, hold = result["strategy"], result["buy_and_hold"]
    lines += [
        f"  rel MAE {_num(scores.get('rel_mae'), '.4f')} (below 1 beats persistence)  "
        f"MASE {_num(scores.get('mase'), '.4f')}  MAE {scores['mae']:.4f}",
        f"  direction right on {direction['hits']} of {direction['bars']} bars that moved "
        f"({_num(direction['mean'], '.1%')}), t-test p {_num(direction['t_p_value'], '.4g')}: "
        + _direction_verdict(direction),
        f"  long/short {mine['total_return']:+.2%} after costs (fee {record['fee_bps']:g} bps + "
        f"half the {record['spread_bps']:g} bps spread per unit traded), "
        f"buy-and-hold {hold['total_return']:+.2%}",
    ]
    return lines


def _direction_verdict(direction: dict) -> str:
    """The direction test's conclusion, in the evaluation's terms (one-sided t-test)."""
    if direction["t_p_value"] is None:
        return "too few bars to test"
    if direction["rejected"]:
        return f"better than a coin at alpha {direction['alpha']:g}"
    return f"no evidence of beating a coin at alpha {direction['alpha']:g}"


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class Command(OracleCommand):
    help = (
        "Store one-step-ahead predictions of a training session for every bar of its range "
        "(only bars not predicted yet), and for production sessions the next O bars; print "
        "a production session's live record."
    )

    def add_arguments(self, parser):
        parser.add_argument("-T", "--session", required=True, help="training session id (UUID)")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="check the session here, then queue the forecast (and evaluation) for a "
            "worker and print the job's id instead of forecasting now",
        )

    def handle(self, *args, **options):
        if options["queue"]:
            session = queueable_session(options["session"])
            job = enqueue_now(
                Job.Kind.FORECAST,
                {"session": str(session.id)},
                label=f"forecast {session.model_kind} {session.symbol} {session.interval} "
                f"session {session.id}",
                created_by=user_name(),
            )
            self.stdout.write(queued_message(job))
            return
        result = forecast(options["session"])
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
            return
        record = live_record(session)
        if record is not None:
            self.stdout.write("\n".join(describe_live(record, str(session.id))))


def queueable_session(session_id: str) -> TrainingSession:
    """The session a queued forecast can run on, checked as `forecast` checks it first (it
    exists, is not training, has a model recorded), so a bad id fails here, not in a worker.

    Whether the model file can be read is left to the worker (it may be on another machine's
    storage): a job that cannot read it fails naming the file.
    """
    session = get_session(session_id)
    if session.status == TrainingSession.Status.RUNNING:
        raise CommandError(f"session {session.id} is still training")
    if not session.model_path and not session.predictions.exists():
        failed = session.status == TrainingSession.Status.FAILED
        why = f" (the session failed: {session.error})" if failed else ""
        raise CommandError(f"session {session.id}: (model file): none recorded{why}")
    return session
