"""Reads from the bar store. Everything a view, command or notebook asks of the data."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import Count, Max, Min
from django.db.models.expressions import RawSQL

from predictor.models import Stock
from utils.resampling import BAR_COLUMNS, resample_bars
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
    """The symbol's bar lengths, finest first."""
    lengths = Stock.objects.filter(symbol=symbol).values_list("bar_length", flat=True).distinct()
    return sorted(set(lengths), key=timeframe_seconds)


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

    Returns a frame indexed by opening time (UTC) with open, high, low, close, volume and
    bar_count (how many stored bars each row was built from). Buckets with no stored bars are
    absent, never filled in. Raises NoBarsError when nothing is stored for the range.
    """
    bar_length = source_bar_length(symbol, interval, start, end)
    raw = _fetch_frame(symbol, bar_length, start, end)
    if timeframe_seconds(bar_length) == interval_seconds(interval):
        return raw.assign(bar_count=1)
    return resample_bars(raw, interval)


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
