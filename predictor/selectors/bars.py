"""Reads from the bar store: stored series, and bars at any interval (from rollups when
they serve it). Everything a view, command or notebook asks of the data."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Sum
from django.db.models.expressions import RawSQL

from predictor import sql
from predictor.models import Stock, StockRollup
from predictor.services.rollups import has_rollups, rollup_lengths
from utils.bar_checks import BAR_COLUMNS
from utils.resampling import resample_bars
from utils.timeframes import interval_seconds, timeframe_seconds

# The years pandas' nanosecond times can hold. A range reaching past them (a user asking
# for 1900 to 9999) is cut to them: the frames here are indexed in nanoseconds, and no
# stored bar lies outside them (imports refuse such times).
EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 1, 1, tzinfo=UTC)


class NoBarsError(LookupError):
    """The symbol has no stored bars fine enough for the interval asked."""


def stored_series() -> list[dict]:
    """Each stored (symbol, bar length) with its bar count and first and last bar."""
    rows = (
        Stock.objects.values("symbol", "bar_length")
        .annotate(bars=Count("id"), first=Min("time"), last=Max("time"))
        .order_by("symbol", "bar_length")
    )
    return [dict(row) for row in rows]


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
    fitting = [
        length
        for length in stored_bar_lengths(symbol)
        if timeframe_seconds(length) <= target and target % timeframe_seconds(length) == 0
    ]
    for bar_length in fitting:
        if _series(symbol, bar_length, start, end).exists():
            return bar_length
    if not fitting:
        raise NoBarsError(f"no stored {symbol} bars fine enough for interval {interval!r}")
    first, last = (
        _series(symbol, fitting[0], None, None)
        .aggregate(first=Min("time"), last=Max("time"))
        .values()
    )
    raise NoBarsError(
        f"no stored {symbol} bars {_range_words(start, end)}: its {fitting[0]} bars run from "
        f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"
    )


def _range_words(start: datetime | None, end: datetime | None) -> str:
    if start is not None and end is not None:
        return f"between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M}"
    if start is not None:
        return f"from {start:%Y-%m-%d %H:%M} on"
    return f"before {end:%Y-%m-%d %H:%M}" if end is not None else "at all"


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

    Reads the series' coarsest rollup that divides the interval where there is one (an
    hourly chart of two million minute bars reads 33,000 rollup rows), else aggregates the
    stored bars; both give the same frame (see services.rollups).
    """
    start, end = representable(start), representable(end)
    bar_length = source_bar_length(symbol, interval, start, end)
    if timeframe_seconds(bar_length) == interval_seconds(interval):
        frame = _fetch_frame(symbol, bar_length, start, end).assign(bar_count=1)
        return _with_provisional(frame, symbol, bar_length, interval, start, end)
    rollup = _serving_rollup(symbol, bar_length, interval)
    if rollup is not None:
        frame = _from_rollup(symbol, bar_length, rollup, interval, start, end)
        if frame is not None:
            return frame
    return _aggregate(symbol, bar_length, interval, start, end)


def representable(moment: datetime | None) -> datetime | None:
    """`moment` moved into EARLIEST..LATEST (a naive one taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(max(moment, EARLIEST), LATEST)


def _aggregate(
    symbol: str, bar_length: str, interval: str, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    """Aggregate the stored bars themselves: in the database where we can, else in pandas."""
    if sql.supported():
        frame = _aggregate_in_database(symbol, bar_length, interval, start, end)
    else:
        frame = resample_bars(_fetch_frame(symbol, bar_length, start, end), interval)
    return _with_provisional(frame, symbol, bar_length, interval, start, end)


def _serving_rollup(symbol: str, bar_length: str, interval: str) -> str | None:
    """The coarsest rollup of the series whose length divides the interval, if the series
    has its rollups built (see services.rollups)."""
    target = interval_seconds(interval)
    fitting = [r for r in rollup_lengths(bar_length) if target % timeframe_seconds(r) == 0]
    if not fitting or not has_rollups(symbol, bar_length):
        return None
    return fitting[-1]


def _from_rollup(
    symbol: str,
    bar_length: str,
    rollup: str,
    interval: str,
    start: datetime | None,
    end: datetime | None,
) -> pd.DataFrame | None:
    """The bars at `interval` read off a rollup, or None when the range is inside one bucket.

    The rollup serves the whole buckets of [start, end); a range edge that cuts a bucket
    in two is aggregated from the stored bars of its part (under one bucket of bars), so
    the result is exactly what aggregating the stored bars would give. Coarser intervals
    than the rollup (4h from 1h, a week from days) combine its rows further in pandas.
    """
    seconds = timeframe_seconds(rollup)
    inner_start = _ceil(start, seconds) if start is not None else None
    inner_end = _floor(end, seconds) if end is not None else None
    if inner_start is not None and inner_end is not None and inner_start > inner_end:
        return None
    parts = []
    if start is not None and inner_start != pd.Timestamp(start):
        parts.append(_aggregate(symbol, bar_length, rollup, start, inner_start))
    parts.append(_read_rollup(symbol, bar_length, rollup, inner_start, inner_end))
    if end is not None and inner_end != pd.Timestamp(end):
        parts.append(_aggregate(symbol, bar_length, rollup, inner_end, end))
    frame = parts[0] if len(parts) == 1 else pd.concat([p for p in parts if len(p)] or parts[:1])
    if interval_seconds(interval) != seconds:
        frame = _combine(frame, interval_seconds(interval))
    return frame


def _combine(frame: pd.DataFrame, seconds: int) -> pd.DataFrame:
    """Rollup rows (or get_bars rows) merged into `seconds`-long buckets since 1970."""
    nanoseconds = seconds * 1_000_000_000
    stamps = frame.index.as_unit("ns").asi8 // nanoseconds * nanoseconds
    groups = frame.groupby(stamps, sort=True)
    combined = groups.agg(
        {
            "open": "first",
            "high": "max",
            "low": "min",
            "close": "last",
            "volume": "sum",
            "bar_count": "sum",
            "provisional": "any",
        }
    )
    combined.index = pd.DatetimeIndex(combined.index.to_numpy(dtype="datetime64[ns]"), tz="UTC")
    combined.index.name = "time"
    return combined.astype({"bar_count": "int64", "provisional": "bool"})


def _read_rollup(
    symbol: str,
    bar_length: str,
    rollup: str,
    start: datetime | None,
    end: datetime | None,
) -> pd.DataFrame:
    """A rollup's rows in [start, end), read straight off the cursor into numpy."""
    queryset = StockRollup.objects.filter(
        symbol=symbol, source_bar_length=bar_length, bar_length=rollup
    )
    if start is not None:
        queryset = queryset.filter(time__gte=start)
    if end is not None:
        queryset = queryset.filter(time__lt=end)
    columns = [*BAR_COLUMNS[1:], "bar_count", "provisional"]
    frame = _read_columns(queryset.order_by("time"), columns, StockRollup._meta.db_table)
    frame.index = frame.index.as_unit("ns")  # as the in-database aggregate's
    return frame.astype({"bar_count": "int64", "provisional": "bool"})


