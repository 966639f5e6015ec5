"""Audit benchmark: audit_bars on 2,000,000 minute bars against a full scan of the same table.

    .venv/bin/python bench/audit_benchmark.py                  # build both databases, then time
    .venv/bin/python bench/audit_benchmark.py --reuse          # keep the databases of a last run
    .venv/bin/python bench/audit_benchmark.py --engines sqlite

For each engine it loads the import benchmark's generated Gemini minute file (its helpers: the
same CSV, the same scratch databases, its raw-insert worker) into bench/out/audit.sqlite3 or
the PostgreSQL database cryptooracle_bench_audit, plants a few hundred bars that cannot be
right (off the grid, sub-second, inf, 1e308, high < low, 1990, 2200, NaN on PostgreSQL), five
gaps, bars of a second exchange and two provisional bars, then times in one process:
  (a) the audit (`audit_series`, what `audit_bars` reads) and the whole command,
  (b) the baseline: one full scan of the same table (COUNT, and MIN or MAX of every column
      the audit reads; SUM would overflow on the planted 1e308),
best of three each, and checks the audit found exactly what was planted. Last it times
`--fix` (deleting the planted bad bars), checks that a second audit finds nothing to fix
and times that audit too: the usual case of a database with gaps but no bad bars.
Planting is undone and redone on each run, so --reuse measures the same database again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_benchmark import (  # noqa: E402
    OUT,
    POSTGRES_SERVER,
    SCRATCH_DB,
    _setup_django,
    fresh_database,
    generate_minute_csv,
    run_worker,
    worker_or_benchmark,
)

NAME = "audit"
PLANTED_SOURCE = "audit-bench"
END = datetime(2020, 12, 30, tzinfo=UTC)  # the generated file's newest minute
MINUTE = timedelta(minutes=1)
# Gaps of known length (in bars), far apart: (minutes before END, length).
GAPS = ((50_000, 1), (150_000, 10), (300_000, 60), (600_000, 240), (900_000, 1440))
BAD_HOME = 900_000  # on-grid bad bars are planted inside the longest gap
COINBASE_AT, COINBASE_BARS = 1_200_000, 100  # a run of bars replaced by another exchange's
STALE_PROVISIONAL_AT = 1_300_000
PER_VALUE_RULE = 25
OFF_GRID, SUB_SECOND, OUT_OF_RANGE = 100, 20, 10


# --- planting (in the worker process, Django set up for the benchmark database) -------------


def value_rules(vendor: str) -> list[tuple[str, dict]]:
    """(reason, the values that break it) for each value rule the engine can store."""
    rules = [
        ("infinite", {"open": math.inf}),
        ("price_too_high", {"high": 1e308, "close": 1e308}),
        ("infinite", {"volume": math.inf}),
        ("high_below_low", {"high": 80.0}),
        ("price_not_positive", {"low": 0.0, "open": 50.0}),
        ("body_outside", {"close": 200.0}),
        ("volume_negative", {"volume": -1.0}),
        ("volume_too_high", {"volume": 1e19}),
    ]
    if vendor == "postgresql":  # NaN turns into NULL in SQLite, which NOT NULL refuses
        rules.append(("nan", {"close": math.nan}))
    return rules


def planted_bars(vendor: str, rows: int) -> tuple[list[dict], dict[str, int]]:
    """The rows to insert, and how many bars of each reason the audit must find."""
    base = {"open": 100.0, "high": 110.0, "low": 90.0, "close": 105.0, "volume": 1.0}
    bars: list[dict] = []
    expected: dict[str, int] = {}
    slot = iter(range(BAD_HOME, BAD_HOME - 1440, -1))
    for reason, values in value_rules(vendor):
        for _ in range(PER_VALUE_RULE):
            bars.append({**base, **values, "time": END - next(slot) * MINUTE})
        expected[reason] = expected.get(reason, 0) + PER_VALUE_RULE
    step = rows // (OFF_GRID + SUB_SECOND + 1)
    for i in range(OFF_GRID + SUB_SECOND):
        shift = timedelta(seconds=30) if i < OFF_GRID else timedelta(milliseconds=500)
        bars.append({**base, "time": END - (step * (i + 1) + 7) * MINUTE + shift})
    expected["off_grid"] = OFF_GRID + SUB_SECOND
    for i in range(OUT_OF_RANGE):
        bars.append({**base, "time": datetime(1990, 1, 1, tzinfo=UTC) + i * MINUTE})
        bars.append({**base, "time": datetime(2200, 1, 1, tzinfo=UTC) + i * MINUTE})
    expected |= {"before_2009": OUT_OF_RANGE, "future": OUT_OF_RANGE}
    coinbase = [
        {**base, "time": END - (COINBASE_AT + i) * MINUTE, "exchange": "Coinbase"}
        for i in range(COINBASE_BARS)
    ]
    return bars + coinbase, expected


def plant(rows: int) -> dict[str, int]:
    """Undo the last planting, then plant again: gaps, bad bars, another exchange, two
    provisional bars. Returns the bad bars expected per reason."""
    from django.db import connection, transaction

    from predictor.services.bars import refresh_planner_statistics

    bars, expected = planted_bars(connection.vendor, rows)
    adapt = connection.ops.adapt_datetimefield_value
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM predictor_stock WHERE source = %s", [PLANTED_SOURCE])
        cursor.execute("UPDATE predictor_stock SET provisional = %s WHERE provisional", [False])
        for minutes, length in (*GAPS, (COINBASE_AT + COINBASE_BARS - 1, COINBASE_BARS)):
            first = END - minutes * MINUTE
            cursor.execute(
                "DELETE FROM predictor_stock WHERE symbol = 'BTCUSD' AND bar_length = '1m' "
                "AND time >= %s AND time < %s",
                [adapt(first), adapt(first + length * MINUTE)],
            )
        cursor.executemany(
            "INSERT INTO predictor_stock (symbol, bar_length, time, open, high, low, close, "
            "volume, exchange, source, provisional) "
            "VALUES ('BTCUSD', '1m', %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    adapt(b["time"]),
                    *(b[name] for name in ("open", "high", "low", "close", "volume")),
                    b.get("exchange", "Gemini"),
                    PLANTED_SOURCE,
                    False,
                )
                for b in bars
            ],
        )
        for at in (END, END - STALE_PROVISIONAL_AT * MINUTE):
            cursor.execute(
                "UPDATE predictor_stock SET provisional = %s WHERE symbol = 'BTCUSD' "
                "AND bar_length = '1m' AND time = %s",
                [True, adapt(at)],
            )
    refresh_planner_statistics()
    return expected


# --- workers ---------------------------------------------------------------------------------


T = TypeVar("T")


def best_of(function: Callable[[], T], repeats: int) -> tuple[float, T]:
    timings: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        value = function()
        timings.append(time.perf_counter() - started)
    return min(timings), value  # repeats >= 1


def worker_audit(database_url: str, rows: str, repeats: str = "3") -> dict:
    """Plant, then time the audit against a full scan, then time --fix; check the findings."""
    _setup_django(database_url)
    import contextlib
    import io

    from django.core.management import CommandError, call_command
    from django.db import connection
    from django.utils import timezone

    from predictor.selectors.audit import Scope, audit_series
    from predictor.services.auditing import delete_untrustworthy_bars

    expected = plant(int(rows))

    def full_scan() -> tuple:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*), MIN(time), MAX(time), MAX(open), MAX(high), MIN(low), "
                "MAX(close), MAX(volume) FROM predictor_stock"
            )
            return cursor.fetchone()

    def count_only() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM predictor_stock")
            return cursor.fetchone()[0]

    def command() -> None:
        with contextlib.suppress(CommandError):  # the planted bars make it exit 1, as it should
            call_command("audit_bars", stdout=io.StringIO())

    scan_seconds, _ = best_of(full_scan, int(repeats))
    count_seconds, bars = best_of(count_only, int(repeats))
    audit_seconds, audits = best_of(lambda: audit_series(Scope(), now=timezone.now()), int(repeats))
    command_seconds, _ = best_of(command, int(repeats))
    (audit,) = audits
    found = {group.reason: group.count for group in audit.bad}
    started = time.perf_counter()
    deleted = delete_untrustworthy_bars(Scope(), now=timezone.now())
    fix_seconds = time.perf_counter() - started
    clean_seconds, (after,) = best_of(
        lambda: audit_series(Scope(), now=timezone.now()), int(repeats)
    )
    gaps = audit.gaps
    assert gaps is not None, "the planted series has gaps"
    return {
        "vendor": connection.vendor,
        "bars": bars,
        "audit_seconds": audit_seconds,
        "command_seconds": command_seconds,
        "full_scan_seconds": scan_seconds,
        "count_seconds": count_seconds,
        "fix_seconds": fix_seconds,
        "audit_after_fix_seconds": clean_seconds,
        "planted": expected,
        "found": found,
        "found_as_planted": found == expected,
        "gaps": [gaps.count, gaps.missing, gaps.longest_missing],
        "gaps_as_planted": [gaps.count, gaps.missing, gaps.longest_missing]
        == [len(GAPS), sum(length for _, length in GAPS), max(length for _, length in GAPS)],
        "exchanges": audit.exchanges,
        "stale_provisional": len(audit.stale_provisional),
        "newest_provisional": audit.provisional_newest is not None,
        "deleted": sum(item.bars.count for item in deleted),
        "bad_after_fix": after.bad_count,
    }


def worker_loaded(database_url: str) -> dict:
    """How many bars the database holds, or -1 when it does not exist or is not migrated."""
    try:
        _setup_django(database_url)
        from predictor.models import Stock

        return {"bars": Stock.objects.count()}
    except Exception:  # any failure means "build it again"
        return {"bars": -1}


WORKERS: dict[str, Callable[..., dict]] = {"audit": worker_audit, "loaded": worker_loaded}


# --- orchestration ---------------------------------------------------------------------------


def run_own_worker(kind: str, database_url: str, *extra: str) -> dict:
    return run_worker(kind, database_url, *extra, script=__file__)


def database_url(engine: str) -> str:
    if engine == "sqlite":
        return f"sqlite:///{OUT / f'{NAME}.sqlite3'}"
    return f"{POSTGRES_SERVER}/{SCRATCH_DB}_{NAME}"


def prepare(engine: str, rows: int, *, reuse: bool) -> str:
    """The benchmark database of `engine`, loaded with the generated minute bars."""
    url = database_url(engine)
    if reuse and engine == "sqlite" and not (OUT / f"{NAME}.sqlite3").exists():
        reuse = False
    if reuse and run_own_worker("loaded", url)["bars"] >= rows - 10_000:
        print(f"reusing {url}", flush=True)
        return url
    started = time.perf_counter()
    csv_path = generate_minute_csv(rows, OUT / f"gemini_BTCUSD_{rows}_1min.csv")
    url = fresh_database(engine, OUT, NAME)
    run_worker("baseline", url, str(csv_path))  # the import benchmark's raw bulk insert
    if engine == "postgresql":  # the steady state autovacuum would reach: hint bits, stats
        subprocess.run(
            ["psql", url, "-qc", "VACUUM ANALYZE predictor_stock"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    print(f"loaded {rows:,} bars into {url} in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def report(engine: str, f: dict) -> None:
    ratio = f["audit_seconds"] / f["full_scan_seconds"]
    print(f"\n== {engine} == {f['bars']:,} bars")
    print(
        f"audit (audit_series): {f['audit_seconds']:.2f} s; whole command "
        f"{f['command_seconds']:.2f} s"
    )
    print(
        f"baseline full scan (COUNT, MIN/MAX of every column read): "
        f"{f['full_scan_seconds']:.2f} s; COUNT(*) alone {f['count_seconds']:.2f} s"
    )
    print(f"ratio audit / full scan: {ratio:.1f}")
    print(
        f"found as planted: bad bars {f['found_as_planted']} ({sum(f['found'].values())} in "
        f"{len(f['found'])} reasons), gaps {f['gaps_as_planted']} {f['gaps']}, exchanges "
        f"{f['exchanges']}, stale provisional {f['stale_provisional']}, newest provisional "
        f"{f['newest_provisional']}"
    )
    print(
        f"--fix: deleted {f['deleted']} bars in {f['fix_seconds']:.2f} s; "
        f"bad bars left: {f['bad_after_fix']}; audit after the fix "
        f"{f['audit_after_fix_seconds']:.2f} s, ratio "
        f"{f['audit_after_fix_seconds'] / f['full_scan_seconds']:.1f}"
    )


def run(options: argparse.Namespace) -> None:
    os.makedirs(OUT, exist_ok=True)
    results = {}
    for engine in options.engines.split(","):
        url = prepare(engine, options.rows, reuse=options.reuse)
        results[engine] = run_own_worker("audit", url, str(options.rows), str(options.repeats))
        report(engine, results[engine])
    (OUT / f"audit_{options.rows}.json").write_text(json.dumps(results, indent=2, default=str))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reuse", action="store_true", help="keep the databases of a last run")
    parser.add_argument("--repeats", type=int, default=3)


def main() -> None:
    worker_or_benchmark(__doc__.split("\n\n")[0], WORKERS, run, add_arguments)


if __name__ == "__main__":
    main()
