"""Coarser bars from finer ones: utils.resampling on its own and predictor.selectors.get_bars.

Expected bars are worked out by hand from the minute bars below.
"""

from __future__ import annotations

import pandas as pd
import pytest

from predictor.models import Stock
from predictor.selectors import NoBarsError, get_bars, source_bar_length, stored_bar_lengths
from predictor.services.importing import import_csv_file
from tests.conftest import FIXTURE_FILES, utc
from utils.resampling import resample_bars
from utils.timeframes import interval_offset, interval_seconds

COLUMNS = ["open", "high", "low", "close", "volume", "bar_count"]

# 2020-01-01 unless a date is given; hour 01 has no bars at all.
MINUTES = [
    ("2020-01-01 00:00", 10.0, 12.0, 9.0, 11.0, 1.0),
    ("2020-01-01 00:01", 11.0, 15.0, 10.0, 14.0, 2.0),
    ("2020-01-01 00:02", 14.0, 14.0, 8.0, 9.0, 3.0),
    ("2020-01-01 00:59", 9.0, 10.0, 7.0, 8.0, 4.0),
    ("2020-01-01 02:30", 20.0, 21.0, 19.0, 20.5, 5.0),
    ("2020-01-01 03:59", 21.0, 22.0, 20.0, 21.5, 6.0),
    ("2020-01-01 04:00", 30.0, 31.0, 29.0, 30.5, 7.0),
    ("2020-01-02 00:00", 40.0, 41.0, 39.0, 40.5, 8.0),
]

# Hourly bars of the same symbol whose values differ from anything the minutes give.
HOURS = [
    (f"2020-01-01 {h:02d}:00", 1000.0 + h, 1010.0 + h, 990.0 + h, 1005.0 + h, 50.0)
    for h in range(6)
]

