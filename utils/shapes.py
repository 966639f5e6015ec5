"""The shapes of the JSON the app stores: TrainingSession.metrics, Evaluation.results,
Backtest.results and Job.progress.

Django-free, so utils/ and the services that write these columns and the selectors, views
and commands that read them name the same keys, and mypy checks both sides. The database
gives them back as plain dicts (JSONField); these TypedDicts are what those dicts hold.
Rows stored before a key was added may lack it: readers use .get() on such keys.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict


class Scores(TypedDict):
    """utils.metrics.scores: six scores over every step ahead, and how many bars."""

    mae: float
    rmse: float
    mape: float
    directional_accuracy: float | None
    rel_mae: float | None
    mase: float | None
    n: int


# TrainingSession.metrics: {"train": ..., "test": ..., "update_v2": ...}, each part scored for
# the session's model and both baselines (predictor.services.training.score_part).
class PartMetrics(TypedDict):
    model: Scores
    persistence: Scores
    linear_regression: Scores


SessionMetrics = dict[str, PartMetrics]


# Evaluation.results: {"train": EvaluatedPart, "test": EvaluatedPart} -------------------------


class Performance(TypedDict):
    """utils.strategy.Performance: one trading rule's figures."""

    total_return: float
    sharpe: float | None
    max_drawdown: float
    position_changes: int
    units_traded: float
    fees: float
    spread_costs: float


class Bootstrap(TypedDict):
    """utils.bootstrap.BootstrapInterval: the strategy's figures' block-bootstrap interval."""

    method: str
    level: float
    resamples: int
    block_length: int
    seed: int
    bars: int
    total_return_low: float | None
    total_return_high: float | None
    sharpe_low: float | None
    sharpe_high: float | None
    sharpe_resamples: int


class Equity(TypedDict):
    """Both wealth curves, thinned; times are ISO strings, the first the first bar's open."""

    times: list[str]
    strategy: list[float]
    buy_and_hold: list[float]


class DirectionTest(TypedDict):
    """utils.strategy.DirectionTest: were the forecast directions better than a coin?"""

    bars: int
    hits: int
    mean: float | None
    t_score: float | None
    t_p_value: float | None
    binomial_p_value: float | None
    alpha: float
    rejected: bool
    calls: NotRequired[int | None]  # absent from evaluations stored before it was kept


class DieboldMariano(TypedDict):
    """utils.strategy.DieboldMariano: the model's squared errors against persistence's."""

    statistic: float | None
    p_value: float | None
    raw_statistic: float | None
    mean_loss_difference: float | None
    n: int
    horizon: int
    loss: str
    reason: NotRequired[str]  # why there is no statistic (a persistence session)


class EvaluatedPart(TypedDict):
    """predictor.services.evaluation.evaluate_part: everything stored for one part."""

    sample: str
    in_sample: bool
    first: str
    last: str
    bars: int
    scores: Scores
    strategy: Performance
    buy_and_hold: Performance
    bootstrap: Bootstrap
    equity: Equity
    direction_test: DirectionTest
    diebold_mariano: DieboldMariano
    verdict: str


EvaluationResults = dict[str, EvaluatedPart]  # "train" and, when it has bars, "test"


# Backtest.results (predictor.services.backtesting.summarize) ---------------------------------


FigureName = Literal["rel_mae", "mase", "directional_accuracy", "strategy_return", "sharpe"]


class Figures(TypedDict):
    """The headline figures of one fold or one pooled seed (backtesting.SPREAD_FIGURES)."""

    rel_mae: float | None
    mase: float | None
    directional_accuracy: float | None
    strategy_return: float | None
    sharpe: float | None


class FoldRow(TypedDict):
    fold: int | None
    seed: int
    session_id: str
    first: str
    last: str
    bars: int
    refits: int
    figures: Figures
    buy_and_hold_return: float
    t_p_value: float | None
    dm_statistic: float | None
    dm_p_value: float | None


class Spread(TypedDict):
    """One figure's mean, min and max over seeds or folds; None where no value was known."""

    mean: float | None
    min: float | None
    max: float | None
    n: int


class Spreads(TypedDict):
    across_seeds: dict[str, Spread]
    across_folds: dict[str, Spread]


class BacktestResults(TypedDict):
    folds: list[FoldRow]
    pooled: dict[str, EvaluatedPart]  # by seed, as a string
    seeds_identical: bool
    spread: Spreads


# Job.progress (predictor.services.jobs.Progress) ---------------------------------------------


class EpochLosses(TypedDict):
    """One epoch's losses as Keras logs them: loss, and val_loss when there is validation."""

    epoch: int
    loss: float
    val_loss: NotRequired[float]


class JobProgress(TypedDict, total=False):
    """Every key is absent until the job first reports it."""

    done: int
    total: int
    text: str
    epoch: int
    epochs: int
    losses: list[EpochLosses]
