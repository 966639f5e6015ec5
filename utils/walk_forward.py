"""Walk-forward plans: which bars each refit may learn from and which bars it forecasts.

Framework-free. The test stretch (rows from `split_row` to the end) is cut into `folds`
consecutive folds of near-equal length; within a fold the model is refitted every
`retrain_every` rows (None: once, at the fold's start). Each refit is a Segment: it learns
from rows [train_from, start) only, so nothing it forecasts, from `start` to `end`, can leak
into its fit. An expanding window keeps every earlier row; a sliding one keeps the last
`split_row` rows (the length of the first training stretch), as Darts' `historical_forecasts`
does with `retrain` and `train_length`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

TRAIN_WINDOWS = ("expanding", "sliding")


@dataclass(frozen=True)
class Segment:
    """One refit: learn from rows [train_from, start), forecast the bars in rows [start, end)."""

    fold: int  # 1 = the oldest fold
    refit: int  # 1 = the fold's first fit
    train_from: int
    start: int
    end: int


def walk_forward_plan(
    rows: int,
    split_row: int,
    *,
    folds: int,
    retrain_every: int | None = None,
    train_window: str = "expanding",
) -> list[Segment]:
    """The segments of a walk-forward backtest, oldest first; ValueError on a bad plan."""
    if train_window not in TRAIN_WINDOWS:
        raise ValueError(
            f"unknown train window {train_window!r}: choose one of {', '.join(TRAIN_WINDOWS)}"
        )
    if folds < 1:
        raise ValueError(f"folds must be at least 1, not {folds}")
    if retrain_every is not None and retrain_every < 1:
        raise ValueError(f"retrain every must be at least 1 bar, not {retrain_every}")
    test_rows = rows - split_row
    if split_row < 1 or test_rows < folds:
        raise ValueError(
            f"a test stretch of {max(test_rows, 0)} bars cannot be cut into {folds} folds"
        )
    bounds = np.linspace(split_row, rows, folds + 1).round().astype(int)
    segments = []
    for fold, (fold_start, fold_end) in enumerate(itertools.pairwise(bounds), 1):
        step = retrain_every or (fold_end - fold_start)
        for refit, start in enumerate(range(fold_start, fold_end, step), 1):
            train_from = 0 if train_window == "expanding" else max(0, start - split_row)
            end = min(start + step, fold_end)
            segments.append(Segment(fold, refit, int(train_from), int(start), int(end)))
    return segments
