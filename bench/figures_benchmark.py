"""Figures benchmark: every chart built as plain dicts (utils/charts.py) against the same
figure built through plotly's validated objects, in one run.

    .venv/bin/python bench/figures_benchmark.py                 # reference: da3306f
    .venv/bin/python bench/figures_benchmark.py --reference REV  # another git revision

The reference is utils/charts.py as it was at a git revision before the switch (plotly's
go.Scatter/go.Figure and PlotlyJSONEncoder), loaded from git beside the current module. Each
figure gets chart-sized inputs (MAX_POINTS = 2,000 points a trace, the evaluation page's
sizes), and the run times building it and serialising it to the JSON the page embeds, best of
`--repeat`, for both, and checks the two JSON texts decode to the same object. A third column
is `json.dumps` alone of that payload: the floor. Prints one row per figure with the ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from utils import charts  # noqa: E402

REFERENCE = "da3306f"  # the last commit whose utils/charts.py built plotly objects


def reference_module(revision: str):
    text = subprocess.run(
        ["git", "show", f"{revision}:utils/charts.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "charts_reference.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("charts_reference", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def inputs() -> dict[str, tuple[str, tuple, dict]]:
    """{figure: (builder name, args, kwargs)} at the sizes the pages draw."""
    rng = np.random.default_rng(0)
    n = charts.MAX_POINTS
    index = pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC")
    close = pd.Series(9000 + rng.normal(0, 30, n).cumsum(), index=index)
    bars = pd.DataFrame(
        {
            "open": close.shift(1, fill_value=close.iloc[0]),
            "high": close + 20,
            "low": close - 20,
            "close": close,
            "volume": rng.uniform(1, 50, n),
        },
        index=index,
    )
    predicted = close * (1 + rng.normal(0, 0.003, n))
    future = pd.Series(
        close.iloc[-1], index=pd.date_range(index[-1], periods=4, freq="h", tz="UTC")[1:]
    )
    half = n // 2
    equity = {
        name: pd.Series(1 + rng.normal(0, 0.01, n).cumsum(), index=index)
        for name in ("Strategy, train", "Buy and hold, train", "Strategy, test", "Buy and hold")
    }
    history = [
        {"version": 1, "loss": list(rng.uniform(0, 1, 30)), "val_loss": list(rng.uniform(0, 1, 30))}
    ]
    return {
        "price, line": ("price_volume_figure", (bars, "BTCUSD · 1h", "line"), {}),
        "price, candles": ("price_volume_figure", (bars, "BTCUSD · 1h", "candles"), {}),
        "forecast": (
            "forecast_figure",
            (close, predicted.iloc[:half], future, "forecast"),
            {"test": predicted.iloc[half:], "live": predicted.iloc[-50:]},
        ),
        "train/test": ("train_test_figure", (close, predicted, index[half], "evaluation"), {}),
        "loss": ("loss_figure", (history,), {}),
        "equity": ("equity_figure", (equity, "equity"), {}),
    }


def best(seconds: list[float]) -> float:
    return min(seconds) * 1000


def timed(function: Callable[..., Any], repeat: int) -> tuple[float, Any]:
    runs: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        runs.append(time.perf_counter() - started)
    return best(runs), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default=REFERENCE, help="git revision of the old module")
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    reference = reference_module(options.reference)
    print(
        f"{'figure':16} {'plotly objects':>15} {'plain dicts':>12} {'json.dumps':>11} "
        f"{'ratio':>6}  same JSON"
    )
    totals = [0.0, 0.0]
    for name, (builder, args, kwargs) in inputs().items():
        old_ms, old_json = timed(
            lambda b=builder, a=args, k=kwargs: reference.figure_json(
                {"f": getattr(reference, b)(*a, **k)}
            ),
            options.repeat,
        )
        new_ms, new_json = timed(
            lambda b=builder, a=args, k=kwargs: charts.figure_json(
                {"f": getattr(charts, b)(*a, **k)}
            ),
            options.repeat,
        )
        payload = json.loads(new_json)
        dumps_ms, _ = timed(lambda p=payload: json.dumps(p, separators=(",", ":")), options.repeat)
        same = json.loads(old_json) == payload
        totals[0] += old_ms
        totals[1] += new_ms
        print(
            f"{name:16} {old_ms:>12.2f} ms {new_ms:>9.2f} ms {dumps_ms:>8.2f} ms "
            f"{old_ms / new_ms:>5.1f}x  {'yes' if same else 'NO'}"
        )
    print(
        f"{'all six':16} {totals[0]:>12.2f} ms {totals[1]:>9.2f} ms {'':>11} "
        f"{totals[0] / totals[1]:>5.1f}x"
    )


if __name__ == "__main__":
    main()
