"""Database tables. Fields, constraints and indexes only: behaviour lives in services/selectors."""

import uuid

from django.db import models

from utils.forecasters import MODEL_KINDS, REGISTRY


class Stock(models.Model):
    """One OHLCV bar of one symbol, keyed by (symbol, bar length, opening time in UTC).

    The name is the original tool's; a row is a bar, not a company. Prices are floats
    (IEEE doubles): exchanges quote at most ~10 significant digits and every consumer is
    numeric code, so Decimal would only cost conversions.
    """

    symbol = models.CharField(
        max_length=32, help_text="Pair as the exchange names it, e.g. BTCUSD."
    )
    bar_length = models.CharField(
        max_length=8, help_text="Freqtrade-style timeframe of the bar: 1m, 5m, 1h, 1d, 1w."
    )
    time = models.DateTimeField(help_text="Opening time of the bar, UTC.")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField(help_text="Traded volume in the base currency (BTC for BTCUSD).")
    exchange = models.CharField(max_length=32, blank=True, default="")
    source = models.CharField(
        max_length=128, blank=True, default="", help_text="Where the bar came from, e.g. a file."
    )
    provisional = models.BooleanField(
        default=False,
        db_default=False,
        help_text="The series' newest bar, possibly still forming when stored: the next "
        "update or import replaces it with the complete bar.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["symbol", "bar_length", "time"], name="stock_unique_bar"
            ),
        ]
        # The unique constraint's index (symbol, bar_length, time) serves every range scan
        # of one series; this one serves "latest bar of each symbol" across bar lengths.
        # The partial index finds a series' few provisional bars without scanning it.
        indexes = [
            models.Index(fields=["symbol", "time"], name="stock_symbol_time"),
            models.Index(
                fields=["symbol", "bar_length", "time"],
                condition=models.Q(provisional=True),
                name="stock_provisional",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.bar_length} {self.time:%Y-%m-%d %H:%M} close={self.close}"


class StockRollup(models.Model):
    """One bucket of a stored series aggregated to a coarser bar length (hourly, daily).

    Kept current by the code that writes bars (services.bars), bucket by bucket, the way
    TimescaleDB's continuous aggregates are: an hourly chart of two million minute bars then
    reads 33,000 rows instead of aggregating two million. A rollup is of what is stored: a
    bucket whose finer bars are incomplete holds what they give (`bar_count` says how many),
    and a bucket holding a provisional bar is provisional. Never edited by hand: rebuild
    with `manage.py rebuild_rollups` if bars were written past services.bars.
    """

    symbol = models.CharField(max_length=32)
    source_bar_length = models.CharField(
        max_length=8, help_text="The stored series aggregated, e.g. 1m."
    )
    bar_length = models.CharField(max_length=8, help_text="The rollup's bar length: 1h or 1d.")
    time = models.DateTimeField(help_text="Opening time of the bucket, UTC.")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField()
    bar_count = models.PositiveIntegerField(help_text="Stored bars the bucket was built from.")
    provisional = models.BooleanField(
        default=False, db_default=False, help_text="The bucket holds a provisional bar."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["symbol", "source_bar_length", "bar_length", "time"],
                name="stock_rollup_unique_bucket",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.symbol} {self.source_bar_length}->{self.bar_length} "
            f"{self.time:%Y-%m-%d %H:%M} close={self.close}"
        )


