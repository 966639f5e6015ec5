"""./manage.py backtest: walk-forward evaluation of any model kind over folds and seeds.

Thin: parse and check the flags, run the backtesting service, print the summary.
"""

from __future__ import annotations

import sys
import time

from django.core.management.base import CommandError

from predictor.management.base import OracleCommand
from predictor.management.commands.evaluate import fmt
from predictor.management.commands.leaderboard import spread_text
from predictor.management.queueing import queued_message, user_name
from predictor.management.training_flags import add_training_flags, given_training_options
from predictor.selectors.evaluations import DEFAULT_ALPHA
from predictor.services.backtesting import (
    BacktestConfig,
    prepare_backtest,
    run_backtest,
)
from predictor.services.training import TrainingConfig
from utils.walk_forward import TRAIN_WINDOWS

BAR_WIDTH = 30


class Command(OracleCommand):
    help = (
        "Walk-forward backtest: cut the test part (-T) into --folds consecutive folds, fit a "
        "model (-M) on the bars before each fold only (refitted every --retrain-every bars), "
        "forecast the fold one bar ahead, for --seeds seeds; evaluate every fold and seed and "
        "each seed's pooled forecasts, and report the spread."
    )

    def add_arguments(self, parser):
        add_training_flags(parser, evaluation_flag=False)
        add = parser.add_argument
        add("--folds", type=int, default=5, help="consecutive folds of the test part (5)")
        add(
            "--retrain-every",
            type=int,
            help="refit every N bars within a fold (default: once, at the fold's start)",
        )
        add(
            "--train-window",
            default="expanding",
            help="expanding (every earlier bar, default) or sliding (the last bars, as many as "
            "the first training stretch holds)",
        )
        add("--seeds", type=int, default=1, help="independent refits, seeds --seed, +1, ... (1)")
        add("--fee-bps", type=float, default=0.0, help="fee per unit traded, basis points (0)")
        add(
            "--spread-bps",
            type=float,
            default=0.0,
            help="quoted bid-ask spread in basis points; half is paid per unit traded (0)",
        )
        add("--alpha", type=float, default=DEFAULT_ALPHA, help="significance level (0.05)")
        add(
            "--queue",
            action="store_true",
            help="check the flags here, then queue one job per fold and seed for the workers "
            "and print the backtest job's id instead of running now",
        )

    def handle(self, *args, **options):
        self.verbosity = options["verbosity"]
        given = given_training_options(options)
        if "symbol" not in given:
            raise CommandError("-N/--symbol is required")
        if options["train_window"] not in TRAIN_WINDOWS:
            raise CommandError(
                f"--train-window {options['train_window']!r}: choose one of "
                f"{', '.join(TRAIN_WINDOWS)}"
            )
        config = BacktestConfig(
            training=TrainingConfig(**given),
            folds=options["folds"],
            retrain_every=options["retrain_every"],
            train_window=options["train_window"],
            seeds=options["seeds"],
            fee_bps=options["fee_bps"],
            spread_bps=options["spread_bps"],
            alpha=options["alpha"],
        )
        plan = prepare_backtest(config)
        index = plan.data.series.frame.index
        self.stdout.write(
            f"{config.training.symbol} {config.training.interval} {config.training.model_kind}: "
            f"{len(index)} bars {index[0]:%Y-%m-%d %H:%M} to {index[-1]:%Y-%m-%d %H:%M}; test "
            f"part {index[plan.data.split_row]:%Y-%m-%d %H:%M} on in {config.folds} folds, "
            f"{len(plan.segments)} refits per seed, {config.seeds} seed(s), "
            f"{config.train_window} training window"
        )
        if options["queue"]:
            from predictor.services.job_handlers import queue_backtest

            job = queue_backtest(plan, created_by=user_name())
            self.stdout.write(queued_message(job))
            return
        self.started = time.monotonic()
        backtest = run_backtest(plan, progress=self._progress)
        self.stdout.write("\n".join(describe_backtest(backtest)))

    def _progress(self, done: int, total: int, session) -> None:
        if self.verbosity == 0:
            return
        filled = round(BAR_WIDTH * done / total)
        elapsed = time.monotonic() - self.started
        left = elapsed / done * (total - done)
        line = (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} fold {session.fold} "
            f"seed {session.seed}: {elapsed:.0f} s, about {left:.0f} s left"
        )
        end = "\r" if sys.stderr.isatty() and done < total else "\n"
        self.stderr.write(line, ending=end)


def describe_backtest(backtest) -> list[str]:
    """The printed summary: each seed pooled, the spread, and each fold (also for tests)."""
    results = backtest.results
    lines = [
        f"backtest {backtest.id} ({backtest.model_kind}, {backtest.folds} folds x "
        f"{len(backtest.seeds)} seeds, {backtest.train_window} window, refit "
        + (f"every {backtest.retrain_every} bars" if backtest.retrain_every else "once per fold")
        + f") {backtest.status} in {backtest.seconds:.1f} s",
        f"costs: fee {backtest.fee_bps:g} bps + half the {backtest.spread_bps:g} bps spread "
        f"per unit traded (a reversal trades 2); alpha {backtest.alpha:g}; all figures "
        "out-of-sample",
        "pooled per seed (all folds' forecasts as one test stretch):",
        f"  {'seed':>11} {'bars':>6} {'rel MAE':>8} {'MASE':>7} {'direction':>9} "
        f"{'long/short':>10} {'Sharpe':>7} {'buy&hold':>9} {'t-test p':>9}  verdict",
    ]
    for seed, part in results["pooled"].items():
        figures = part["scores"]
        lines.append(
            f"  {seed:>11} {part['bars']:>6} {fmt(figures['rel_mae'], '.4f'):>8} "
            f"{fmt(figures['mase'], '.3f'):>7} {fmt(figures['directional_accuracy'], '.3f'):>9} "
            f"{part['strategy']['total_return']:>+10.2%} "
            f"{fmt(part['strategy']['sharpe'], '.2f'):>7} "
            f"{part['buy_and_hold']['total_return']:>+9.2%} "
            f"{fmt(part['direction_test']['t_p_value'], '.3g'):>9}  {part['verdict']}"
        )
    if len(results["pooled"]) > 1 and results.get("seeds_identical"):
        lines.append(
            f"  the seeds gave identical forecasts: -M {backtest.model_kind} does not depend on "
            "its seed, so the spread across seeds is 0"
        )
    for name, title in (("across_seeds", "seeds (pooled)"), ("across_folds", "folds x seeds")):
        spread = results["spread"][name]
        lines.append(f"spread across {title}: mean [min, max]")
        for figure, label, spec in (
            ("rel_mae", "rel MAE", ".4f"),
            ("strategy_return", "long/short return", "+.2%"),
            ("sharpe", "Sharpe", ".2f"),
        ):
            lines.append(f"  {label:18} {spread_text(spread[figure], spec)}")
    lines.append("each fold and seed (its own session; ./manage.py evaluate -T <id> for all):")
    for row in results["folds"]:
        figures = row["figures"]
        lines.append(
            f"  fold {row['fold']} seed {row['seed']}: {row['first'][:10]} to "
            f"{row['last'][:10]}, {row['bars']} bars, {row['refits']} fit(s); rel MAE "
            f"{fmt(figures['rel_mae'], '.4f')}, long/short "
            f"{fmt(figures['strategy_return'], '+.2%')} (buy and hold "
            f"{row['buy_and_hold_return']:+.2%}), Sharpe {fmt(figures['sharpe'], '.2f')}  "
            f"session {row['session_id']}"
        )
    return lines
