"""Rollup benchmark: hourly bars of 2M minute bars from the rollup against stored hourly bars.

    .venv/bin/python bench/rollup_benchmark.py                  # 2,000,000 minute rows
    .venv/bin/python bench/rollup_benchmark.py --engines sqlite

It reuses bench/import_benchmark.py's generated Gemini minute CSV (bench/out/) and its
scratch databases (SQLite in a temporary file; PostgreSQL `cryptooracle_bench_*` on
127.0.0.1:5432), and for each engine, in one run, times:
  (a) import_stocks' service on the file, rollups kept current as it stores (the product);
  (b) the same import with the rollup refresh switched off in the benchmark's process,
      so (a)/(b) is what rollups cost an import;
  (c) the raw-insert baseline of the import benchmark, for scale;
then, on (a)'s database, best of 3 each:
  (d) get_bars(symbol, "H") over the 2M minute bars: the rollup path;
  (e) get_bars over a stored series of the same number of hourly bars (a plain table of
      hourly bars, the same hours, stored under another symbol): the target is (d) <= 2x (e);
  (f) the on-the-fly aggregation of the minute bars that (d) replaces.
Figures are ratios measured in the same run, since the machine is shared.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import import_benchmark  # noqa: E402
from bench.import_benchmark import (  # noqa: E402
    _setup_django,
    fresh_database,
    on_each_engine,
    worker_baseline,
    worker_or_benchmark,
)

HOURLY_SYMBOL = "BTCUSDH"  # the same hours, stored as 1h bars


def worker_import(database_url: str, csv_path: str, rollups: str = "on") -> dict:
    _setup_django(database_url)
    import predictor.services.bars as bars
    import predictor.services.importing as importing

    if rollups == "off":  # the import as it was before rollups, for the cost of keeping them
        bars.refresh_rollups = lambda *args, **kwargs: None
        bars.add_rollups_of_new_bars = lambda *args, **kwargs: None  # the fast path's
        importing.ensure_rollups = lambda *args, **kwargs: None
    started = time.perf_counter()
    (result,) = importing.import_csv_files([Path(csv_path)])
    seconds = time.perf_counter() - started
    if result.error:
        raise SystemExit(result.error)
    return {"seconds": seconds, "inserted": result.inserted, "rows": result.rows_read}


def worker_reads(database_url: str, repeats: int = 3) -> dict:
    """Best of `repeats` for (d), (e) and (f), after storing the hourly series (untimed)."""
    _setup_django(database_url)
    import pandas as pd

    from predictor.models import Stock, StockRollup
    from predictor.selectors import get_bars
    from predictor.selectors.bars import _aggregate
    from predictor.services.bars import SeriesKey, insert_bars, refresh_planner_statistics

    hourly = _aggregate("BTCUSD", "1m", "H", None, None)
    if not Stock.objects.filter(symbol=HOURLY_SYMBOL).exists():
        frame = hourly[["open", "high", "low", "close", "volume"]].reset_index()
        insert_bars(SeriesKey(HOURLY_SYMBOL, "1h", "Gemini", "bench"), frame)
        refresh_planner_statistics()

    def best(function) -> tuple[float, pd.DataFrame]:
        timings, value = [], None
        for _ in range(repeats):
            started = time.perf_counter()
            value = function()
            timings.append(time.perf_counter() - started)
        return min(timings), value

    rollup_seconds, from_rollup = best(lambda: get_bars("BTCUSD", "H"))
    stored_seconds, from_stored = best(lambda: get_bars(HOURLY_SYMBOL, "H"))
    aggregate_seconds, aggregated = best(lambda: _aggregate("BTCUSD", "1m", "H", None, None))
    columns = ["open", "high", "low", "close", "volume", "bar_count", "provisional"]
    pd.testing.assert_frame_equal(
        from_rollup[columns], aggregated[columns], check_exact=False, rtol=1e-12
    )
    assert len(from_stored) == len(from_rollup)
    return {
        "minute_bars": Stock.objects.filter(symbol="BTCUSD").count(),
        "hourly_bars": len(from_rollup),
        "rollup_rows": StockRollup.objects.filter(symbol="BTCUSD").count(),
        "rollup_seconds": rollup_seconds,
        "stored_hourly_seconds": stored_seconds,
        "aggregate_seconds": aggregate_seconds,
    }


WORKERS: dict[str, Callable[..., dict]] = {
    "import": worker_import,
    "baseline": worker_baseline,
    "reads": worker_reads,
}


def run_worker(kind: str, database_url: str, *extra: str) -> dict:
    return import_benchmark.run_worker(kind, database_url, *extra, script=__file__)


def bench_engine(engine: str, csv_path: Path, workdir: Path) -> dict:
    print(f"\n== {engine} ==", flush=True)
    with_url = fresh_database(engine, workdir, "rollups")
    with_rollups = run_worker("import", with_url, str(csv_path), "on")
    without = run_worker(
        "import", fresh_database(engine, workdir, "norollups"), str(csv_path), "off"
    )
    baseline = run_worker("baseline", fresh_database(engine, workdir, "baseline"), str(csv_path))
    reads = run_worker("reads", with_url)
    figures = {
        "engine": engine,
        "rows": with_rollups["rows"],
        "import_seconds": with_rollups["seconds"],
        "import_without_rollups_seconds": without["seconds"],
        "raw_baseline_seconds": baseline["seconds"],
        **reads,
    }
    report(figures)
    return figures


def report(f: dict) -> None:
    verdict = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    cost = f["import_seconds"] / f["import_without_rollups_seconds"]
    print(f"rows: {f['rows']:,}; rollup rows {f['rollup_rows']:,}")
    print(f"(a) import with rollups:    {f['import_seconds']:.2f} s")
    print(f"(b) import without rollups: {f['import_without_rollups_seconds']:.2f} s")
    print(f"(c) raw insert baseline:    {f['raw_baseline_seconds']:.2f} s")
    print(f"(a)/(b) = {cost:.2f}; (a)/(c) = {f['import_seconds'] / f['raw_baseline_seconds']:.2f}")
    ratio = f["rollup_seconds"] / f["stored_hourly_seconds"]
    print(
        f"(d) get_bars H over {f['minute_bars']:,} minute bars -> {f['hourly_bars']:,} hourly "
        f"(rollup): {f['rollup_seconds'] * 1000:.1f} ms "
        f"(target < 200 ms: {verdict(f['rollup_seconds'] < 0.2)})"
    )
    print(f"(e) get_bars H over {f['hourly_bars']:,} stored hourly bars: "
          f"{f['stored_hourly_seconds'] * 1000:.1f} ms")  # fmt: skip
    print(f"(d)/(e) = {ratio:.2f} (target <= 2: {verdict(ratio <= 2)})")
    print(
        f"(f) aggregating the minute bars on the fly: {f['aggregate_seconds'] * 1000:.0f} ms "
        f"= {f['aggregate_seconds'] / f['rollup_seconds']:.0f}x (d)"
    )


def main() -> None:
    worker_or_benchmark(
        __doc__.split("\n\n")[0],
        WORKERS,
        lambda options: on_each_engine(options, bench_engine, "rollups"),
    )


if __name__ == "__main__":
    main()
