"""Rollups: stored series kept aggregated to hourly and daily buckets as bars are written.

Every hourly chart of minute data used to aggregate millions of rows; TimescaleDB's answer is
the continuous aggregate, a table of coarser buckets refreshed where the data changed. This
is that, on SQLite and PostgreSQL alike:

- a series of bar length L has a rollup at each length of ROLLUP_LENGTHS longer than L that
  L divides (1m -> 1h and 1d; 1h -> 1d; 7m -> none);
- every writer of bars (services.bars: insert, provisional replacement and marking, audit
  deletions) calls `refresh_rollups` with the times it touched, in its own transaction, and
  only those buckets are aggregated again, in SQL: the rows in range are deleted and
  re-inserted from an aggregate (a bucket left without bars disappears, which an upsert
  alone would not do);
- the daily rollup is aggregated from the hourly one (24 rows a day instead of 1,440), so
  a refresh costs about one pass over the bars written;
- a series with bars but no rollups yet (a database from before rollups, or bars written
  past services.bars) gets its whole rollup built on the first refresh, and
  `manage.py rebuild_rollups` (or migration 0011) builds every series at once. Until then
  `get_bars` aggregates from the bars themselves, as it always did.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection, transaction

from predictor import sql
from predictor.models import Stock, StockRollup
from utils.timeframes import timeframe_seconds

ROLLUP_LENGTHS = ("1h", "1d")
ROLLUP_COLUMNS = (
    "symbol",
    "source_bar_length",
    "bar_length",
    "time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "bar_count",
    "provisional",
)


def rollup_lengths(source_bar_length: str) -> list[str]:
    """The rollups a series of this bar length has, finest first (none off SQLite and
    PostgreSQL, whose portable paths aggregate on the fly instead)."""
    if not sql.supported():
        return []
    try:
        seconds = timeframe_seconds(source_bar_length)
    except ValueError:
        return []
    return [
        length
        for length in ROLLUP_LENGTHS
        if timeframe_seconds(length) > seconds and timeframe_seconds(length) % seconds == 0
    ]


def has_rollups(symbol: str, source_bar_length: str) -> bool:
    return StockRollup.objects.filter(symbol=symbol, source_bar_length=source_bar_length).exists()


def _levels_to_refresh(symbol: str, source_bar_length: str) -> list[str]:
    """The series' rollup lengths, to refresh bucket by bucket; none if it has no rollups
    at all, or had none yet, in which case its whole rollup has just been built."""
    lengths = rollup_lengths(source_bar_length)
    if lengths and not has_rollups(symbol, source_bar_length):
        rebuild_series(symbol, source_bar_length)
        return []
    return lengths


def refresh_rollups(symbol: str, source_bar_length: str, times: Iterable) -> None:
    """Aggregate again every rollup bucket holding one of `times` (bars just inserted,
    replaced, marked or deleted). Run it in the transaction that changed the bars, so a
    reader never sees the bars and their rollups disagree."""
    lengths = _levels_to_refresh(symbol, source_bar_length)
    if not lengths:
        return
    epochs = _epoch_seconds(times)
    if not len(epochs):
        return
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in sql.aggregate_settings():
            cursor.execute(statement)
        finer = None
        for length in lengths:
            seconds = timeframe_seconds(length)
            buckets = np.unique(epochs // seconds * seconds)
            for start, end in _runs(buckets, seconds):
                _refresh(cursor, _Level(symbol, source_bar_length, length, finer), start, end)
            finer = length


def add_rollups_of_new_bars(
    symbol: str,
    source_bar_length: str,
    bars: pd.DataFrame,
    *,
    provisional_time: datetime | None = None,
) -> None:
    """Rollups for a batch just inserted into a range that held no bar of the series (the
    fast path of services.bars), in the batch's transaction.

    A bucket lying wholly between the batch's first and last time can hold no bar but the
    batch's own, so it is aggregated here from the batch with numpy, without reading the
    rows back; the buckets at either end (which may share an hour or a day with stored
    bars) and the bucket of a provisional bar are refreshed in SQL like any other write.
    Every level is aggregated from the batch's bars, the daily one included.
    """
    lengths = _levels_to_refresh(symbol, source_bar_length)
    if not lengths:
        return
    frame = bars.sort_values("time")
    micros = _epoch_microseconds(frame["time"])
    provisional = None if provisional_time is None else _epoch_microseconds([provisional_time])[0]
    at_edges = np.zeros(len(frame), dtype=bool)
    with transaction.atomic():
        for length in lengths:
            size = timeframe_seconds(length) * 1_000_000
            starts = micros // size * size
            inside = (starts >= micros[0]) & (starts + size <= micros[-1])
            if provisional is not None:
                inside &= starts != provisional // size * size
            at_edges |= ~inside
            _write_buckets(symbol, source_bar_length, length, frame[inside], starts[inside], size)
        refresh_rollups(symbol, source_bar_length, frame["time"][at_edges])


def _write_buckets(
    symbol: str,
    source_bar_length: str,
    length: str,
    bars: pd.DataFrame,
    starts: np.ndarray,
    size: int,
) -> None:
    """Replace the level's buckets from the first to the last of `starts` (epoch
    microseconds, sorted) with the OHLCV aggregates of `bars`."""
    if not len(starts):
        return
    first = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
    last = np.r_[first[1:] - 1, len(starts) - 1]
    values = {name: bars[name].to_numpy(dtype="float64") for name in _VALUES}
    times = pd.to_datetime(starts[first], unit="us", utc=True)
    low, high = (pd.Timestamp(t, unit="us", tz="UTC") for t in (starts[0], starts[-1] + size))
    StockRollup.objects.filter(
        symbol=symbol,
        source_bar_length=source_bar_length,
        bar_length=length,
        time__gte=low,
        time__lt=high,
    ).delete()
    rows = list(
        zip(
            [symbol] * len(first),
            [source_bar_length] * len(first),
            [length] * len(first),
            [sql.time_param(time) for time in times.to_pydatetime()],
            values["open"][first].tolist(),
            np.maximum.reduceat(values["high"], first).tolist(),
            np.minimum.reduceat(values["low"], first).tolist(),
            values["close"][last].tolist(),
            np.add.reduceat(values["volume"], first).tolist(),
            (last - first + 1).tolist(),
            [False] * len(first),
            strict=True,
        )
    )
    if rows:
        _insert_rollup_rows(rows)


def _insert_rollup_rows(rows: list[tuple]) -> None:
    """Multi-row INSERTs of rollup rows, as many rows a statement as the engine takes
    parameters: bulk_create's per-field preparation, or psycopg2's executemany (one round
    trip a row), cost more than the aggregation itself."""
    one_row = "(" + ", ".join(["%s"] * len(ROLLUP_COLUMNS)) + ")"
    per_statement = min(1000, connection.ops.bulk_batch_size(ROLLUP_COLUMNS, rows))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            batch = rows[start : start + per_statement]
            statement = sql.insert(
                StockRollup._meta.db_table,
                ROLLUP_COLUMNS,
                "VALUES " + ", ".join([one_row] * len(batch)),
            )
            cursor.execute(statement, [value for row in batch for value in row])


_VALUES = ("open", "high", "low", "close", "volume")


def ensure_rollups(symbol: str, source_bar_length: str) -> None:
    """Build the series' rollups if it has bars but none yet (an import that found every
    bar already stored, in a database filled before rollups existed)."""
    series = Stock.objects.filter(symbol=symbol, bar_length=source_bar_length)
    lengths = rollup_lengths(source_bar_length)
    if lengths and not has_rollups(symbol, source_bar_length) and series.exists():
        rebuild_series(symbol, source_bar_length)


def rebuild_series(symbol: str, source_bar_length: str) -> int:
    """Build every rollup of one series from scratch; returns the buckets written."""
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in sql.aggregate_settings():
            cursor.execute(statement)
        StockRollup.objects.filter(symbol=symbol, source_bar_length=source_bar_length).delete()
        finer = None
        for length in rollup_lengths(source_bar_length):
            written += _refresh(cursor, _Level(symbol, source_bar_length, length, finer))
            finer = length
    return written


@dataclass(frozen=True)
class RebuiltSeries:
    symbol: str
    bar_length: str
    buckets: int


def rebuild_all_rollups() -> list[RebuiltSeries]:
    """Build the rollups of every stored series (after bars were written past services.bars,
    or for a database filled before rollups existed), each series in its own transaction."""
    series = Stock.objects.values_list("symbol", "bar_length").distinct().order_by()
    rebuilt = [
        RebuiltSeries(symbol, bar_length, rebuild_series(symbol, bar_length))
        for symbol, bar_length in sorted(set(series))
    ]
    stored = {(s.symbol, s.bar_length) for s in rebuilt}
    kept = StockRollup.objects.values_list("symbol", "source_bar_length").distinct().order_by()
    for symbol, source_bar_length in set(kept) - stored:  # rollups of series deleted since
        StockRollup.objects.filter(symbol=symbol, source_bar_length=source_bar_length).delete()
    refresh_statistics()
    return rebuilt


def refresh_statistics() -> None:
    with connection.cursor() as cursor:
        for statement in sql.analyze([StockRollup._meta.db_table]):
            cursor.execute(statement)


@dataclass(frozen=True)
class _Level:
    """One rollup of one series, and what it is aggregated from: the stored bars, or the
    next finer rollup of the same series when that one divides it."""

    symbol: str
    source_bar_length: str
    bar_length: str
    finer: str | None

    def source(self) -> tuple[str, list[str], list[str], str]:
        """(table, key columns, key values, bar count aggregate) to aggregate from."""
        if self.finer is not None and (
            timeframe_seconds(self.bar_length) % timeframe_seconds(self.finer) == 0
        ):
            return (
                StockRollup._meta.db_table,
                ["symbol", "source_bar_length", "bar_length"],
                [self.symbol, self.source_bar_length, self.finer],
                "SUM(bar_count)",
            )
        return (
            Stock._meta.db_table,
            ["symbol", "bar_length"],
            [self.symbol, self.source_bar_length],
            "COUNT(*)",
        )


def _refresh(cursor, level: _Level, start: int | None = None, end: int | None = None) -> int:
    """Delete the level's buckets in [start, end) (epoch seconds; None: all) and insert
    them again aggregated from its source. Returns the buckets written."""
    table, key, values, count = level.source()
    where = " AND ".join(f"{sql.quote(column)} = %s" for column in key)
    params: list[object] = list(values)
    rollups = StockRollup.objects.filter(
        symbol=level.symbol,
        source_bar_length=level.source_bar_length,
        bar_length=level.bar_length,
    )
    if start is not None and end is not None:
        low, high = (pd.Timestamp(t, unit="s", tz="UTC").to_pydatetime() for t in (start, end))
        where += f" AND {sql.quote('time')} >= %s AND {sql.quote('time')} < %s"
        params += [sql.time_param(low), sql.time_param(high)]
        rollups = rollups.filter(time__gte=low, time__lt=high)
    rollups.delete()
    select = sql.first_bar_values_over(
        source=table,
        key=key,
        seconds=timeframe_seconds(level.bar_length),
        count=count,
        provisional=sql.any_true(sql.quote("provisional")),
        where=where,
    )
    constants = [level.symbol, level.source_bar_length, level.bar_length]
    statement = sql.insert_ignoring_conflicts(
        StockRollup._meta.db_table,
        ROLLUP_COLUMNS,
        f"SELECT %s, %s, %s, r.* FROM ({select}) r",
        conflict=["symbol", "source_bar_length", "bar_length", "time"],
    )
    cursor.execute(statement, [*constants, *values, *values, *params])
    return cursor.rowcount


def _epoch_seconds(times: Iterable) -> np.ndarray:
    return _epoch_microseconds(times) // 1_000_000


def _epoch_microseconds(times: Iterable) -> np.ndarray:
    if not isinstance(times, pd.Series | pd.DatetimeIndex):
        times = pd.Series(list(times), dtype=object)
    values = pd.DatetimeIndex(pd.to_datetime(times, utc=True, format="mixed"))
    return (
        values.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[us]").astype("int64")
    )


def _runs(buckets: np.ndarray, seconds: int) -> Iterator[tuple[int, int]]:
    """[start, end) of each run of consecutive buckets: one statement per run, not per
    bucket, so an import chunk of 100,000 minutes is refreshed in one aggregate."""
    if not len(buckets):
        return
    breaks = np.flatnonzero(np.diff(buckets) != seconds) + 1
    for run in np.split(buckets, breaks):
        yield int(run[0]), int(run[-1]) + seconds
