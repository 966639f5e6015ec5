"""The launch form: train_model's and backtest's main flags, checked by the commands' own code.

Nothing is validated here that the commands validate: the values go through the same
parsing (training_flags.given_training_options) and the same service checks
(validate_model_kind, prepare_training_data, prepare_backtest), so the page refuses exactly
what the command refuses, with the same one-line message. Empty fields mean the command's
default, as a flag left out does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.management.base import CommandError

from predictor.management.training_flags import (
    DEFAULTS,
    given_training_options,
    refuse_grid_flags,
)
from predictor.services import sweeps
from predictor.services.backtesting import (
    BacktestConfig,
    BacktestPlan,
    prepare_backtest,
)
from predictor.services.training import (
    TrainingConfig,
    prepare_training_data,
    validate_model_kind,
)
from utils.errors import CryptoOracleError
from utils.features import FEATURE_SETS, SCALERS, TARGETS
from utils.walk_forward import TRAIN_WINDOWS

WHAT_CHOICES = (
    ("evaluation", "Evaluation session (train/test split; forecast, evaluated, ranked)"),
    ("production", "Production session (all bars, forecast; can be updated)"),
    ("backtest", "Walk-forward backtest (folds x seeds)"),
    ("sweep", "Sweep over a grid of settings"),
)
BACKTEST_FIELDS = ("folds", "seeds", "retrain_every", "train_window", "fee_bps")
SWEEP_FIELDS = ("grid", "random", "sweep_backtest")


@dataclass(frozen=True)
class SweepRequest:
    """A checked sweep, as manage.py sweep would queue it (sweeps.queue_sweep's arguments)."""

    children: list
    base: TrainingConfig
    grid: dict
    seeds: int
    seed: int
    backtest: dict | None
    random_count: int | None


def _text(label: str, *, placeholder: str = "", help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        help_text=help_text,
        widget=forms.TextInput(attrs={"placeholder": placeholder}),
    )


def _select(label: str, choices, *, initial: str = "", required: bool = False) -> forms.CharField:
    """A select whose value is checked by the command's code, not by the form's choices, so a
    value that is not offered gets the command's message ("unknown symbol 'X' ...")."""
    return forms.CharField(
        label=label,
        required=required,
        initial=initial,
        widget=forms.Select(choices=list(choices)),
    )


def _int(label: str, default: int | None = None, *, help_text: str = "") -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        required=False,
        help_text=help_text,
        widget=forms.NumberInput(
            attrs={"placeholder": "" if default is None else str(default), "step": 1}
        ),
    )


def _float(label: str, default: float, *, step: str = "any") -> forms.FloatField:
    return forms.FloatField(
        label=label,
        required=False,
        widget=forms.NumberInput(attrs={"placeholder": f"{default:g}", "step": step}),
    )


def _pairs(values) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


