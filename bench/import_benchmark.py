"""Import benchmark: import_stocks against the engines' fastest raw insert, in one run.

    .venv/bin/python bench/import_benchmark.py                # 2,000,000 minute rows
    .venv/bin/python bench/import_benchmark.py --rows 5500000 # Gemini's whole BTCUSD history
    .venv/bin/python bench/import_benchmark.py --engines sqlite

For each engine (SQLite in a temporary file, PostgreSQL in a scratch database on
127.0.0.1:5432) it times, on freshly migrated databases:
  (a) import_stocks' service on a generated Gemini-layout minute CSV, in its own process so
      its peak memory (ru_maxrss) is its own, split at its first insert into reading and
      judging the file, and storing it;
  (b) the baseline: the same parsed rows inserted with the engine's fastest path
      (sqlite3 executemany in one transaction; PostgreSQL COPY into the table); on SQLite
      also (b') with the constant columns written once into the statement;
then a second import of the same file into (a)'s database, and the selector turning the
stored minute bars into hourly bars against a baseline that only fetches the raw rows.
Figures are ratios to baselines measured in the same run, since these machines are noisy.
(a) includes reading and judging the file; (b) is timed from parsed rows, so the import's
storing phase is also reported alone against (b).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"
SCRATCH_DB = "cryptooracle_bench"
T = TypeVar("T")


def generate_minute_csv(rows: int, path: Path, seed: int = 7) -> Path:
    """A Gemini-layout minute file: prefatory line, newest first, ms and s timestamps mixed."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    end = 1_609_286_400  # 2020-12-30 00:00 UTC, like the real hourly file
    times = end - 60 * np.arange(rows, dtype="int64")
    close = 20_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, rows)))[::-1]
    open_ = np.concatenate([close[1:], close[-1:]])
    spread = np.abs(rng.normal(0, 0.0005, rows)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    unix = np.where(times >= 1_546_300_800, times * 1000, times)  # ms from 2019 on
    frame = pd.DataFrame(
        {
            "Unix Timestamp": unix,
            "Date": pd.to_datetime(times, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
            "Symbol": "BTCUSD",
            "Open": open_.round(2),
            "High": high.round(2),
            "Low": low.round(2),
            "Close": close.round(2),
            "Volume": rng.gamma(1.5, 2.0, rows).round(8),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="") as handle:
        handle.write("Created on 12-30-2020,https://www.CryptoDataDownload.com\r\n")
        frame.to_csv(handle, index=False, lineterminator="\r\n")
    partial.rename(path)
    return path


# --- workers: each runs in its own process -------------------------------------------------


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cryptooracle.settings")
    os.environ["DJANGO_RUNTIME_ENVIRONMENT"] = "development"
    import django

    django.setup()


def worker_import(database_url: str, csv_path: str) -> dict:
    _setup_django(database_url)
    import predictor.services.importing as importing

    store_started: list[float] = []
    insert_bars = importing.insert_bars

    def timed_insert_bars(*args, **kwargs):  # notes when reading and judging gave way to storing
        if not store_started:
            store_started.append(time.perf_counter())
        return insert_bars(*args, **kwargs)

    importing.insert_bars = timed_insert_bars
    started = time.perf_counter()
    (result,) = importing.import_csv_files([Path(csv_path)], chunk_rows=100_000)
    seconds = time.perf_counter() - started
    if result.error:
        raise SystemExit(result.error)
    read_seconds = (store_started[0] - started) if store_started else seconds
    return {
        "seconds": seconds,
        "read_seconds": read_seconds,
        "inserted": result.inserted,
        "rows": result.rows_read,
    }


def worker_baseline(database_url: str, csv_path: str, constants: str = "bound") -> dict:
    """Parse with the project's reader (untimed), then time only the raw insert.

    `constants="literal"` (SQLite only) writes symbol, bar length, exchange and source into
    the statement once instead of binding them for every row: what the import does.
    """
    _setup_django(database_url)
    from django.db import connection

    from predictor.services.bars import sqlite_datetime_text
    from utils.bar_files import read_bar_file

    bars = read_bar_file(Path(csv_path)).bars
    columns = '"symbol", "bar_length", "time", "open", "high", "low", "close", "volume", '
    columns += '"exchange", "source"'
    connection.ensure_connection()
    raw = connection.connection
    if connection.vendor == "sqlite":
        values = [bars[c].tolist() for c in ("open", "high", "low", "close", "volume")]
        times = sqlite_datetime_text(bars["time"]).tolist()
        rows = [
            ("BTCUSD", "1m", t, *v, "Gemini", "bench") for t, *v in zip(times, *values, strict=True)
        ]
        placeholders = "?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
        if constants == "literal":
            rows = [row[2:8] for row in rows]
            placeholders = "'BTCUSD', '1m', ?, ?, ?, ?, ?, ?, 'Gemini', 'bench'"
        started = time.perf_counter()
        raw.execute("BEGIN")
        raw.executemany(f"INSERT INTO predictor_stock ({columns}) VALUES ({placeholders})", rows)
        raw.execute("COMMIT")
    else:
        buffer = full_rows_copy_buffer(bars)
        started = time.perf_counter()
        with raw.cursor() as cursor:
            cursor.copy_expert(f"COPY predictor_stock ({columns}) FROM STDIN", buffer)
        raw.commit()
    return {"seconds": time.perf_counter() - started, "rows": len(bars)}


def full_rows_copy_buffer(bars: pd.DataFrame) -> io.StringIO:
    """Every column of the table as COPY text, prepared before the clock starts."""
    utc = bars["time"].dt.tz_convert("UTC").to_numpy(dtype="datetime64[s]")
    frame = pd.DataFrame(
        {
            "symbol": "BTCUSD",
            "bar_length": "1m",
            "time": np.char.add(np.datetime_as_string(utc, unit="s"), "+00:00"),
            **{c: bars[c].to_numpy() for c in ("open", "high", "low", "close", "volume")},
            "exchange": "Gemini",
            "source": "bench",
        }
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, sep="\t", header=False, index=False, float_format="%.17g")
    buffer.seek(0)
    return buffer


def worker_selector(database_url: str, repeats: int = 3) -> dict:
    """Best of `repeats`: 2M minute bars to hourly, against fetching the same raw rows."""
    _setup_django(database_url)
    from django.db import connection

    from predictor.selectors import get_bars

    def fetch_raw() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT time, open, high, low, close, volume FROM predictor_stock "
                "WHERE symbol = %s AND bar_length = %s ORDER BY time",
                ["BTCUSD", "1m"],
            )
            return len(cursor.fetchall())

    def best(function: Callable[[], T]) -> tuple[float, T]:
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            value = function()
            timings.append(time.perf_counter() - started)
        return min(timings), value

    raw_seconds, raw_rows = best(fetch_raw)
    selector_seconds, hourly = best(lambda: get_bars("BTCUSD", "H"))
    return {
        "seconds": selector_seconds,
        "baseline_seconds": raw_seconds,
        "minute_bars": raw_rows,
        "hourly_bars": len(hourly),
    }


WORKERS: dict[str, Callable[..., dict]] = {
    "import": worker_import,
    "baseline": worker_baseline,
    "selector": worker_selector,
}


# --- orchestration ---------------------------------------------------------------------------


def peak_memory_mib() -> float:
    """This process's peak resident memory (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that across fork and exec, so a worker would
    report the parent's peak (the parent that generated a 5.5-million-row CSV) as its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(kind: str, database_url: str, *extra: str, script: str = __file__) -> dict:
    """Run one of `script`'s workers in a fresh process (Django binds one database per
    process); it reports its own figures and peak memory."""
    command = [sys.executable, script, "--worker", kind, "--database-url", database_url, *extra]
    result = subprocess.run(command, stdout=subprocess.PIPE, cwd=ROOT, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{kind} worker failed with status {result.returncode}")
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def fresh_database(engine: str, workdir: Path, name: str) -> str:
    """An empty, migrated database for one measurement, returned as a DATABASE_URL."""
    if engine == "sqlite":
        path = workdir / f"{name}.sqlite3"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        database = f"{SCRATCH_DB}_{name}"
        for statement in (f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}"):
            subprocess.run(
                ["psql", f"{POSTGRES_SERVER}/postgres", "-qc", statement],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        url = f"{POSTGRES_SERVER}/{database}"
    environment = {**os.environ, "DATABASE_URL": url, "DJANGO_RUNTIME_ENVIRONMENT": "development"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0", "--no-input"],
        cwd=ROOT,
        env=environment,
        check=True,
    )
    return url


def bench_engine(engine: str, csv_path: Path, workdir: Path) -> dict:
    print(f"\n== {engine} ==", flush=True)
    import_url = fresh_database(engine, workdir, "import")
    first = run_worker("import", import_url, str(csv_path))
    second = run_worker("import", import_url, str(csv_path))
    baseline = run_worker("baseline", fresh_database(engine, workdir, "baseline"), str(csv_path))
    literal = None
    if engine == "sqlite":
        url = fresh_database(engine, workdir, "literal")
        literal = run_worker("baseline", url, str(csv_path), "literal")
    selector = run_worker("selector", import_url)
    figures = {
        "engine": engine,
        "rows": first["rows"],
        "import_rows_per_s": first["rows"] / first["seconds"],
        "baseline_rows_per_s": baseline["rows"] / baseline["seconds"],
        "ratio": (first["rows"] / first["seconds"]) / (baseline["rows"] / baseline["seconds"]),
        "import_seconds": first["seconds"],
        "read_seconds": first["read_seconds"],
        "store_ratio": baseline["seconds"] / (first["seconds"] - first["read_seconds"]),
        "baseline_literal_seconds": literal["seconds"] if literal else None,
        "baseline_seconds": baseline["seconds"],
        "reimport_seconds": second["seconds"],
        "reimport_inserted": second["inserted"],
        "import_peak_rss_mib": first["peak_rss_mib"],
        "selector_seconds": selector["seconds"],
        "selector_raw_fetch_seconds": selector["baseline_seconds"],
        "selector_minute_bars": selector["minute_bars"],
        "selector_hourly_bars": selector["hourly_bars"],
    }
    report(figures)
    return figures


def report(f: dict) -> None:
    verdict = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    print(f"rows: {f['rows']:,}")
    print(f"(a) import_stocks: {f['import_seconds']:.2f} s = {f['import_rows_per_s']:,.0f} rows/s")
    print(
        f"(b) raw baseline:  {f['baseline_seconds']:.2f} s = {f['baseline_rows_per_s']:,.0f} rows/s"
    )
    print(
        f"ratio (a)/(b) in rows/s: {f['ratio']:.2f} (target >= 0.9: {verdict(f['ratio'] >= 0.9)})"
    )
    store = f["import_seconds"] - f["read_seconds"]
    print(
        f"  of (a): reading and judging the file {f['read_seconds']:.2f} s, storing "
        f"{store:.2f} s; storing alone against (b): {f['store_ratio']:.2f}"
    )
    if f["baseline_literal_seconds"] is not None:
        print(
            f"(b') raw baseline with the constant columns as literals, not bound per row: "
            f"{f['baseline_literal_seconds']:.2f} s "
            f"({f['baseline_literal_seconds'] / f['baseline_seconds']:.2f}x (b))"
        )
    print(f"peak memory of the import process: {f['import_peak_rss_mib']:.0f} MiB")
    slower = f["reimport_seconds"] / f["import_seconds"]
    print(
        f"second import: {f['reimport_seconds']:.2f} s, inserted {f['reimport_inserted']}, "
        f"{slower:.2f}x the first (target <= 1: {verdict(slower <= 1.0)})"
    )
    print(
        f"selector {f['selector_minute_bars']:,} minute bars -> {f['selector_hourly_bars']:,} "
        f"hourly: {f['selector_seconds']:.2f} s (target < 2 s: "
        f"{verdict(f['selector_seconds'] < 2)}); raw fetch alone "
        f"{f['selector_raw_fetch_seconds']:.2f} s, ratio "
        f"{f['selector_seconds'] / f['selector_raw_fetch_seconds']:.2f}"
    )


def worker_or_benchmark(
    description: str,
    workers: dict[str, Callable[..., dict]],
    run: Callable[[argparse.Namespace], None],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """The main() of the benchmarks here: with --worker, run that worker on its database and
    print its figures as the last line (run_worker reads them); otherwise the benchmark."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--worker", choices=sorted(workers))
    parser.add_argument("--database-url")
    parser.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    if add_arguments:
        add_arguments(parser)
    options = parser.parse_args()
    if options.worker:
        figures = workers[options.worker](options.database_url, *options.extra)
        print(json.dumps(figures | {"peak_rss_mib": peak_memory_mib()}, default=str))
        return
    started = time.perf_counter()
    run(options)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s; figures in bench/out/")


def on_each_engine(
    options: argparse.Namespace, bench_engine: Callable[[str, Path, Path], dict], name: str
) -> None:
    """Run `bench_engine` on the generated minute CSV for each engine named, in a scratch
    folder, and keep the figures in bench/out/<name>_<rows>.json."""
    csv_path = generate_minute_csv(options.rows, OUT / f"gemini_BTCUSD_{options.rows}_1min.csv")
    print(f"CSV: {csv_path} ({csv_path.stat().st_size / 2**20:.0f} MiB)", flush=True)
    with tempfile.TemporaryDirectory(prefix="cryptooracle-bench-") as workdir:
        results = [
            bench_engine(engine, csv_path, Path(workdir)) for engine in options.engines.split(",")
        ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}_{options.rows}.json").write_text(json.dumps(results, indent=2))


def main() -> None:
    worker_or_benchmark(
        __doc__.split("\n\n")[0],
        WORKERS,
        lambda options: on_each_engine(options, bench_engine, "import"),
    )


if __name__ == "__main__":
    main()
