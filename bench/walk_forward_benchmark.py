"""Walk-forward benchmark: every model kind backtested on the shipped BTCUSD bars.

    .venv/bin/python bench/walk_forward_benchmark.py                 # hourly and daily, all kinds
    .venv/bin/python bench/walk_forward_benchmark.py --bars D --kinds persistence,linear

Imports data/gemini_BTCUSD_1hr.csv into a fresh SQLite database (bench/out/walk_forward.sqlite3)
and runs `backtest` for each model kind (and the window models again with --target
log_return): 5 folds x 3 seeds, refit once per fold, expanding
training window, fee 10 bps per unit traded. Prints one markdown table per bar length, the
figures out-of-sample only: pooled rel MAE (MAE over persistence's on the same bars, so below 1
beats persistence), long/short return after costs and Sharpe, each as the mean [min, max]
across the 3 seeds' pooled results, the same across the 15 fold x seed results, buy and hold
over the same stretch, and the wall time of the whole backtest beside the persistence
backtest's (the baseline measured in the same run: the backtest machinery with no model).
Writes bench/out/walk_forward.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_benchmark import OUT, _setup_django, fresh_database  # noqa: E402

KINDS = ("persistence", "linear", "lstm", "gru", "lightgbm", "prophet")
# Run again with --target log_return: the window models learn the next bar's log return, which
# does not ask them to extrapolate a price level they never saw (trees cannot at all).
LOG_RETURN_KINDS = ("linear", "lstm", "gru", "lightgbm")
# Per bar length: the data flags, and the recurrent models' training flags (small enough for
# a 2-core machine; the README says so beside the table).
SETUPS: dict[str, dict[str, dict[str, Any]]] = {
    "H": {
        "data": {"interval": "H", "window": 24, "start": "2019-01-01"},
        "recurrent": {"epochs": 3, "units": 32, "batch_size": 64},
    },
    "D": {
        "data": {"interval": "D", "window": 14},
        "recurrent": {"epochs": 20, "units": 32, "batch_size": 32},
    },
}
FOLDS, SEEDS, FEE_BPS, BASE_SEED = 5, 3, 10.0, 7


def run(bars: str, kinds: list[str]) -> list[dict]:
    from datetime import UTC, datetime

    from predictor.services.backtesting import BacktestConfig, prepare_backtest, run_backtest
    from predictor.services.training import TrainingConfig

    setup = SETUPS[bars]
    data = dict(setup["data"])
    if "start" in data:
        data["start"] = datetime.fromisoformat(data["start"]).replace(tzinfo=UTC)
    rows = []
    for name in kinds:
        kind, _, target = name.partition(":")
        training = {**data, "model_kind": kind, "seed": BASE_SEED, "target": target or "price"}
        if kind in ("lstm", "gru"):
            training |= setup["recurrent"]
        config = BacktestConfig(
            training=TrainingConfig(symbol="BTCUSD", **training),
            folds=FOLDS,
            seeds=SEEDS,
            fee_bps=FEE_BPS,
        )
        started = time.perf_counter()
        backtest = run_backtest(prepare_backtest(config))
        seconds = time.perf_counter() - started
        results = backtest.results
        pooled = next(iter(results["pooled"].values()))
        rows.append(
            {
                "bars": bars,
                "kind": kind if not target else f"{kind}, {target.replace('_', ' ')}",
                "seconds": seconds,
                "test_bars": pooled["bars"],
                "first": pooled["first"],
                "last": pooled["last"],
                "buy_and_hold": pooled["buy_and_hold"]["total_return"],
                "spread": results["spread"],
                "seed_p_values": [
                    p["direction_test"]["t_p_value"] for p in results["pooled"].values()
                ],
                "backtest_id": str(backtest.id),
            }
        )
        print(f"{bars} {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return rows


def spread_text(values: dict, spec: str) -> str:
    if values["mean"] is None:
        return "-"
    return (
        f"{format(values['mean'], spec)} [{format(values['min'], spec)}, "
        f"{format(values['max'], spec)}]"
    )


def table(rows: list[dict]) -> str:
    baseline = next((row["seconds"] for row in rows if row["kind"] == "persistence"), None)
    first = rows[0]
    lines = [
        f"{first['bars']} bars, test stretch {first['first'][:10]} to {first['last'][:10]} "
        f"({first['test_bars']} bars), buy and hold {first['buy_and_hold']:+.1%}:",
        "",
        "| model | rel MAE, seeds | rel MAE, folds x seeds | long/short, seeds | "
        "long/short, folds x seeds | Sharpe, seeds | Sharpe, folds x seeds | time | "
        "time / persistence's |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        seeds, folds = row["spread"]["across_seeds"], row["spread"]["across_folds"]
        ratio = f"{row['seconds'] / baseline:.1f}" if baseline else "-"
        lines.append(
            f"| {row['kind']} | {spread_text(seeds['rel_mae'], '.4f')} | "
            f"{spread_text(folds['rel_mae'], '.4f')} | "
            f"{spread_text(seeds['strategy_return'], '+.1%')} | "
            f"{spread_text(folds['strategy_return'], '+.1%')} | "
            f"{spread_text(seeds['sharpe'], '.2f')} | {spread_text(folds['sharpe'], '.2f')} | "
            f"{row['seconds']:.0f} s | {ratio} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """The README's compact table: per model, the seeds' pooled figures only."""
    lines = [
        "| model | rel MAE | long/short after costs | Sharpe | direction t-test p (per seed) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        seeds = row["spread"]["across_seeds"]
        p_values = ", ".join(f"{p:.2g}" if p is not None else "-" for p in row["seed_p_values"])
        lines.append(
            f"| {row['kind']} | {spread_text(seeds['rel_mae'], '.4f')} | "
            f"{spread_text(seeds['strategy_return'], '+.1%')} | "
            f"{spread_text(seeds['sharpe'], '.2f')} | {p_values} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", default="H,D", help="bar lengths to run: H, D or H,D")
    parser.add_argument(
        "--kinds",
        default=",".join([*KINDS, *(f"{kind}:log_return" for kind in LOG_RETURN_KINDS)]),
        help="model kinds, comma-separated; kind:log_return for the log-return target",
    )
    args = parser.parse_args()
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    OUT.mkdir(parents=True, exist_ok=True)
    url = fresh_database("sqlite", OUT, "walk_forward")
    _setup_django(url)
    from predictor.services.importing import import_csv_files

    import_csv_files([ROOT / "data" / "gemini_BTCUSD_1hr.csv"])
    results = {}
    for bars in [part.strip() for part in args.bars.split(",") if part.strip()]:
        results[bars] = run(bars, kinds)
        print(table(results[bars]), "\n", flush=True)
        print(summary(results[bars]), "\n", flush=True)
    (OUT / "walk_forward.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