class TrainingSession(models.Model):
    """One train_model run: its flags, data, status, loss history, scores and artifacts.

    Everything needed to reproduce the run is here (flags, bar ranges, seed, library versions),
    so a score can always be traced to the exact data and settings that produced it.
    A production session updated with -X keeps its id; `version` counts its fits and
    `archived_artifacts` lists the files of the versions it replaced.
    """

    class Kind(models.TextChoices):
        EVALUATION = "evaluation"
        PRODUCTION = "production"

    # The forecaster registry (utils.forecasters) is the one list of model kinds: the
    # choices and the constraint below follow it (a new kind needs a migration).
    # django-stubs types only the functional API's plain labels, not (value, label) pairs.
    ModelKind = models.TextChoices(  # type: ignore[call-overload]
        "ModelKind", [(kind.upper(), (kind, REGISTRY[kind].label)) for kind in MODEL_KINDS]
    )

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    model_kind = models.CharField(
        max_length=16,
        choices=ModelKind.choices,
        default=ModelKind.LSTM,
        help_text="What forecasts: a kind of the forecaster registry (utils.forecasters).",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True, default="")

    # What is predicted, from what.
    symbol = models.CharField(max_length=32)
    interval = models.CharField(max_length=16, help_text="M, H, D or a timeframe such as 4h.")
    other_symbols = models.JSONField(default=list, blank=True)
    features = models.CharField(max_length=16, help_text="close or close_volume.")
    target = models.CharField(max_length=16, help_text="price or log_return.")

    # The original tool's flags.
    window = models.PositiveIntegerField()
    output_size = models.PositiveIntegerField()
    shuffle_buffer = models.PositiveIntegerField()
    train_split = models.FloatField()
    units = models.PositiveIntegerField()
    epochs = models.PositiveIntegerField()
    batch_size = models.PositiveIntegerField()
    dropout = models.FloatField()
    optimizer = models.CharField(max_length=16)
    loss = models.CharField(max_length=32)
    activation = models.CharField(max_length=16)
    scaler = models.CharField(max_length=16)
    seed = models.BigIntegerField()

    # Data: as asked (-S/-E, end exclusive) and as found (first and last bar used).
    requested_start = models.DateTimeField(null=True, blank=True)
    requested_end = models.DateTimeField(null=True, blank=True)
    data_start = models.DateTimeField(null=True, blank=True)
    data_end = models.DateTimeField(null=True, blank=True)
    bars = models.PositiveIntegerField(default=0)
    train_start = models.DateTimeField(null=True, blank=True)
    train_end = models.DateTimeField(null=True, blank=True)
    test_start = models.DateTimeField(null=True, blank=True)
    test_end = models.DateTimeField(null=True, blank=True)
    train_samples = models.PositiveIntegerField(default=0)
    test_samples = models.PositiveIntegerField(default=0)

    # Results.
    loss_history = models.JSONField(default=list, blank=True, help_text="One entry per fit.")
    library_versions = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    model_path = models.CharField(max_length=500, blank=True, default="")
    scaler_path = models.CharField(max_length=500, blank=True, default="")
    version = models.PositiveIntegerField(default=1)
    archived_artifacts = models.JSONField(default=list, blank=True)

    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life of the process running it: a running session whose "
        "heartbeat stopped is marked failed (worker lost).",
    )

    # A walk-forward backtest's sessions: one per fold and seed, out-of-sample forecasts only.
    backtest = models.ForeignKey(
        "Backtest", null=True, blank=True, on_delete=models.CASCADE, related_name="sessions"
    )
    fold = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="The backtest fold (1 = oldest) this session forecasts."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["evaluation", "production"]),
                name="trainingsession_kind_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["running", "succeeded", "failed"]),
                name="trainingsession_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(model_kind__in=list(MODEL_KINDS)),
                name="trainingsession_model_kind_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(train_split__gt=0, train_split__lte=1),
                name="trainingsession_train_split_range",
            ),
        ]
        indexes = [
            models.Index(fields=["symbol", "-created_at"], name="session_symbol_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.symbol} {self.interval} {self.id} ({self.status})"


class StockPrediction(models.Model):
    """A predicted close for one bar, `steps_ahead` bars after the last bar the model saw.

    `actual_close` stays empty for bars that had not happened when the forecast was made
    and is filled in by a later forecast run once they have.
    """

    session = models.ForeignKey(
        TrainingSession, on_delete=models.CASCADE, related_name="predictions"
    )
    time = models.DateTimeField(help_text="Opening time (UTC) of the predicted bar.")
    steps_ahead = models.PositiveSmallIntegerField()
    predicted_close = models.FloatField()
    actual_close = models.FloatField(null=True, blank=True)
    model_version = models.PositiveIntegerField(default=1)
    made_at = models.DateTimeField(
        null=True, blank=True, help_text="When the forecast was made (empty: before this was kept)."
    )
    live = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Made before its bar was in the bar store: part of the session's live "
        "track record. The rest are fits or after-the-fact forecasts.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "time", "steps_ahead"], name="prediction_unique_bar"
            ),
        ]
        # The unique index serves (session, time); this one serves one horizon in time order.
        indexes = [
            models.Index(fields=["session", "steps_ahead", "time"], name="prediction_session_step"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id} {self.time:%Y-%m-%d %H:%M} +{self.steps_ahead}"


class Evaluation(models.Model):
    """The backtest and significance tests of one session's stored forecasts.

    One row per session, replaced by each `evaluate` run. `results` holds one entry per part,
    "train" and "test" (see predictor.services.evaluation for the exact shape); the test
    part's rel_mae (MAE over persistence's on the same bars) is copied into `test_rel_mae` so
    the leaderboard can order in the database.
    """

    session = models.OneToOneField(
        TrainingSession, on_delete=models.CASCADE, related_name="evaluation"
    )
    fee_bps = models.FloatField(default=0.0, help_text="Fee per unit traded, basis points.")
    spread_bps = models.FloatField(
        default=0.0, help_text="Quoted bid-ask spread, basis points; half is paid per unit traded."
    )
    alpha = models.FloatField(default=0.05, help_text="Significance level of the verdicts.")
    test_rel_mae = models.FloatField(null=True, blank=True)
    results = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(alpha__gt=0, alpha__lt=1), name="evaluation_alpha_range"
            ),
            models.CheckConstraint(condition=models.Q(fee_bps__gte=0), name="evaluation_fee_bps"),
            models.CheckConstraint(
                condition=models.Q(spread_bps__gte=0), name="evaluation_spread_bps"
            ),
        ]

    def __str__(self) -> str:
        return f"evaluation of {self.session_id} (fee {self.fee_bps} bps, alpha {self.alpha})"


