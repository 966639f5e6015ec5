"""Rollups equal aggregating the finest bars, whatever wrote them, on SQLite and PostgreSQL.

After every kind of write (a CSV import, in chunks that cut hours in two; a CoinAPI update;
a provisional bar replaced by its complete values; `audit_bars --fix` deleting bad bars)
the hourly and daily rollups must hold exactly what an independent aggregation of the
stored bars gives, computed here with pandas from the rows, and `get_bars` must return the
same frame with its rollups as without them.
"""

from __future__ import annotations

import io
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from predictor.models import Stock, StockRollup
from predictor.selectors import get_bars
from predictor.services.bars import SeriesKey, insert_bars
from predictor.services.importing import import_csv_file
from predictor.services.rollups import rollup_lengths
from tests.coinapi_server import CoinApiServer, make_series, still_forming
from utils.timeframes import timeframe_seconds

pytestmark = pytest.mark.django_db

GEMINI = "GEMINI_SPOT_BTC_USD"
VALUES = ["open", "high", "low", "close", "volume"]
COLUMNS = [*VALUES, "bar_count", "provisional"]


# --- what the rollups must be, worked out from the stored rows ------------------------------


def stored_rows(symbol: str = "BTCUSD", bar_length: str = "1m") -> pd.DataFrame:
    rows = Stock.objects.filter(symbol=symbol, bar_length=bar_length).order_by("time")
    frame = pd.DataFrame(rows.values("time", *VALUES, "provisional"))
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def aggregate(rows: pd.DataFrame, seconds: int) -> pd.DataFrame:
    """The OHLCV rules applied by pandas, independently of the code under test."""
    buckets = rows["time"].dt.floor(f"{seconds}s")
    grouped = rows.groupby(buckets)
    frame = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
            "bar_count": grouped["open"].count().astype("int64"),
            "provisional": grouped["provisional"].any().astype(bool),
        }
    )
    frame.index = pd.DatetimeIndex(frame.index, name="time").as_unit("ns")
    return frame


def rollup_rows(symbol: str, source: str, length: str) -> pd.DataFrame:
    rows = StockRollup.objects.filter(
        symbol=symbol, source_bar_length=source, bar_length=length
    ).order_by("time")
    frame = pd.DataFrame(rows.values("time", *COLUMNS))
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("time"), utc=True), name="time")
    frame.index = frame.index.as_unit("ns")
    return frame.astype({"bar_count": "int64", "provisional": bool})


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    # Volumes are sums of doubles: the order of the terms may differ in the last bit.
    pd.testing.assert_frame_equal(
        actual[COLUMNS], expected[COLUMNS], check_exact=False, rtol=1e-12, check_freq=False
    )


def assert_rollups_match(symbol: str = "BTCUSD", bar_length: str = "1m") -> None:
    """Every rollup of the series equals the pandas aggregate of its stored bars, and so do
    get_bars' answers at the rollups' lengths, a multiple of one, and over a range whose
    ends cut buckets in two."""
    rows = stored_rows(symbol, bar_length)
    lengths = rollup_lengths(bar_length)
    assert lengths, "the series must have rollups for this test to mean anything"
    for length in lengths:
        seconds = timeframe_seconds(length)
        assert_same(rollup_rows(symbol, bar_length, length), aggregate(rows, seconds))
        assert_same(get_bars(symbol, length), aggregate(rows, seconds))
    start, end = rows["time"].iloc[7] + pd.Timedelta(seconds=1), rows["time"].iloc[-5]
    inside = rows[(rows["time"] >= start) & (rows["time"] < end)]
    if "1h" in lengths:
        assert_same(get_bars(symbol, "4h"), aggregate(rows, 4 * 3600))
        assert_same(get_bars(symbol, "H", start, end), aggregate(inside, 3600))
    assert_same(get_bars(symbol, "D", start, end), aggregate(inside, 86400))


def assert_same_without_rollups(*intervals: str, symbol: str = "BTCUSD") -> None:
    """get_bars answers the same from rollups as from aggregating the bars themselves."""
    rows = stored_rows(symbol)
    ranges = [(None, None), (rows["time"].iloc[3], rows["time"].iloc[-2])]
    with_rollups = [get_bars(symbol, i, s, e) for i in intervals for s, e in ranges]
    saved = list(StockRollup.objects.values())
    StockRollup.objects.all().delete()
    try:
        without = [get_bars(symbol, i, s, e) for i in intervals for s, e in ranges]
    finally:
        StockRollup.objects.bulk_create(StockRollup(**row) for row in saved)
    for rolled, aggregated in zip(with_rollups, without, strict=True):
        assert list(rolled.columns) == list(aggregated.columns)
        assert rolled.dtypes.to_dict() == aggregated.dtypes.to_dict()
        pd.testing.assert_frame_equal(rolled, aggregated, check_exact=False, rtol=1e-12)


# --- bars to store ------------------------------------------------------------------------------


