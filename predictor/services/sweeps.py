"""Sweeps: many training sessions (or walk-forward backtests) over a grid of settings.

`manage.py sweep` parses `--grid name=v1,v2` entries (parse_grid), expands them into
combinations (expand_grid), optionally samples K of them (sample_combinations), turns each
into a config per seed (sweep_configs), checks every one against the stored bars before
anything is queued (check_sweep), and queues them as the child jobs of one sweep job
(queue_sweep). The parsing and expansion are pure functions, so they are tested alone.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, fields, replace
from typing import Any

from django.db import transaction

from predictor.models import Job
from predictor.services import backtesting
from predictor.services.jobs import enqueue, start_parent, training_arguments
from predictor.services.training import (
    TrainingConfig,
    TrainingInputError,
    prepare_training_data,
    validate_config,
    validate_model_kind,
)
from utils.errors import CryptoOracleError

# The TrainingConfig fields a grid may vary, and how their values are parsed. The data range
# (symbol, -S, -E, --other-symbols), -V and the seed are the sweep's own flags, not a grid's.
GRID_TYPES: dict[str, type] = {
    f.name: {"int": int, "float": float, "str": str}[str(f.type)]
    for f in fields(TrainingConfig)
    if f.name
    in (
        *("window", "output_size", "interval", "shuffle_buffer", "train_split", "units"),
        *("epochs", "batch_size", "dropout", "optimizer", "loss", "activation", "scaler"),
        *("features", "target", "model_kind"),
    )
}
# Names a user may type for a field, besides the field's own (the flag's long form).
ALIASES = {"model": "model_kind"}


class SweepError(CryptoOracleError):
    """A grid entry or a combination that cannot run: one line naming it."""


@dataclass(frozen=True)
class SweepChild:
    """One queued part of a sweep: a session's config, or a backtest's checked plan."""

    combination: dict[str, Any]
    config: TrainingConfig
    plan: backtesting.BacktestPlan | None = None


# Pure: parsing, expanding, sampling ------------------------------------------------------------


def parse_grid(entries: list[str]) -> dict[str, list]:
    """{"window": [12, 24], ...} from ["window=12,24", ...], in the order given.

    Each value is parsed to the field's type and checked alone (a name it does not know, a
    number that is not one, a scaler that does not exist, a dropout of 1); a value that is
    only wrong beside another one is the combination's error (check_sweep).
    """
    grid: dict[str, list] = {}
    for entry in entries:
        name, values = _parse_entry(entry)
        if name in grid:
            raise SweepError(f"--grid {entry!r}: {name} is already varied by another --grid")
        grid[name] = values
    return grid


def _parse_entry(entry: str) -> tuple[str, list]:
    raw_name, equals, raw_values = entry.partition("=")
    name = raw_name.strip().lstrip("-").replace("-", "_").lower()
    name = ALIASES.get(name, name)
    if not equals or not name:
        raise SweepError(f"--grid {entry!r}: write name=value1,value2 (e.g. window=12,24)")
    if name not in GRID_TYPES:
        raise SweepError(
            f"--grid {entry!r}: {raw_name.strip()!r} cannot be varied; choose one of "
            f"{', '.join(GRID_TYPES)}"
        )
    texts = [text.strip() for text in raw_values.split(",")]
    if not any(texts):
        raise SweepError(f"--grid {entry!r}: no values after '='")
    if "" in texts:
        raise SweepError(f"--grid {entry!r}: an empty value (two commas, or one at an end)")
    values = [_parse_value(entry, name, text) for text in texts]
    for value in values:
        if values.count(value) > 1:
            raise SweepError(f"--grid {entry!r}: {value!r} is given more than once")
    return name, values


def _parse_value(entry: str, name: str, text: str) -> Any:
    kind = GRID_TYPES[name]
    if kind is int:
        try:
            value: Any = int(text)
        except ValueError:
            raise SweepError(f"--grid {entry!r}: {text!r} is not a whole number") from None
    elif kind is float:
        try:
            value = float(text)
        except ValueError:
            raise SweepError(f"--grid {entry!r}: {text!r} is not a number") from None
    else:
        value = text.lower() if name in ("model_kind", "scaler", "features", "target") else text
    try:
        config = replace(TrainingConfig(symbol="-"), **{name: value})
        validate_config(config)
        if name == "model_kind":
            validate_model_kind(config)
    except TrainingInputError as error:
        raise SweepError(f"--grid {entry!r}: {error}") from None
    return value


def expand_grid(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first name varying slowest."""
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def sample_combinations(
    combinations: list[dict[str, Any]], count: int, seed: int
) -> list[dict[str, Any]]:
    """`count` combinations drawn without replacement, the same ones for the same seed.

    Kept in the grid's order, so a sampled sweep lists like a smaller grid.
    """
    if count < 1:
        raise SweepError(f"--random {count}: draw at least 1 combination")
    if count > len(combinations):
        raise SweepError(
            f"--random {count}: the grid has only {len(combinations)} combinations "
            "(drop --random to run them all)"
        )
    chosen = sorted(random.Random(seed).sample(range(len(combinations)), count))
    return [combinations[index] for index in chosen]


