"""The Django admin for bars, sessions and predictions.

Tables hold millions of rows, so list pages never count them all and foreign keys are raw ids
(a select of every session on each prediction's page would be slow and useless).
"""

from django.contrib import admin

from predictor.models import Backtest, Stock, StockPrediction, TrainingSession


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    list_display = ("symbol", "bar_length", "time", "open", "high", "low", "close", "volume")
    list_filter = ("symbol", "bar_length", "exchange")
    date_hierarchy = "time"
    show_full_result_count = False  # counting millions of bars on every page is slow


@admin.register(TrainingSession)
class TrainingSessionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "model_kind",
        "status",
        "symbol",
        "interval",
        "window",
        "epochs",
        "version",
        "created_at",
    )
    list_filter = ("kind", "model_kind", "status", "symbol", "interval")
    search_fields = ("=id", "symbol")
    raw_id_fields = ("backtest",)
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    readonly_fields = ("id", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("id", "kind", "model_kind", "status", "error", "version")}),
        ("Walk-forward backtest", {"fields": (("backtest", "fold"),)}),
        ("What is predicted", {"fields": ("symbol", "interval", "other_symbols", "features")}),
        (
            "Flags",
            {
                "fields": (
                    ("target", "window", "output_size", "shuffle_buffer", "train_split"),
                    ("units", "epochs", "batch_size", "dropout", "seed"),
                    ("optimizer", "loss", "activation", "scaler"),
                )
            },
        ),
        (
            "Data",
            {
                "fields": (
                    ("requested_start", "requested_end"),
                    ("data_start", "data_end", "bars"),
                    ("train_start", "train_end", "train_samples"),
                    ("test_start", "test_end", "test_samples"),
                )
            },
        ),
        (
            "Results and files",
            {
                "fields": (
                    "metrics",
                    "loss_history",
                    "library_versions",
                    "model_path",
                    "scaler_path",
                    "archived_artifacts",
                    ("created_at", "updated_at"),
                )
            },
        ),
    )


@admin.register(StockPrediction)
class StockPredictionAdmin(admin.ModelAdmin):
    list_display = (
        "session",
        "time",
        "steps_ahead",
        "predicted_close",
        "actual_close",
        "model_version",
        "made_at",
        "live",
    )
    list_filter = ("steps_ahead", "live")
    list_select_related = ("session",)
    raw_id_fields = ("session",)
    date_hierarchy = "time"
    show_full_result_count = False


@admin.register(Backtest)
class BacktestAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "model_kind",
        "status",
        "symbol",
        "interval",
        "folds",
        "train_window",
        "retrain_every",
        "seconds",
        "created_at",
    )
    list_filter = ("model_kind", "status", "symbol", "interval")
    search_fields = ("=id", "symbol")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    readonly_fields = ("id", "created_at", "updated_at")
