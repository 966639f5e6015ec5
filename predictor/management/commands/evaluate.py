"""./manage.py evaluate -T <session id>: backtest and test a session's stored forecasts."""

from django.core.management.base import BaseCommand, CommandError

from predictor.services.evaluation import EvaluationError, evaluate


def describe(evaluation) -> list[str]:
    """The printed summary, one block per part (also used by `forecast`)."""
    lines = [
        f"evaluation of {evaluation.session_id}: fee {evaluation.fee_bps:g} bps per position "
        f"change, alpha {evaluation.alpha:g}"
    ]
    for name, part in evaluation.results.items():
        scores, mine, hold = part["scores"], part["strategy"], part["buy_and_hold"]
        direction, dm = part["direction_test"], part["diebold_mariano"]
        lines += [
            f"{name} ({part['bars']} bars {part['first'][:16]} to {part['last'][:16]}):",
            f"  MAE {scores['mae']:.4f}  MASE {_num(scores['mase'], '.4f')}  "
            f"direction {_num(scores['directional_accuracy'], '.3f')}",
            f"  long/short {mine['total_return']:+.2%} (Sharpe {_num(mine['sharpe'], '.2f')}, "
            f"max drawdown {mine['max_drawdown']:.2%}, {mine['position_changes']} changes)  "
            f"buy-and-hold {hold['total_return']:+.2%} (Sharpe {_num(hold['sharpe'], '.2f')}, "
            f"max drawdown {hold['max_drawdown']:.2%})",
            f"  t {_num(direction['t_score'], '.3f')} p {_num(direction['t_p_value'], '.4g')}  "
            f"binomial p {_num(direction['binomial_p_value'], '.4g')}  "
            f"Diebold-Mariano {_num(dm['statistic'], '.3f')} p {_num(dm['p_value'], '.4g')}",
            f"  {part['verdict']}",
        ]
    return lines


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class Command(BaseCommand):
    help = (
        "Score a session's stored one-step forecasts: long/short backtest against buy-and-hold, "
        "direction test against coin flipping, Diebold-Mariano against persistence; stored "
        "per part (train, test) and shown on the leaderboard."
    )

    def add_arguments(self, parser):
        parser.add_argument("-T", "--session", required=True, help="training session id (UUID)")
        parser.add_argument(
            "--fee-bps", type=float, help="fee per position change in basis points (0)"
        )
        parser.add_argument("--alpha", type=float, help="significance level (0.05)")

    def handle(self, *args, **options):
        try:
            evaluation = evaluate(options["session"], options["fee_bps"], options["alpha"])
        except EvaluationError as error:
            raise CommandError(str(error)) from error
        self.stdout.write("\n".join(describe(evaluation)))
