"""./manage.py sweep: train (or backtest) every combination of a grid of settings on workers.

Thin: parse the flags, let predictor.services.sweeps expand and check every combination,
queue them as one sweep job, and with --wait follow it and print its leaderboard.
"""

from __future__ import annotations

import secrets
import sys
import time
from typing import TextIO, cast

from django.core.management.base import CommandError

from predictor.management.base import OracleCommand
from predictor.management.commands.leaderboard import Command as LeaderboardCommand
from predictor.management.queueing import queued_message, user_name
from predictor.management.training_flags import (
    add_training_flags,
    given_training_options,
    refuse_grid_flags,
)
from predictor.models import Job
from predictor.selectors.evaluations import DEFAULT_ALPHA, backtest_rows, leaderboard
from predictor.selectors.jobs import FINISHED, parts_status, sweep_results
from predictor.services.sweeps import (
    GRID_TYPES,
    check_sweep,
    expand_grid,
    parse_grid,
    queue_sweep,
    sample_combinations,
)
from predictor.services.training import TrainingConfig
from utils.walk_forward import TRAIN_WINDOWS

BAR_WIDTH = 30


class Command(OracleCommand):
    help = (
        "Queue a sweep: train_model's flags as the base, --grid name=v1,v2 to vary settings "
        "(every combination, or --random K of them), --seeds S runs of each; each run an "
        "evaluation session (trained, forecast and evaluated) or, with --backtest, a "
        "walk-forward backtest. --wait follows it and prints the sweep's leaderboard."
    )

    def add_arguments(self, parser):
        add_training_flags(parser, evaluation_flag=False)
        add = parser.add_argument
        add(
            "--grid",
            action="append",
            default=[],
            metavar="NAME=V1,V2",
            help="a setting and the values to try, repeatable; names: " + ", ".join(GRID_TYPES),
        )
        add("--random", type=int, metavar="K", help="run K combinations drawn from the grid")
        add("--seeds", type=int, default=1, help="runs of each combination: --seed, +1, ... (1)")
        add("--backtest", action="store_true", help="each combination a walk-forward backtest")
        add("--folds", type=int, default=5, help="with --backtest: folds of the test part (5)")
        add("--retrain-every", type=int, help="with --backtest: refit every N bars in a fold")
        add("--train-window", default="expanding", help="with --backtest: expanding or sliding")
        add("--fee-bps", type=float, default=0.0, help="with --backtest: fee per unit (0)")
        add("--spread-bps", type=float, default=0.0, help="with --backtest: quoted spread (0)")
        add("--alpha", type=float, default=DEFAULT_ALPHA, help="with --backtest: alpha (0.05)")
        add("--wait", action="store_true", help="follow the sweep, then print its leaderboard")

    def handle(self, *args, **options):
        self.verbosity = options["verbosity"]
        given = given_training_options(options)
        if "symbol" not in given:
            raise CommandError("-N/--symbol is required")
        backtest = self._backtest_options(options)
        seed = given.pop("seed", None)
        seed = seed if seed is not None else secrets.randbelow(2**31 - 1000)
        grid = parse_grid(options["grid"])
        refuse_grid_flags(grid, given, options["grid"])
        combinations = expand_grid(grid)
        if options["random"] is not None:
            combinations = sample_combinations(combinations, options["random"], seed)
        base = TrainingConfig(**given)
        children = check_sweep(
            base, combinations, seeds=options["seeds"], seed=seed, backtest=backtest
        )
        job = queue_sweep(
            children,
            base=base,
            grid=grid,
            seeds=options["seeds"],
            seed=seed,
            backtest=backtest,
            random_count=options["random"],
            created_by=user_name(),
        )
        what = "backtests" if backtest is not None else "evaluation sessions"
        self.stdout.write(
            f"sweep of {len(combinations)} combination(s) x {options['seeds']} seed(s) "
            f"(seeds from {seed}): {len(children)} {what}"
        )
        self.stdout.write(queued_message(job))
        if options["wait"]:
            self._wait(job)

    def _backtest_options(self, options: dict) -> dict | None:
        if not options["backtest"]:
            return None
        if options["train_window"] not in TRAIN_WINDOWS:
            raise CommandError(
                f"--train-window {options['train_window']!r}: choose one of "
                f"{', '.join(TRAIN_WINDOWS)}"
            )
        names = ("folds", "retrain_every", "train_window", "fee_bps", "spread_bps", "alpha")
        return {name: options[name] for name in names}

    def _wait(self, job: Job) -> None:
        started = time.monotonic()
        while True:
            job.refresh_from_db()
            counts = parts_status(job)
            total = sum(counts.values())
            done = sum(n for status, n in counts.items() if status in FINISHED)
            self._bar(done, total, counts, started, ended=job.status in FINISHED)
            if job.status in FINISHED:
                break
            time.sleep(1)
        sessions, backtests = sweep_results(job)
        # The leaderboard writes to this command's own streams (a test's StringIO too).
        out, err = cast(TextIO, self.stdout._out), cast(TextIO, self.stderr._out)
        board = LeaderboardCommand(stdout=out, stderr=err)
        if job.arguments.get("backtest") is None:
            rows = leaderboard(session_ids=sessions)
            if rows:
                board._sessions(rows)
            else:
                self.stdout.write("no session of the sweep was evaluated")
        else:
            rows = backtest_rows(backtest_ids=backtests)
            if rows:
                board._backtests(rows)
            else:
                self.stdout.write("no backtest of the sweep succeeded")
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"sweep {job.id} {job.status}: {job.error}")

    def _bar(self, done: int, total: int, counts: dict, started: float, *, ended: bool) -> None:
        if self.verbosity == 0:
            return
        filled = round(BAR_WIDTH * done / total) if total else BAR_WIDTH
        states = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        line = (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} ended "
            f"({states}): {time.monotonic() - started:.0f} s"
        )
        end = "\r" if sys.stderr.isatty() and not ended else "\n"
        self.stderr.write(line, ending=end)
