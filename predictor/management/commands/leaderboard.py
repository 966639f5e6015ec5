"""./manage.py leaderboard: evaluation sessions ranked by test rel_mae."""

from django.core.management.base import BaseCommand, CommandError

from predictor.selectors_evaluation import HOLM_NOTE, leaderboard


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class Command(BaseCommand):
    help = (
        "Rank evaluated evaluation sessions by test rel_mae (MAE over persistence's on the same "
        "bars; below 1 beats it), with test MASE, MAE, direction, strategy return net of "
        "costs, p-values and the verdict."
    )

    def add_arguments(self, parser):
        parser.add_argument("-N", "--symbol", help="only sessions of this symbol")
        parser.add_argument("-I", "--interval", help="only sessions of this interval")
        parser.add_argument("--limit", type=int, help="show at most this many rows")

    def handle(self, *args, **options):
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        symbol = options["symbol"].strip().upper() if options["symbol"] else None
        rows = leaderboard(symbol, options["interval"], options["limit"])
        if not rows:
            self.stdout.write("no evaluated evaluation sessions yet (train, forecast, evaluate)")
            return
        self.stdout.write(
            f"{'#':>3} {'session':36} {'model':11} {'symbol':8} {'int':4} {'bars':>6} "
            f"{'relMAE':>7} {'MASE':>7} {'MAE':>11} {'dir':>6} {'return':>8} {'hold':>8} "
            f"{'fee':>5} {'t p':>8} {'Holm p':>8} {'binom p':>8} {'DM':>7} {'DM p':>8}  verdict"
        )
        for row in rows:
            rejected = "rejects coin flipping" if row["rejected_holm"] else "not rejected"
            self.stdout.write(
                f"{row['rank']:>3} {row['session_id']:36} {row['model_kind']:11} "
                f"{row['symbol']:8} {row['interval']:4} {_num(row['test_bars'], 'd'):>6} "
                f"{_num(row['test_rel_mae'], '.4f'):>7} {_num(row['test_mase'], '.4f'):>7} "
                f"{_num(row['test_mae'], '.4f'):>11} "
                f"{_num(row['test_directional_accuracy'], '.3f'):>6} "
                f"{_num(row['strategy_return'], '+.2%'):>8} "
                f"{_num(row['buy_and_hold_return'], '+.2%'):>8} {row['fee_bps']:>5g} "
                f"{_num(row['t_p_value'], '.3g'):>8} {_num(row['t_p_value_holm'], '.3g'):>8} "
                f"{_num(row['binomial_p_value'], '.3g'):>8} "
                f"{_num(row['dm_statistic'], '.2f'):>7} {_num(row['dm_p_value'], '.3g'):>8}  "
                f"{rejected} at {row['alpha']:g} (Holm)"
            )
        self.stdout.write(HOLM_NOTE)
