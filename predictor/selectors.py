"""Reads from the bar store. Everything a view, command or notebook asks of the data."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Sum
from django.db.models.expressions import RawSQL

from predictor.models import Stock
from utils.bar_checks import BAR_COLUMNS
from utils.resampling import resample_bars
from utils.timeframes import interval_seconds, timeframe_seconds


class NoBarsError(LookupError):
    """The symbol has no stored bars fine enough for the interval asked."""


def stored_series() -> list[dict]:
    """Each stored (symbol, bar length) with its bar count and first and last bar."""
    return list(
        Stock.objects.values("symbol", "bar_length")
        .annotate(bars=Count("id"), first=Min("time"), last=Max("time"))
        .order_by("symbol", "bar_length")
    )


def stored_symbols() -> list[str]:
    return list(Stock.objects.order_by("symbol").values_list("symbol", flat=True).distinct())


def stored_bar_lengths(symbol: str) -> list[str]:
    """The symbol's bar lengths, finest first.

    A loose index scan (one probe of the unique index per distinct bar length) rather than
    SELECT DISTINCT, which reads every one of millions of bars to find two or three values.
    """
    table = Stock._meta.db_table
    sql = (
        "WITH RECURSIVE lengths(bar_length) AS ("
        f'SELECT MIN(bar_length) FROM "{table}" WHERE symbol = %s '
        "UNION ALL "
        f'SELECT (SELECT MIN(s.bar_length) FROM "{table}" s '
        "WHERE s.symbol = %s AND s.bar_length > lengths.bar_length) "
        "FROM lengths WHERE lengths.bar_length IS NOT NULL"
        ") SELECT bar_length FROM lengths WHERE bar_length IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [symbol, symbol])
        lengths = [row[0] for row in cursor.fetchall()]
    return sorted(lengths, key=timeframe_seconds)


def latest_bar_time(symbol: str, bar_length: str) -> datetime | None:
    return Stock.objects.filter(symbol=symbol, bar_length=bar_length).aggregate(last=Max("time"))[
        "last"
    ]


def source_bar_length(
    symbol: str, interval: str, start: datetime | None = None, end: datetime | None = None
) -> str:
    """The finest stored bar length that divides the interval and has bars in the range.

    Finest first, because coarser bars can always be built from finer ones but not the
    other way round; a length that does not divide the interval (7m bars into hours) would
    put parts of one bar into two buckets, so it is never used.
    """
    target = interval_seconds(interval)
    for bar_length in stored_bar_lengths(symbol):
        length = timeframe_seconds(bar_length)
        if length > target or target % length:
            continue
        if _series(symbol, bar_length, start, end).exists():
            return bar_length
    raise NoBarsError(
        f"no stored {symbol} bars fine enough for interval {interval!r}"
        + (f" between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M}" if start and end else "")
    )


def get_bars(
    symbol: str,
    interval: str = "H",
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """The symbol's bars in [start, end) at `interval` (M, H, D, a timeframe or pandas offset).

    Returns a frame indexed by opening time (UTC) with open, high, low, close, volume,
    bar_count (how many stored bars each row was built from) and provisional (the row holds a
    bar that may still have been forming when stored: the series' newest). Buckets with no
    stored bars are absent, never filled in. Raises NoBarsError when nothing is stored for
    the range.
    """
    bar_length = source_bar_length(symbol, interval, start, end)
    if timeframe_seconds(bar_length) == interval_seconds(interval):
        frame = _fetch_frame(symbol, bar_length, start, end).assign(bar_count=1)
    elif connection.vendor in ("sqlite", "postgresql"):
        frame = _aggregate_in_database(symbol, bar_length, interval, start, end)
    else:
        frame = resample_bars(_fetch_frame(symbol, bar_length, start, end), interval)
    return _with_provisional(frame, symbol, bar_length, interval, start, end)


def _with_provisional(
    frame: pd.DataFrame,
    symbol: str,
    bar_length: str,
    interval: str,
    start: datetime | None,
    end: datetime | None,
) -> pd.DataFrame:
    """Mark the buckets holding a provisional bar: a handful of rows found through the
    partial index, so the aggregate over millions of bars stays as it was."""
    times = list(
        _series(symbol, bar_length, start, end)
        .filter(provisional=True)
        .values_list("time", flat=True)
    )
    buckets = pd.DatetimeIndex(times, tz="UTC").floor(f"{interval_seconds(interval)}s")
    frame["provisional"] = frame.index.isin(buckets)
    return frame


def _bucket_sql(seconds: int) -> tuple[str, str]:
    """(bucket expression, its start as epoch seconds) for this engine, origin 1970-01-01.

    Both are cheap per-row arithmetic on the stored time: SQLite's unixepoch() and
    PostgreSQL's date_bin() (PostgreSQL 14+) avoid the text formatting of strftime and
    the numeric division of EXTRACT(EPOCH), which were the slow part of the query.
    """
    column = '"predictor_stock"."time"'
    if connection.vendor == "postgresql":
        bucket = f"date_bin('{seconds} seconds', {column}, TIMESTAMPTZ '1970-01-01')"
        return bucket, "EXTRACT(EPOCH FROM g.bucket)::bigint"
    if sqlite3.sqlite_version_info >= (3, 38):
        return f"(unixepoch({column}) / {seconds}) * {seconds}", "g.bucket"
    return f"(CAST(strftime('%%s', {column}) AS INTEGER) / {seconds}) * {seconds}", "g.bucket"


def _aggregate_in_database(
    symbol: str, bar_length: str, interval: str, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    """GROUP BY time bucket in the database: millions of bars in, thousands of rows out.

    High, low, volume and count are plain aggregates; open and close are looked up by the
    bucket's first and last opening time through the unique index, which keeps this to one
    scan of the range on every engine instead of shipping each bar to Python.
    """
    bucket_sql, bucket_epoch_sql = _bucket_sql(interval_seconds(interval))
    bucket = RawSQL(bucket_sql, [])
    grouped = (
        _series(symbol, bar_length, start, end)
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(
            max_high=Max("high"),
            min_low=Min("low"),
            total_volume=Sum("volume"),
            bar_count=Count("id"),
            first_time=Min("time"),
            last_time=Max("time"),
        )
        .order_by()
    )
    inner_sql, inner_params = grouped.query.sql_with_params()
    table = Stock._meta.db_table
    # Correlated lookups through the unique index: one probe per bucket, which the planner
    # cannot turn into a hash join over the whole table however it misjudges the groups.
    lookup = (
        f'SELECT {{}} FROM "{table}" s '
        "WHERE s.symbol = %s AND s.bar_length = %s AND s.time = g.{}"
    )
    sql = (
        f"SELECT {bucket_epoch_sql}, ({lookup.format('open', 'first_time')}), "
        f"g.max_high, g.min_low, ({lookup.format('close', 'last_time')}), "
        f"g.total_volume, g.bar_count FROM ({inner_sql}) g ORDER BY 1"
    )
    params = [symbol, bar_length, symbol, bar_length, *inner_params]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The planner cannot estimate the number of buckets and guesses one per row;
            # that guess would spill the aggregate to disk and pay for JIT compilation.
            cursor.execute("SET LOCAL work_mem = '64MB'")
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    columns = ["bucket", *BAR_COLUMNS[1:], "bar_count"]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame.index = pd.DatetimeIndex(
        frame.pop("bucket").to_numpy(dtype="int64").astype("datetime64[s]"),
        tz="UTC",
        name="time",
    ).as_unit("ns")
    return frame.astype({name: "float64" for name in BAR_COLUMNS[1:]} | {"bar_count": "int64"})


def _series(symbol: str, bar_length: str, start: datetime | None, end: datetime | None):
    queryset = Stock.objects.filter(symbol=symbol, bar_length=bar_length)
    if start is not None:
        queryset = queryset.filter(time__gte=start)
    if end is not None:
        queryset = queryset.filter(time__lt=end)
    return queryset


def _fetch_frame(
    symbol: str, bar_length: str, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    """Read columns straight off the cursor into numpy: no model instances, no row loop.

    The ORM would build a Python datetime per row, which alone takes seconds for millions of
    minute bars; instead the engine hands over epoch microseconds (PostgreSQL) or its stored
    text (SQLite), and numpy/pandas convert the whole column at once.
    """
    queryset = _series(symbol, bar_length, start, end).order_by("time")
    if connection.vendor == "postgresql":
        epoch = RawSQL('(EXTRACT(EPOCH FROM "predictor_stock"."time") * 1000000)::bigint', [])
        queryset = queryset.annotate(epoch_us=epoch).values_list("epoch_us", *BAR_COLUMNS[1:])
    else:
        queryset = queryset.values_list(*BAR_COLUMNS)
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return pd.DataFrame(columns=list(BAR_COLUMNS[1:]), index=pd.DatetimeIndex([], tz="UTC"))
    times, *values = zip(*rows, strict=True)
    index = _to_utc_index(times)
    frame = pd.DataFrame(
        {
            name: np.asarray(column, dtype="float64")
            for name, column in zip(BAR_COLUMNS[1:], values, strict=True)
        },
        index=index,
    )
    frame.index.name = "time"
    return frame


def _to_utc_index(times: tuple) -> pd.DatetimeIndex:
    if connection.vendor == "postgresql":
        return pd.DatetimeIndex(np.asarray(times, dtype="int64").astype("datetime64[us]"), tz="UTC")
    if isinstance(times[0], str):
        return pd.DatetimeIndex(pd.to_datetime(np.asarray(times), format="ISO8601", utc=True))
    return pd.DatetimeIndex(pd.to_datetime(list(times), utc=True))
