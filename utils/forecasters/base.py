"""The forecaster interface every model kind implements, and the registry of kinds.

Framework-free (no Django). In the spirit of Darts' ForecastingModel and scikit-learn's
estimators: configuration in the constructor, learned state in attributes ending with "_",
`fit` returns self, `predict` returns prices, and `save`/`load` use safe file formats only
(never pickle: loading a pickle runs code). Heavy libraries (TensorFlow, LightGBM, Prophet)
are imported inside methods, so the registry can be read by the web app and by flag
validation without paying for them.
"""

from __future__ import annotations

import inspect
import json
import os
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from utils.errors import CryptoOracleError
from utils.features import (
    Scaler,
    Windows,
    make_scaler,
    scaler_from_json,
    scaler_to_json,
    target_prices,
)


class ArtifactError(CryptoOracleError):
    """A model or scaler file is missing, unreadable or tampered with: one line naming it."""

    def __init__(self, path: Path | str, reason: str):
        first_line = (str(reason).strip().splitlines() or ["unreadable"])[0]
        super().__init__(f"{path}: {first_line}")
        self.path = str(path)


@dataclass(frozen=True)
class TrainingPart:
    """What a forecaster learns from: the training windows, their target times, and the
    training rows of model values (scalers are fitted on these and on nothing later)."""

    windows: Windows
    times: pd.DatetimeIndex
    rows: np.ndarray
    columns: tuple[str, ...] = ()


REGISTRY: dict[str, type[Forecaster]] = {}


def register(cls: type[Forecaster]) -> type[Forecaster]:
    """Class decorator: the kind becomes a `-M` choice, a ModelKind choice and a constraint
    value (a new kind needs a migration for the latter two)."""
    if cls.kind in REGISTRY:
        raise ValueError(f"model kind {cls.kind!r} is registered twice")
    REGISTRY[cls.kind] = cls
    return cls


class Forecaster(ABC):
    """One model kind. Subclasses set the class attributes and implement fit/predict/save/load.

    Class attributes describe what the kind can honour, so the services check them without a
    branch per kind: `production` (may make production sessions, which forecast beyond the
    last bar and can be updated with -X), `multi_step` (may predict more than one bar
    ahead), `close_only` (models the predicted close alone: no extra features, symbols or
    log-return target), `uses_scaler` (writes a scaler file), `trains_network` (the network
    flags -U -E -B -D -Z -L -A and the shuffle buffer mean something to it), `model_suffix`
    (the model file's suffix).
    """

    kind: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    production: ClassVar[bool] = False
    multi_step: ClassVar[bool] = False
    close_only: ClassVar[bool] = False
    uses_scaler: ClassVar[bool] = True
    trains_network: ClassVar[bool] = False
    model_suffix: ClassVar[str] = ".json"
    file_format: ClassVar[str] = ""
    scaler_: Scaler  # the kinds that use one (uses_scaler): set by fit and by load

    def __init__(self, *, output_size: int = 1, target: str = "price", seed: int = 0):
        self.output_size = output_size
        self.target = target
        self.seed = seed

    @classmethod
    def from_options(cls, **options: Any) -> Forecaster:
        """Build from a superset of settings (a session's flags), keeping the ones it takes."""
        accepted = {
            name
            for klass in cls.__mro__
            if "__init__" in vars(klass)
            for name in inspect.signature(vars(klass)["__init__"]).parameters
        }
        return cls(**{name: value for name, value in options.items() if name in accepted})

    @abstractmethod
    def fit(self, part: TrainingPart) -> Forecaster:
        """Learn from the training part only; return self."""

    @abstractmethod
    def predict(self, windows: Windows, times: pd.DatetimeIndex) -> np.ndarray:
        """Price forecasts (N, output size) for the bars after each window; `times` are the
        opening times of each window's first forecast bar (Prophet forecasts by time)."""

    @abstractmethod
    def save(self, model_path: Path, scaler_path: Path | None) -> list[Path]:
        """Write the learned state (atomically); return the files written."""

    @abstractmethod
    def _load_state(self, model_path: Path, scaler_path: Path | None) -> None:
        """Read the learned state back; raise anything on a bad file (load names it)."""

    @classmethod
    def load(cls, model_path: Path | str, scaler_path: Path | str | None, **options: Any):
        """A fitted forecaster from its files, or ArtifactError naming the file at fault."""
        forecaster = cls.from_options(**options)
        named = [("model", model_path)] + ([("scaler", scaler_path)] if cls.uses_scaler else [])
        for what, path in named:
            if not path:  # Path("") would name the current folder
                raise ArtifactError(f"({what} file)", "none recorded")
            if not Path(path).is_file():
                raise ArtifactError(path, "file not found")
        scaler = Path(scaler_path) if cls.uses_scaler and scaler_path else None
        if scaler is not None:
            try:
                forecaster.scaler_ = read_scaler(scaler)
            except Exception as error:
                raise ArtifactError(scaler, f"not a valid scaler ({error})") from error
        try:
            forecaster._load_state(Path(model_path), scaler)
        except ArtifactError:
            raise
        except Exception as error:
            raise ArtifactError(
                model_path, f"not a valid {cls.file_format} ({type(error).__name__}: {error})"
            ) from error
        return forecaster

    def can_update(self) -> bool:
        """Whether `update` (fine-tuning on new bars, -X) is supported."""
        return False

    def update(self, windows: Windows) -> dict:
        raise NotImplementedError(f"{self.kind} sessions cannot be updated")

    def save_model_only(self, model_path: Path) -> Path:
        """Replace the model file alone, after `update` (the kinds that can update)."""
        raise NotImplementedError(f"{self.kind} sessions cannot be updated")

    def library_versions(self) -> dict[str, str]:
        """Versions of what can change this kind's numbers (read from package metadata)."""
        return package_versions(["numpy", "pandas", "scikit-learn"])


