"""./manage.py leaderboard: evaluation sessions ranked by test rel_mae."""

from django.core.management.base import CommandError

from predictor.management.base import OracleCommand
from predictor.management.commands.evaluate import fmt
from predictor.selectors.evaluations import (
    BACKTEST_NOTE,
    HOLM_NOTE,
    backtest_rows,
    leaderboard,
    mixed_bars_note,
)


class Command(OracleCommand):
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
        if rows:
            self._sessions(rows)
        else:
            self.stdout.write("no evaluated evaluation sessions yet (train, forecast, evaluate)")
        backtests = backtest_rows(symbol, options["interval"], options["limit"])
        if backtests:
            self._backtests(backtests)

    def _sessions(self, rows: list[dict]) -> None:
        self.stdout.write(
            f"{'#':>3} {'session':36} {'model':11} {'symbol':8} {'int':4} {'bars':>6} "
            f"{'relMAE':>7} {'MASE':>7} {'MAE':>11} {'dir':>6} {'return':>8} {'hold':>8} "
            f"{'fee':>5} {'t p':>8} {'Holm p':>8} {'binom p':>8} {'DM':>7} {'DM p':>8}  verdict"
        )
        for row in rows:
            rejected = "rejects coin flipping" if row["rejected_holm"] else "not rejected"
            self.stdout.write(
                f"{row['rank']:>3} {row['session_id']:36} {row['model_kind']:11} "
                f"{row['symbol']:8} {row['interval']:4} {fmt(row['test_bars'], 'd'):>6} "
                f"{fmt(row['test_rel_mae'], '.4f'):>7} {fmt(row['test_mase'], '.4f'):>7} "
                f"{fmt(row['test_mae'], '.4f'):>11} "
                f"{fmt(row['test_directional_accuracy'], '.3f'):>6} "
                f"{fmt(row['strategy_return'], '+.2%'):>8} "
                f"{fmt(row['buy_and_hold_return'], '+.2%'):>8} {row['fee_bps']:>5g} "
                f"{fmt(row['t_p_value'], '.3g'):>8} {fmt(row['t_p_value_holm'], '.3g'):>8} "
                f"{fmt(row['binomial_p_value'], '.3g'):>8} "
                f"{fmt(row['dm_statistic'], '.2f'):>7} {fmt(row['dm_p_value'], '.3g'):>8}  "
                f"{rejected} at {row['alpha']:g} (Holm)"
            )
        self.stdout.write(HOLM_NOTE)
        if note := mixed_bars_note(rows):
            self.stdout.write(note)

    def _backtests(self, rows: list[dict]) -> None:
        self.stdout.write("")
        self.stdout.write("walk-forward backtests (mean [min, max]; seeds pooled | folds x seeds):")
        for row in rows:
            refit = f"every {row['retrain_every']}" if row["retrain_every"] else "once a fold"
            self.stdout.write(
                f"  {row['backtest_id']} {row['model_kind']:11} {row['symbol']:8} "
                f"{row['interval']:4} {row['folds']} folds x {row['seeds']} seeds, "
                f"{row['train_window']}, refit {refit}, fee {row['fee_bps']:g} bps"
            )
            for name, label, spec in (
                ("rel_mae", "rel MAE", ".4f"),
                ("strategy_return", "long/short", "+.2%"),
                ("sharpe", "Sharpe", ".2f"),
            ):
                self.stdout.write(
                    f"      {label:10} {spread_text(row[name], spec):32} | "
                    f"{spread_text(row[name + '_folds'], spec)}"
                )
        self.stdout.write(BACKTEST_NOTE)


def spread_text(values: dict, spec: str) -> str:
    """'mean [min, max]' of a spread dict, or '-' when it holds no value."""
    if not values or values.get("mean") is None:
        return "-"
    return f"{fmt(values['mean'], spec)} [{fmt(values['min'], spec)}, {fmt(values['max'], spec)}]"