def minute_bars(start: str, count: int, *, seed: int = 3, holes: tuple = ()) -> pd.DataFrame:
    """Valid minute bars with random prices, less the positions in `holes`."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=count, freq="1min", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, count)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.0005, count)) * close
    bars = pd.DataFrame(
        {
            "time": times,
            "open": open_.round(2),
            "high": (np.maximum(open_, close) + spread).round(2) + 0.01,
            "low": (np.minimum(open_, close) - spread).round(2) - 0.01,
            "close": close.round(2),
            "volume": rng.gamma(1.5, 2.0, count).round(8),
        }
    )
    return bars.drop(index=list(holes)).reset_index(drop=True)


def csv_lines(bars: pd.DataFrame, symbol: str = "BTCUSD") -> list[str]:
    lines = [
        "Created on 01-05-2021,https://www.CryptoDataDownload.com",
        "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume",
    ]
    for bar in bars.iloc[::-1].itertuples():  # newest first, as Gemini writes them
        lines.append(
            f"{bar.time.value // 10**6},{bar.time:%Y-%m-%d %H:%M:%S},{symbol},"
            f"{bar.open!r},{bar.high!r},{bar.low!r},{bar.close!r},{bar.volume!r}"
        )
    return lines


# 2 days and 3 hours of minutes, with a missing hour, a missing minute and a short last hour.
BARS = minute_bars("2021-01-01 00:00", 51 * 60 + 17, holes=(*range(600, 660), 1501))


# --- imports ----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [100_000, 3000, 97])
def test_an_import_leaves_rollups_equal_to_aggregating_its_bars(write_csv, chunk_rows):
    result = import_csv_file(
        write_csv("Gemini_BTCUSD_1min.csv", csv_lines(BARS)), chunk_rows=chunk_rows
    )
    assert result.error is None and result.inserted == len(BARS)
    assert rollup_lengths("1m") == ["1h", "1d"]
    assert StockRollup.objects.filter(bar_length="1h").count() == 51 + 1 - 1  # hour 10 empty
    assert StockRollup.objects.filter(bar_length="1d").count() == 3
    newest = StockRollup.objects.filter(bar_length="1h").latest("time")
    assert (newest.bar_count, newest.provisional) == (17, True)  # holds the provisional bar
    assert_rollups_match()
    assert_same_without_rollups("H", "D", "4h", "2h")


def test_a_second_import_of_the_same_file_changes_no_rollup(write_csv):
    path = write_csv("Gemini_BTCUSD_1min.csv", csv_lines(BARS))
    import_csv_file(path)
    fields = ["bar_length", "time", *COLUMNS]
    before = list(StockRollup.objects.order_by("bar_length", "time").values_list(*fields))
    result = import_csv_file(path)
    assert result.inserted == 0
    after = StockRollup.objects.order_by("bar_length", "time").values_list(*fields)
    assert list(after) == before


def test_an_hourly_series_has_a_daily_rollup_only(write_csv):
    hourly = make_series("2021-01-01", 60)
    result = import_csv_file(write_csv("Gemini_BTCUSD_1h.csv", csv_lines(hourly)))
    assert result.error is None
    assert set(StockRollup.objects.values_list("bar_length", flat=True)) == {"1d"}
    rows = stored_rows(bar_length="1h")
    assert_same(rollup_rows("BTCUSD", "1h", "1d"), aggregate(rows, 86400))
    assert_same(get_bars("BTCUSD", "D"), aggregate(rows, 86400))
    assert_same(get_bars("BTCUSD", "2D"), aggregate(rows, 2 * 86400))


# --- provisional bars -----------------------------------------------------------------------


def test_a_provisional_bar_replaced_by_a_newer_file_updates_its_buckets(write_csv):
    cut = 1800  # the first file ends mid-hour, its newest bar still forming
    first = pd.concat([BARS.head(cut - 1), still_forming(BARS.iloc[[cut - 1]])])
    import_csv_file(write_csv("first/Gemini_BTCUSD_1min.csv", csv_lines(first)))
    forming = BARS["time"][cut - 1]
    assert list(Stock.objects.filter(provisional=True).values_list("time", flat=True)) == [forming]
    assert StockRollup.objects.get(bar_length="1h", time=forming.floor("1h")).provisional
    assert_rollups_match()

    result = import_csv_file(write_csv("second/Gemini_BTCUSD_1min.csv", csv_lines(BARS)))
    assert result.replaced == 1
    hour = StockRollup.objects.get(bar_length="1h", time=forming.floor("1h"))
    assert not hour.provisional
    assert hour.volume == pytest.approx(
        BARS[BARS["time"].dt.floor("1h") == forming.floor("1h")]["volume"].sum(), rel=1e-12
    )
    assert_rollups_match()
    assert_same_without_rollups("H", "D")


# --- CoinAPI updates ------------------------------------------------------------------------


@pytest.fixture
def coinapi(settings):
    server = CoinApiServer({}, period_id="1MIN", bar=timedelta(minutes=1))
    with server as running:
        settings.COINAPI_URL = running.url
        settings.COINAPI_KEY = "test-key"
        settings.COINAPI_TIMEOUT = 2
        settings.COINAPI_MAX_RETRIES = 1
        settings.COINAPI_BACKOFF = 0.01
        settings.COINAPI_PAGE_LIMIT = 1000
        settings.COINAPI_SYMBOL_IDS = {}
        yield running


def clear_of_the_minute(margin: float = 15.0) -> pd.Timestamp:
    """The start of the current minute, after waiting out its last seconds if need be, so
    that the command, which reads the clock itself, sees the same minute as the test."""
    now = pd.Timestamp.now(tz="UTC")
    left = (now.floor("1min") + pd.Timedelta(minutes=1) - now).total_seconds()
    if left < margin:
        time.sleep(left + 0.1)
    return pd.Timestamp.now(tz="UTC").floor("1min")


def update() -> str:
    out = io.StringIO()
    call_command("update_stocks", "--no-progress", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_updates_and_their_provisional_replacements_keep_rollups_equal(coinapi):
    now = clear_of_the_minute()
    series = minute_bars(str(now - pd.Timedelta(minutes=2999)), 3000, seed=11)  # 2999 forms
    forming = series["time"][2998]  # closed on our clock, still forming on CoinAPI's
    coinapi.series[GEMINI] = series
    insert_bars(SeriesKey("BTCUSD", "1m", "Gemini", "test"), series.head(1500))
    assert_rollups_match()

    coinapi.clock = pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1)
    out = update()
    assert "inserted 1499" in out
    assert list(Stock.objects.filter(provisional=True).values_list("time", flat=True)) == [forming]
    assert StockRollup.objects.get(bar_length="1h", time=forming.floor("1h")).provisional
    assert_rollups_match()

    coinapi.clock = pd.Timestamp.now(tz="UTC")  # caught up: the forming bar is complete
    out = update()
    assert "replaced 1" in out
    assert_rollups_match()
    assert_same_without_rollups("H", "D", "4h")


# --- deletions by audit_bars --fix, and bars written past the app ---------------------------


def test_audit_fix_deletions_refresh_the_buckets_they_touch(write_csv):
    import_csv_file(write_csv("Gemini_BTCUSD_1min.csv", csv_lines(BARS)))
    bad = [  # past every check of the importer, as an old version of the app could store
        Stock(symbol="BTCUSD", bar_length="1m", time=pd.Timestamp("2021-01-01 03:07:30Z"),
              open=100.0, high=9e5, low=1.0, close=100.0, volume=7.0),  # off the grid
        Stock(symbol="BTCUSD", bar_length="1m", time=pd.Timestamp("2021-01-01 10:30Z"),
              open=100.0, high=120.0, low=90.0, close=100.0, volume=float("inf")),
    ]  # fmt: skip
    Stock.objects.bulk_create(bad)
    out = io.StringIO()
    call_command("rebuild_rollups", stdout=out)
    assert "rebuilt the rollups of 1 series" in out.getvalue()
    assert_rollups_match()  # the bad bars are in their buckets, as stored
    assert StockRollup.objects.get(bar_length="1h", time="2021-01-01T03:00Z").high == 9e5

    call_command("audit_bars", "--fix", stdout=io.StringIO())
    assert Stock.objects.count() == len(BARS)
    hour = StockRollup.objects.get(bar_length="1h", time="2021-01-01T03:00Z")
    assert hour.high < 9e5 and hour.bar_count == 60
    assert not StockRollup.objects.filter(bar_length="1h", time="2021-01-01T10:00Z").exists()
    assert_rollups_match()
    assert_same_without_rollups("H", "D")


def test_bars_written_past_the_app_are_read_without_rollups_until_a_write_builds_them():
    bars = BARS.head(500)
    Stock.objects.bulk_create(
        Stock(symbol="BTCUSD", bar_length="1m", time=row.time, open=row.open, high=row.high,
              low=row.low, close=row.close, volume=row.volume)
        for row in bars.itertuples()
    )  # fmt: skip
    assert not StockRollup.objects.exists()
    rows = stored_rows()
    assert_same(get_bars("BTCUSD", "H"), aggregate(rows, 3600))  # aggregated on the fly

    insert_bars(SeriesKey("BTCUSD", "1m", "", "test"), BARS.iloc[500:510])
    assert StockRollup.objects.filter(bar_length="1h").count() == 9  # the whole series
    assert_rollups_match()


def test_a_range_inside_one_bucket_is_aggregated_from_the_bars(write_csv):
    import_csv_file(write_csv("Gemini_BTCUSD_1min.csv", csv_lines(BARS)))
    start, end = pd.Timestamp("2021-01-01 05:10Z"), pd.Timestamp("2021-01-01 05:40Z")
    rows = stored_rows()
    inside = rows[(rows["time"] >= start) & (rows["time"] < end)]
    assert_same(get_bars("BTCUSD", "H", start, end), aggregate(inside, 3600))
    assert get_bars("BTCUSD", "H", start, end)["bar_count"].tolist() == [30]
