"""LightGBM on the same scaled windows as the LSTM (gradient boosting: FreqAI's default family).

One booster per forecast step is not needed: the kind predicts one bar ahead. The model is
saved in LightGBM's own text format, which holds trees and numbers and no code. Training
runs on one thread with LightGBM's deterministic mode, so a seed repeats a model exactly;
rows and columns are subsampled (0.8 each), so different seeds give different models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utils.forecasters.base import WindowForecaster, package_versions, register


@register
class LightGBMForecaster(WindowForecaster):
    kind = "lightgbm"
    label = "LightGBM"
    description = "LightGBM gradient-boosted trees on the flattened scaled window"
    model_suffix = ".txt"
    file_format = "LightGBM text model"

    def __init__(
        self,
        *,
        output_size: int = 1,
        target: str = "price",
        seed: int = 0,
        scaler: str = "minmax",
        trees: int = 100,
        leaves: int = 15,
    ):
        super().__init__(output_size=output_size, target=target, seed=seed, scaler=scaler)
        self.trees = trees
        self.leaves = leaves

    def _fit_scaled(self, inputs: np.ndarray, targets: np.ndarray) -> dict:
        import lightgbm

        params = {
            "objective": "regression",
            "num_leaves": self.leaves,
            "min_data_in_leaf": 5,
            "learning_rate": 0.05,
            # Row and column subsampling make the seed mean something: seeds are how
            # backtests show a model's spread, and without sampling every seed is one model.
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "feature_fraction": 0.8,
            "seed": self.seed % 2**31,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbosity": -1,
        }
        data = lightgbm.Dataset(inputs.reshape(len(inputs), -1), targets[:, 0])
        self.booster_ = lightgbm.train(params, data, num_boost_round=self.trees)
        return {}

    def _predict_scaled(self, inputs: np.ndarray) -> np.ndarray:
        flat = inputs.reshape(len(inputs), -1)
        return np.asarray(self.booster_.predict(flat), dtype="float64")[:, None]

    def _save_model(self, path: Path) -> None:
        self.booster_.save_model(str(path))

    def _load_state(self, model_path: Path, scaler_path: Path | None) -> None:
        import lightgbm

        # LightGBM prints a fatal log line of its own on a bad file: check the header first.
        with model_path.open("rb") as file:
            if file.readline().strip() != b"tree":
                raise ValueError("not a LightGBM text model (no 'tree' header)")
        self.booster_ = lightgbm.Booster(model_file=str(model_path))

    def library_versions(self) -> dict[str, str]:
        return package_versions(["numpy", "pandas", "scikit-learn", "lightgbm"])