def describe(combination: dict[str, Any]) -> str:
    """'window=12 model_kind=lstm' (or 'the base flags' for an empty grid)."""
    return " ".join(f"{name}={value}" for name, value in combination.items()) or "the base flags"


def sweep_configs(
    base: TrainingConfig, combinations: list[dict[str, Any]], *, seeds: int, seed: int
) -> list[tuple[dict[str, Any], TrainingConfig]]:
    """Each combination's config once per seed: seed, seed + 1, ... (evaluation sessions)."""
    if seeds < 1:
        raise SweepError(f"--seeds {seeds}: run each combination at least once")
    return [
        (combination, replace(base, **combination, evaluation=True, seed=seed + offset))
        for combination in combinations
        for offset in range(seeds)
    ]


# Checking and queueing (database) --------------------------------------------------------------


def check_sweep(
    base: TrainingConfig,
    combinations: list[dict[str, Any]],
    *,
    seeds: int,
    seed: int,
    backtest: dict | None = None,
) -> list[SweepChild]:
    """Check every combination against the stored bars, as train_model/backtest would.

    `backtest` (folds, retrain_every, train_window, fee_bps, spread_bps, alpha) makes each
    combination one walk-forward backtest of `seeds` seeds; otherwise each combination is
    `seeds` evaluation sessions. The first combination that cannot run raises SweepError
    naming it, so nothing is queued.
    """
    total = len(combinations)
    children: list[SweepChild] = []
    for number, combination in enumerate(combinations, start=1):
        what = f"combination {number} of {total} ({describe(combination)})"
        if backtest is not None:
            training = replace(base, **combination, evaluation=True, seed=seed)
            config = backtesting.BacktestConfig(training=training, seeds=seeds, **backtest)
            try:
                plan = backtesting.prepare_backtest(config)
            except backtesting.BacktestInputError as error:
                raise SweepError(f"{what}: {error}") from None
            children.append(SweepChild(combination, plan.config.training, plan))
            continue
        configs = sweep_configs(base, [combination], seeds=seeds, seed=seed)
        try:
            validate_model_kind(configs[0][1])
            prepare_training_data(configs[0][1])  # the seed changes nothing checked here
        except TrainingInputError as error:
            raise SweepError(f"{what}: {error}") from None
        children += [SweepChild(combination, config) for _, config in configs]
    return children


def queue_sweep(
    children: list[SweepChild],
    *,
    base: TrainingConfig,
    grid: dict[str, list],
    seeds: int,
    seed: int,
    backtest: dict | None = None,
    random_count: int | None = None,
    created_by: str = "",
) -> Job:
    """The sweep job and its children (train jobs that forecast and evaluate, or backtests),
    stored in one transaction and sent once it commits."""
    from predictor.services.job_handlers import queue_backtest

    combinations = len({describe(child.combination) for child in children})
    what = "backtests" if backtest is not None else "sessions"
    label = (
        f"sweep {base.model_kind if 'model_kind' not in grid else 'models'} {base.symbol} "
        f"{base.interval}: {combinations} combinations x {seeds} seeds ({what})"
    )
    arguments = {
        "base": training_arguments(base),
        "grid": grid,
        "random": random_count,
        "seeds": seeds,
        "seed": seed,
        "backtest": backtest,
        "combinations": [child.combination for child in children],
    }
    with transaction.atomic():
        parent = start_parent(Job.Kind.SWEEP, arguments, label=label, created_by=created_by)
        for child in children:
            if child.plan is not None:
                queue_backtest(child.plan, created_by=created_by, parent=parent)
                continue
            enqueue(
                Job.Kind.TRAIN,
                {"config": training_arguments(child.config), "then_forecast": True},
                label=f"{describe(child.combination)} seed {child.config.seed} of {label}",
                parent=parent,
                created_by=created_by,
            )
        Job.objects.filter(pk=parent.pk).update(progress={"done": 0, "total": len(children)})
    parent.refresh_from_db()
    return parent