class WindowForecaster(Forecaster):
    """A model of scaled windows: scale -> predict -> invert -> price, written once here.

    Subclasses learn a map from scaled windows (N, W, F) to scaled targets (N, O) with
    `_fit_scaled` and apply it with `_predict_scaled`; the scaler is fitted on the training
    rows only and saved as JSON beside the model.
    """

    def __init__(
        self, *, output_size: int = 1, target: str = "price", seed: int = 0, scaler: str = "minmax"
    ):
        super().__init__(output_size=output_size, target=target, seed=seed)
        self.scaler = scaler

    scaler_: Scaler

    def fit(self, part: TrainingPart) -> WindowForecaster:
        self.scaler_ = make_scaler(self.scaler).fit(part.rows)
        self.columns_ = list(part.columns)
        self.fitted_on_rows_ = len(part.rows)
        windows = part.windows
        self.history_ = self._fit_scaled(
            self.scaler_.transform(windows.inputs),
            self.scaler_.transform_target(windows.targets, windows.inputs),
        )
        return self

    def predict(self, windows: Windows, times: pd.DatetimeIndex | None = None) -> np.ndarray:
        if len(windows) == 0:
            return np.zeros((0, self.output_size))
        scaled = self._predict_scaled(self.scaler_.transform(windows.inputs))
        model_space = self.scaler_.inverse_target(scaled, windows.inputs)
        return target_prices(model_space, windows.last_close, self.target)

    @abstractmethod
    def _fit_scaled(self, inputs: np.ndarray, targets: np.ndarray) -> dict:
        """Fit on scaled windows and targets; return a loss history (may be empty)."""

    @abstractmethod
    def _predict_scaled(self, inputs: np.ndarray) -> np.ndarray:
        """Scaled targets (N, output size) for scaled windows."""

    @abstractmethod
    def _save_model(self, path: Path) -> None:
        """Write the model to exactly this path (the caller renames it into place)."""

    def save_model_only(self, model_path: Path) -> Path:
        """Replace the model file alone (an update keeps the scaler the weights know)."""
        return write_atomically(Path(model_path), self._save_model)

    def save(self, model_path: Path, scaler_path: Path | None) -> list[Path]:
        if scaler_path is None:
            raise ValueError(f"{self.kind} needs a scaler file")
        written = []
        try:
            written.append(write_atomically(Path(model_path), self._save_model))
            written.append(
                write_text_atomically(
                    Path(scaler_path),
                    scaler_to_json(
                        self.scaler_,
                        columns=getattr(self, "columns_", []),
                        target=self.target,
                        fitted_on_rows=getattr(self, "fitted_on_rows_", None),
                        kind=self.kind,
                    ),
                )
            )
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return written


# Safe files ------------------------------------------------------------------------------------


def temporary_path(final: Path) -> Path:
    """A hidden name in the same folder (so os.replace is atomic) that keeps the suffix."""
    return final.with_name(f".{final.stem}.{uuid.uuid4().hex}.tmp{final.suffix}")


def write_atomically(path: Path, write) -> Path:
    """`write(temporary)` then rename into place: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def read_json(path: Path) -> dict:
    """A JSON object from a file, refusing NaN/Infinity (a tampered number is an error)."""

    def refuse(constant: str):
        raise ValueError(f"{constant} is not a number this file may hold")

    state = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    if not isinstance(state, dict):
        raise ValueError("not a JSON object")
    return state


def read_scaler(path: Path) -> Scaler:
    """A scaler from its JSON; the scaler itself refuses a scale of 0 or a non-finite value."""
    read_json(path)  # the NaN/Infinity check
    return scaler_from_json(path.read_text(encoding="utf-8"))


def finite_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype="float64")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds a value that is not finite")
    return array


def package_versions(names: list[str]) -> dict[str, str]:
    import platform
    from importlib.metadata import version

    return {"python": platform.python_version(), **{name: version(name) for name in names}}
