"""./manage.py evaluate -T <session id>: backtest and test a session's stored forecasts."""

from predictor.management.base import OracleCommand
from predictor.services.evaluation import evaluate


def describe(evaluation) -> list[str]:
    """The printed summary, one block per part (also used by `forecast`)."""
    lines = [
        f"evaluation of {evaluation.session_id}: fee {evaluation.fee_bps:g} bps + half the "
        f"{evaluation.spread_bps:g} bps spread per unit traded (a reversal trades 2), "
        f"alpha {evaluation.alpha:g}"
    ]
    for name, part in evaluation.results.items():
        scores, mine, hold = part["scores"], part["strategy"], part["buy_and_hold"]
        direction, dm = part["direction_test"], part["diebold_mariano"]
        lines += [
            f"{name} ({_sample(name, part)}, {part['bars']} bars {part['first'][:16]} to "
            f"{part['last'][:16]}):",
            f"  MAE {scores['mae']:.4f}  rel MAE {fmt(scores.get('rel_mae'), '.4f')}  "
            f"MASE {fmt(scores.get('mase'), '.4f')}  "
            f"direction {fmt(scores['directional_accuracy'], '.3f')}",
            f"  long/short {mine['total_return']:+.2%} (Sharpe {fmt(mine['sharpe'], '.2f')}, "
            f"max drawdown {mine['max_drawdown']:.2%}, {mine['position_changes']} changes, "
            f"{fmt(mine.get('units_traded'), 'g')} units traded)  "
            f"buy-and-hold {hold['total_return']:+.2%} (Sharpe {fmt(hold['sharpe'], '.2f')}, "
            f"max drawdown {hold['max_drawdown']:.2%})",
            _interval_line(part.get("bootstrap")),
            f"  t {fmt(direction['t_score'], '.3f')} p {fmt(direction['t_p_value'], '.4g')}  "
            f"binomial p {fmt(direction['binomial_p_value'], '.4g')}  "
            f"Diebold-Mariano {fmt(dm['statistic'], '.3f')} p {fmt(dm['p_value'], '.4g')}"
            + (f" ({dm['reason']})" if dm.get("reason") else ""),
            f"  {part['verdict']}",
        ]
    if "test" in evaluation.results:
        lines.append(
            f"verdict of record (test part, out-of-sample): {evaluation.results['test']['verdict']}"
        )
    return lines


def _sample(name: str, part: dict) -> str:
    """The training part's label, in-sample (fitted), also for evaluations stored before it."""
    return part.get("sample") or ("in-sample (fitted)" if name == "train" else "out-of-sample")


def _interval_line(interval: dict | None) -> str:
    """The strategy's bootstrap interval in one line (evaluations stored before it: a note)."""
    if not interval:
        return "  no bootstrap interval stored: evaluate again"
    return (
        f"  {interval['level']:.0%} interval ({interval['method']} bootstrap, blocks of "
        f"{interval['block_length']} bars, {interval['resamples']:,} resamples, seed "
        f"{interval['seed']}): long/short return "
        f"[{fmt(interval['total_return_low'], '+.2%')}, "
        f"{fmt(interval['total_return_high'], '+.2%')}], Sharpe "
        f"[{fmt(interval['sharpe_low'], '.2f')}, {fmt(interval['sharpe_high'], '.2f')}]"
    )


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class Command(OracleCommand):
    help = (
        "Score a session's stored one-step forecasts: long/short backtest against buy-and-hold, "
        "direction test against coin flipping, Diebold-Mariano against persistence; stored "
        "per part (train, test) and shown on the leaderboard."
    )

    def add_arguments(self, parser):
        parser.add_argument("-T", "--session", required=True, help="training session id (UUID)")
        parser.add_argument(
            "--fee-bps",
            type=float,
            help="fee per unit traded in basis points; a reversal trades 2 units (0, or kept)",
        )
        parser.add_argument(
            "--spread-bps",
            type=float,
            help="quoted bid-ask spread in basis points; half of it is paid per unit (0, or kept)",
        )
        parser.add_argument("--alpha", type=float, help="significance level (0.05)")

    def handle(self, *args, **options):
        evaluation = evaluate(
            options["session"],
            options["fee_bps"],
            alpha=options["alpha"],
            spread_bps=options["spread_bps"],
        )
        self.stdout.write("\n".join(describe(evaluation)))