class Backtest(models.Model):
    """A walk-forward backtest: one model kind refitted fold by fold, for several seeds.

    The test stretch is split into `folds` consecutive folds; each fold's models are fitted
    only on bars before the fold (refitted every `retrain_every` bars within it). Each fold
    and seed is an evaluation session (`sessions`) whose StockPrediction rows are its
    out-of-sample one-step forecasts. `results` holds the pooled evaluation of each seed and
    the spread across seeds and folds (see predictor.services.backtesting).
    """

    class TrainWindow(models.TextChoices):
        EXPANDING = "expanding"
        SLIDING = "sliding"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model_kind = models.CharField(max_length=16, choices=TrainingSession.ModelKind.choices)
    symbol = models.CharField(max_length=32)
    interval = models.CharField(max_length=16)
    status = models.CharField(
        max_length=16,
        choices=TrainingSession.Status.choices,
        default=TrainingSession.Status.RUNNING,
    )
    error = models.TextField(blank=True, default="")
    folds = models.PositiveSmallIntegerField()
    retrain_every = models.PositiveIntegerField(
        null=True, blank=True, help_text="Bars between refits within a fold; empty: once a fold."
    )
    train_window = models.CharField(max_length=16, choices=TrainWindow.choices)
    seeds = models.JSONField(default=list, help_text="The seed of each refit series.")
    settings = models.JSONField(default=dict, help_text="The train_model flags used.")
    fee_bps = models.FloatField(default=0.0)
    spread_bps = models.FloatField(default=0.0)
    alpha = models.FloatField(default=0.05)
    test_start = models.DateTimeField(null=True, blank=True)
    test_end = models.DateTimeField(null=True, blank=True)
    results = models.JSONField(default=dict, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Wall time of the whole run.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["running", "succeeded", "failed"]),
                name="backtest_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(train_window__in=["expanding", "sliding"]),
                name="backtest_train_window_valid",
            ),
            models.CheckConstraint(condition=models.Q(folds__gte=1), name="backtest_folds"),
        ]
        indexes = [models.Index(fields=["symbol", "-created_at"], name="backtest_symbol_created")]

    def __str__(self) -> str:
        return f"backtest {self.model_kind} {self.symbol} {self.interval} {self.id} ({self.status})"


class Job(models.Model):
    """One piece of work run by a Celery worker: a training session, a forecast, a backtest
    fold, an update of the bar store, a sweep (whose combinations are its child jobs).

    `arguments` holds everything the worker needs (the command's flags, checked before the
    job was queued); `progress` what the pages draw while it runs (done/total and the loss
    per epoch). A job runs once: a worker receiving it again after a crash skips it, and a
    lost job is re-launched by hand (`jobs --retry`), never by itself.
    """

    class Kind(models.TextChoices):
        TRAIN = "train"
        FORECAST = "forecast"
        EVALUATE = "evaluate"
        BACKTEST = "backtest"
        BACKTEST_FOLD = "backtest_fold"
        UPDATE_STOCKS = "update_stocks"
        UPDATE_PRODUCTION = "update_production"
        SWEEP = "sweep"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        LOST = "lost"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    label = models.CharField(max_length=200, blank=True, default="")
    arguments = models.JSONField(default=dict, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    session = models.ForeignKey(
        TrainingSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    backtest = models.ForeignKey(
        Backtest, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    progress = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=200, blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    created_by = models.CharField(max_length=150, blank=True, default="")
    once_key = models.CharField(
        max_length=100,
        null=True,
        blank=True,
        unique=True,
        help_text="Set on a job that must be queued once only (the schedule's job of an hour).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["queued", "running", "succeeded", "failed", "cancelled", "lost"]
                ),
                name="job_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="job_status_created"),
            models.Index(fields=["-created_at"], name="job_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"