def _floor(moment: datetime, seconds: int) -> pd.Timestamp:
    """The start of the `seconds` bucket since 1970 holding `moment`."""
    step = seconds * 10**9
    return pd.Timestamp(pd.Timestamp(moment).value // step * step, tz="UTC")


def _ceil(moment: datetime, seconds: int) -> pd.Timestamp:
    step = seconds * 10**9
    return pd.Timestamp(-(-pd.Timestamp(moment).value // step) * step, tz="UTC")


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


def _aggregate_in_database(
    symbol: str, bar_length: str, interval: str, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    """GROUP BY time bucket in the database: millions of bars in, thousands of rows out.

    High, low, volume and count are plain aggregates; open and close are looked up by the
    bucket's first and last opening time through the unique index, which keeps this to one
    scan of the range on every engine instead of shipping each bar to Python.
    """
    bucket_sql, bucket_epoch_sql = sql.bucket_sql(
        interval_seconds(interval), f"{sql.quote(Stock._meta.db_table)}.{sql.quote('time')}"
    )
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
    query = (
        f"SELECT {bucket_epoch_sql}, ({lookup.format('open', 'first_time')}), "
        f"g.max_high, g.min_low, ({lookup.format('close', 'last_time')}), "
        f"g.total_volume, g.bar_count FROM ({inner_sql}) g ORDER BY 1"
    )
    params = [symbol, bar_length, symbol, bar_length, *inner_params]
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in sql.aggregate_settings():
            cursor.execute(statement)
        cursor.execute(query, params)
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
    queryset = _series(symbol, bar_length, start, end).order_by("time")
    return _read_columns(queryset, list(BAR_COLUMNS[1:]), Stock._meta.db_table)


def _read_columns(queryset, columns: list[str], table: str) -> pd.DataFrame:
    """time plus `columns` of the queryset's rows, read straight off the cursor into numpy:
    no model instances, no row loop.

    The ORM would build a Python datetime per row, which alone takes seconds for millions of
    minute bars; instead the engine hands over epoch microseconds (PostgreSQL) or its stored
    text (SQLite), and numpy/pandas convert the whole column at once.
    """
    epoch = sql.epoch_microseconds(f"{sql.quote(table)}.{sql.quote('time')}")
    if epoch is not None:
        queryset = queryset.annotate(epoch_us=RawSQL(epoch, [])).values_list("epoch_us", *columns)
    else:
        queryset = queryset.values_list("time", *columns)
    query, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    if not rows:
        empty = pd.DataFrame(columns=columns, index=pd.DatetimeIndex([], tz="UTC", name="time"))
        return empty.astype({name: "float64" for name in BAR_COLUMNS[1:] if name in columns})
    times, *values = zip(*rows, strict=True)
    frame = pd.DataFrame(
        {
            name: np.asarray(column, dtype="float64" if name in BAR_COLUMNS else None)
            for name, column in zip(columns, values, strict=True)
        },
        index=_to_utc_index(times, epoch is not None),
    )
    frame.index.name = "time"
    return frame


def _to_utc_index(times: tuple, epoch_microseconds: bool) -> pd.DatetimeIndex:
    if epoch_microseconds:
        return pd.DatetimeIndex(np.asarray(times, dtype="int64").astype("datetime64[us]"), tz="UTC")
    if isinstance(times[0], str):
        return pd.DatetimeIndex(pd.to_datetime(np.asarray(times), format="ISO8601", utc=True))
    return pd.DatetimeIndex(pd.to_datetime(list(times), utc=True))