class LaunchForm(forms.Form):
    """What to run (a session or a backtest) and the flags it runs with.

    After is_valid(), `config` holds the checked TrainingConfig (sessions) or `plan` the
    checked BacktestPlan (backtests), ready to be queued.
    """

    what = forms.ChoiceField(
        label="What", choices=WHAT_CHOICES, initial="evaluation", widget=forms.RadioSelect
    )
    symbol = _select("Symbol (-N)", [], required=True)
    interval = _text("Interval (-I)", placeholder=DEFAULTS["interval"], help_text="M, H, D or 4h")
    model_kind = _select("Model (-M)", [], initial=DEFAULTS["model_kind"])
    start = _text("From (-S)", placeholder="first stored bar", help_text="e.g. 2020-08-01")
    end = _text("Before (-E)", placeholder="all bars", help_text="exclusive")
    window = _int("Window, bars (-W)", DEFAULTS["window"])
    units = _int("Units (-U)", DEFAULTS["units"])
    epochs = _int("Epochs (-P)", DEFAULTS["epochs"])
    batch_size = _int("Batch size (-B)", DEFAULTS["batch_size"])
    dropout = _float("Dropout (-D)", DEFAULTS["dropout"])
    train_split = _float("Training share (-T)", DEFAULTS["train_split"])
    scaler = _select("Scaler (-C)", _pairs(SCALERS), initial=DEFAULTS["scaler"])
    target = _select("Target", _pairs(TARGETS), initial=DEFAULTS["target"])
    features = _select("Features", _pairs(FEATURE_SETS), initial=DEFAULTS["features"])
    other_symbols = _text("Other symbols", placeholder="none", help_text="comma-separated")
    seed = _int("Seed", help_text="empty: a random one, recorded")
    folds = _int("Folds", 5)
    seeds = _int("Seeds", 1)
    retrain_every = _int("Refit every N bars", help_text="empty: once per fold")
    train_window = _select("Training window", _pairs(TRAIN_WINDOWS), initial="expanding")
    fee_bps = _float("Fee, bps", 0.0)
    grid = forms.CharField(
        label="Grid (--grid)",
        required=False,
        help_text="one name=value1,value2 a line, e.g. window=12,24",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "window=12,24\nunits=4,8"}),
    )
    random = _int("Random K combinations", help_text="empty: every combination")
    sweep_backtest = forms.BooleanField(
        label="Each combination a backtest", required=False, help_text="uses the backtest fields"
    )

    def __init__(self, *args, symbols: list[tuple[str, str]], model_kinds, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["symbol"].widget.choices = list(symbols)
        self.fields["model_kind"].widget.choices = list(model_kinds)
        self.config: TrainingConfig | None = None
        self.plan: BacktestPlan | None = None
        self.sweep: SweepRequest | None = None

    @property
    def is_backtest(self) -> bool:
        return self.cleaned_data.get("what") == "backtest"

    def training_options(self) -> dict:
        """The fields as train_model's parsed options (what its flags would have given)."""
        data = self.cleaned_data
        options = {
            name: data.get(name)
            for name in (
                *("symbol", "interval", "model_kind", "start", "end", "window", "units"),
                *("epochs", "batch_size", "dropout", "train_split", "scaler", "target"),
                *("features", "other_symbols", "seed"),
            )
        }
        options = {name: (None if value == "" else value) for name, value in options.items()}
        if data.get("what") in ("evaluation", "production"):
            options["evaluation"] = "true" if data["what"] == "evaluation" else "false"
        return given_training_options(options)

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            given = self.training_options()
            if self.cleaned_data.get("what") == "sweep":
                self.sweep = self._sweep(given)
            elif self.is_backtest:
                self.plan = prepare_backtest(self._backtest_config(given))
            else:
                config = TrainingConfig(**given)
                validate_model_kind(config)  # the command's order: the kind, then the data
                prepare_training_data(config)
                self.config = config
        except (CommandError, CryptoOracleError) as error:
            raise forms.ValidationError(str(error), code="flags") from error
        return cleaned

    def _backtest_options(self) -> dict:
        """--folds, --retrain-every, --train-window, --fee-bps with the commands' defaults."""
        data = self.cleaned_data
        train_window = data.get("train_window") or "expanding"
        if train_window not in TRAIN_WINDOWS:  # backtest's and sweep's own check and words
            raise CommandError(
                f"--train-window {train_window!r}: choose one of {', '.join(TRAIN_WINDOWS)}"
            )
        return {
            "folds": 5 if data.get("folds") is None else data["folds"],
            "retrain_every": data.get("retrain_every"),
            "train_window": train_window,
            "fee_bps": 0.0 if data.get("fee_bps") is None else data["fee_bps"],
        }

    def _seeds(self) -> int:
        return 1 if self.cleaned_data.get("seeds") is None else self.cleaned_data["seeds"]

    def _backtest_config(self, given: dict) -> BacktestConfig:
        given.pop("evaluation", None)
        return BacktestConfig(
            training=TrainingConfig(**given), seeds=self._seeds(), **self._backtest_options()
        )

    def _sweep(self, given: dict) -> SweepRequest:
        """manage.py sweep's steps: parse the grid, refuse a setting given twice, expand,
        sample, and check every combination against the bars."""
        data = self.cleaned_data
        given.pop("evaluation", None)
        seed = given.pop("seed", None)
        seed = seed if seed is not None else secrets.randbelow(2**31 - 1000)
        backtest = self._backtest_options() if data.get("sweep_backtest") else None
        entries = [line.strip() for line in (data.get("grid") or "").splitlines() if line.strip()]
        grid = sweeps.parse_grid(entries)
        refuse_grid_flags(grid, given, entries)
        combinations = sweeps.expand_grid(grid)
        if data.get("random") is not None:
            combinations = sweeps.sample_combinations(combinations, data["random"], seed)
        base = TrainingConfig(**given)
        children = sweeps.check_sweep(
            base, combinations, seeds=self._seeds(), seed=seed, backtest=backtest
        )
        return SweepRequest(children, base, grid, self._seeds(), seed, backtest, data.get("random"))

    def job_label(self) -> str:
        """How the queued training job is listed: 'train lstm BTCUSD H (evaluation)'."""
        config = self.config
        assert config is not None, "job_label() is for a valid training form"
        kind = "evaluation" if config.evaluation else "production"
        return f"train {config.model_kind} {config.symbol} {config.interval} ({kind})"