EXPECTED = {
    "H": [
        ("2020-01-01 00:00", 10.0, 15.0, 7.0, 8.0, 10.0, 4),
        ("2020-01-01 02:00", 20.0, 21.0, 19.0, 20.5, 5.0, 1),
        ("2020-01-01 03:00", 21.0, 22.0, 20.0, 21.5, 6.0, 1),
        ("2020-01-01 04:00", 30.0, 31.0, 29.0, 30.5, 7.0, 1),
        ("2020-01-02 00:00", 40.0, 41.0, 39.0, 40.5, 8.0, 1),
    ],
    "4h": [
        ("2020-01-01 00:00", 10.0, 22.0, 7.0, 21.5, 21.0, 6),
        ("2020-01-01 04:00", 30.0, 31.0, 29.0, 30.5, 7.0, 1),
        ("2020-01-02 00:00", 40.0, 41.0, 39.0, 40.5, 8.0, 1),
    ],
    "D": [
        ("2020-01-01 00:00", 10.0, 31.0, 7.0, 30.5, 28.0, 7),
        ("2020-01-02 00:00", 40.0, 41.0, 39.0, 40.5, 8.0, 1),
    ],
    "15min": [
        ("2020-01-01 00:00", 10.0, 15.0, 8.0, 9.0, 6.0, 3),
        ("2020-01-01 00:45", 9.0, 10.0, 7.0, 8.0, 4.0, 1),
        ("2020-01-01 02:30", 20.0, 21.0, 19.0, 20.5, 5.0, 1),
        ("2020-01-01 03:45", 21.0, 22.0, 20.0, 21.5, 6.0, 1),
        ("2020-01-01 04:00", 30.0, 31.0, 29.0, 30.5, 7.0, 1),
        ("2020-01-02 00:00", 40.0, 41.0, 39.0, 40.5, 8.0, 1),
    ],
    "M": [(*bar, 1) for bar in MINUTES],
}


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Bars indexed by UTC opening time, as resample_bars and get_bars use them."""
    index = pd.DatetimeIndex([pd.Timestamp(r[0], tz="UTC") for r in rows], name="time")
    return pd.DataFrame([r[1:6] for r in rows], index=index, columns=COLUMNS[:5])


def rows_of(result: pd.DataFrame, provisional_rows: tuple[int, ...] = ()) -> list[tuple]:
    """Rows as tuples. get_bars' `provisional` column must be True exactly at the positions
    given (bars stored by bulk_create never are); resample_bars has no such column."""
    if "provisional" in result:
        expected = [i in provisional_rows for i in range(len(result))]
        assert result["provisional"].tolist() == expected
        result = result.drop(columns="provisional")
    assert list(result.columns) == COLUMNS
    assert str(result.index.tz) == "UTC"
    assert result["bar_count"].dtype == "int64"
    return [
        (f"{time:%Y-%m-%d %H:%M}", *(float(v) for v in values[:5]), int(values[5]))
        for time, *values in result.itertuples()
    ]


def store(symbol: str, bar_length: str, rows: list[tuple]) -> None:
    Stock.objects.bulk_create(
        Stock(
            symbol=symbol,
            bar_length=bar_length,
            time=utc(time),
            open=o,
            high=h,
            low=low,
            close=c,
            volume=v,
        )
        for time, o, h, low, c, v in rows
    )


# -- the rules, without a database ------------------------------------------------------


@pytest.mark.parametrize("interval", ["H", "4h", "D", "15min"])
def test_resample_rules(interval):
    assert rows_of(resample_bars(frame(MINUTES), interval)) == EXPECTED[interval]


def test_resample_keeps_the_index_name_and_never_fills_gaps():
    result = resample_bars(frame(MINUTES), "H")
    assert result.index.name == "time"
    assert pd.Timestamp("2020-01-01 01:00", tz="UTC") not in result.index
    assert len(result) == 5  # not 25 hourly rows from the first to the last bar


def test_resample_of_unsorted_bars_uses_time_order():
    """open and close are the first and last bars in time, not in row order."""
    shuffled = frame(MINUTES).iloc[[3, 0, 2, 1]]
    assert rows_of(resample_bars(shuffled, "H")) == [EXPECTED["H"][0]]


@pytest.mark.parametrize("interval", ["2D", "2d", "48h"])
def test_multi_day_buckets_do_not_depend_on_where_the_range_starts(interval):
    """Buckets are counted from the epoch: 2020-01-01 starts one (18262 days after it)."""
    days = [
        (f"2020-01-{d:02d} 05:00", float(d), float(d), float(d), float(d), 1.0) for d in (2, 3, 4)
    ]
    assert rows_of(resample_bars(frame(days), interval)) == [
        ("2020-01-01 00:00", 2.0, 2.0, 2.0, 2.0, 1.0, 1),
        ("2020-01-03 00:00", 3.0, 4.0, 3.0, 4.0, 2.0, 2),
    ]
    assert rows_of(resample_bars(frame(days[1:]), interval)) == [
        ("2020-01-03 00:00", 3.0, 4.0, 3.0, 4.0, 2.0, 2),
    ]


@pytest.mark.parametrize(
    ("interval", "seconds"),
    [("M", 60), ("H", 3600), ("D", 86400), ("4h", 14400), ("15min", 900), ("1w", 604800)],
)
def test_interval_names(interval, seconds):
    assert interval_seconds(interval) == seconds
    assert pd.Timedelta(interval_offset(interval)).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["fortnightly", "1 hour"])
def test_unknown_interval(bad):
    with pytest.raises(ValueError, match="is not M, H, D"):
        interval_offset(bad)


# -- through the selector, on stored bars -----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("interval", ["M", "H", "4h", "D", "15min"])
def test_get_bars_builds_from_the_finest_bars_stored(interval):
    store("BTCUSD", "1m", MINUTES)
    store("BTCUSD", "1h", HOURS)
    assert source_bar_length("BTCUSD", interval) == "1m"
    assert rows_of(get_bars("BTCUSD", interval)) == EXPECTED[interval]


@pytest.mark.django_db
def test_get_bars_range_is_half_open_and_partial_buckets_say_so():
    store("BTCUSD", "1m", MINUTES)
    result = get_bars("BTCUSD", "H", start=utc("2020-01-01 00:01"), end=utc("2020-01-01 02:30"))
    # 00:00 is before the start and 02:30 is the (excluded) end: three minutes remain.
    assert rows_of(result) == [("2020-01-01 00:00", 11.0, 15.0, 7.0, 8.0, 9.0, 3)]


@pytest.mark.django_db
def test_get_bars_falls_back_to_coarser_bars_where_no_finer_ones_are():
    store("BTCUSD", "1m", MINUTES)
    store("BTCUSD", "1h", HOURS)
    start, end = utc("2020-01-01 05:00"), utc("2020-01-01 06:00")
    assert source_bar_length("BTCUSD", "H", start, end) == "1h"
    assert rows_of(get_bars("BTCUSD", "H", start, end)) == [(*HOURS[5], 1)]
    with pytest.raises(NoBarsError):
        get_bars("BTCUSD", "M", start, end)  # hours cannot be split into minutes


@pytest.mark.django_db
def test_get_bars_from_hourly_bars_only():
    store("ETHUSD", "1h", HOURS)
    assert rows_of(get_bars("ETHUSD", "H")) == [(*bar, 1) for bar in HOURS]
    assert rows_of(get_bars("ETHUSD", "4h")) == [
        ("2020-01-01 00:00", 1000.0, 1013.0, 990.0, 1008.0, 200.0, 4),
        ("2020-01-01 04:00", 1004.0, 1015.0, 994.0, 1010.0, 100.0, 2),
    ]
    with pytest.raises(NoBarsError):
        get_bars("ETHUSD", "90min")  # an hour does not divide 90 minutes
    with pytest.raises(NoBarsError):
        get_bars("LTCUSD", "H")


@pytest.mark.django_db
def test_hourly_and_minute_bars_of_one_symbol_live_side_by_side():
    store("BTCUSD", "1m", MINUTES)
    store("BTCUSD", "1h", HOURS)
    assert Stock.objects.filter(symbol="BTCUSD", bar_length="1m").count() == len(MINUTES)
    assert Stock.objects.filter(symbol="BTCUSD", bar_length="1h").count() == len(HOURS)
    at_midnight = Stock.objects.filter(symbol="BTCUSD", time=utc("2020-01-01 00:00"))
    assert sorted(at_midnight.values_list("bar_length", "open")) == [("1h", 1000.0), ("1m", 10.0)]
    assert stored_bar_lengths("BTCUSD") == ["1m", "1h"]


@pytest.mark.django_db
def test_imported_minute_and_hourly_files_of_one_symbol_side_by_side():
    minute = FIXTURE_FILES["Gemini_ETHUSD_2020_1min.csv"]
    hourly = FIXTURE_FILES["Coinbase_ETHUSD_1h_old.csv"]
    assert import_csv_file(minute.path).inserted == len(minute.bars)
    assert import_csv_file(hourly.path).inserted == len(hourly.bars)
    assert stored_bar_lengths("ETHUSD") == ["1m", "1h"]
    # Hourly bars are in 2019 and minute bars in 2020: each range uses what it has. Each
    # file's newest bar is its series' provisional one.
    assert rows_of(get_bars("ETHUSD", "H", end=utc("2020-01-01 00:00")), (3,)) == [
        (f"{t:%Y-%m-%d %H:%M}", o, h, low, c, v, 1) for t, o, h, low, c, v in hourly.bars
    ]
    assert rows_of(get_bars("ETHUSD", "H", start=utc("2020-01-01 00:00")), (0,)) == [
        ("2020-06-01 00:00", 230.5, 231.9, 230.4, 231.8, 28.25, 5)
    ]
    assert rows_of(get_bars("ETHUSD", "5min", start=utc("2020-06-01 00:00")), (1,)) == [
        ("2020-06-01 00:00", 230.5, 231.6, 230.4, 231.5, 16.25, 4),
        ("2020-06-01 00:05", 231.5, 231.9, 231.4, 231.8, 12.0, 1),
    ]
