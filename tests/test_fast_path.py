"""The bar store's fast path: a batch whose time range holds no stored bar goes straight in
(a plain INSERT on SQLite, a binary COPY into the bar table on PostgreSQL) with its rollups
aggregated from the batch itself; anything else takes the path that skips stored bars.
Run on both engines (the PostgreSQL job runs every django_db test again)."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from django.db import connections

import predictor.services.bars as bars_service
from predictor.models import Stock, StockRollup
from predictor.services.bars import SeriesKey, SeriesKeyError, insert_bars
from tests.coinapi_server import make_series
from tests.test_rollups import BARS, assert_rollups_match, minute_bars

pytestmark = pytest.mark.django_db

KEY = SeriesKey("BTCUSD", "1m", "Gemini", "test")


@pytest.fixture
def paths_taken(monkeypatch) -> list[bool]:
    """Records, for every engine write, whether it was the fast path (stored bars not
    skipped) or the careful one."""
    taken: list[bool] = []
    real = bars_service._insert_rows

    def spy(key, bars, *, skip_stored):
        taken.append(not skip_stored)
        return real(key, bars, skip_stored=skip_stored)

    monkeypatch.setattr(bars_service, "_insert_rows", spy)
    return taken


def stored_values(symbol: str = "BTCUSD") -> pd.DataFrame:
    rows = Stock.objects.filter(symbol=symbol).order_by("time")
    frame = pd.DataFrame(rows.values("time", "open", "high", "low", "close", "volume"))
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def test_a_batch_between_stored_bars_goes_fast_and_shares_their_buckets(paths_taken):
    # Stored: the first ten minutes of hour 0 and ten minutes of hour 33, so the batch in
    # between begins and ends inside buckets that already hold bars.
    insert_bars(KEY, pd.concat([BARS.iloc[:10], BARS.iloc[2000:2010]]))
    result = insert_bars(KEY, BARS.iloc[10:2000])
    assert paths_taken[-1] is True
    assert (result.inserted, result.replaced) == (1990, 0)
    pd.testing.assert_frame_equal(stored_values(), BARS.iloc[:2010], check_freq=False)
    assert_rollups_match()


def test_a_batch_overlapping_stored_bars_takes_the_careful_path(paths_taken):
    insert_bars(KEY, BARS.iloc[:100])
    result = insert_bars(KEY, BARS.iloc[50:300])
    assert paths_taken == [True, False]
    assert result.inserted == 200
    assert Stock.objects.count() == 300
    assert_rollups_match()


def test_a_bar_stored_after_the_emptiness_check_sends_the_batch_the_careful_way(
    monkeypatch, paths_taken
):
    """Another writer's bar appearing between the check and the insert (a race only
    PostgreSQL allows) is a unique violation; the batch then skips it, losing nothing."""
    insert_bars(KEY, BARS.iloc[1000:1001])
    monkeypatch.setattr(bars_service, "_range_is_empty", lambda key, times: True)
    result = insert_bars(KEY, BARS.iloc[:3000])
    assert paths_taken[-2:] == [True, False]
    assert result.inserted == 2999
    pd.testing.assert_frame_equal(stored_values(), BARS.iloc[:3000], check_freq=False)
    assert_rollups_match()


def test_the_fast_path_stores_every_column_exactly(paths_taken):
    # An empty exchange; a source with quotes, placeholders and non-ASCII letters, which
    # SQLite's statement holds as a literal and PostgreSQL's COPY as bytes.
    key = SeriesKey("ETHUSD", "1m", "", "csv:it's 100%s_?_Ä€_1min.csv")
    bars = minute_bars("2021-03-01 00:00", 500, seed=11)
    bars.loc[3, "volume"] = 0.1 + 0.2  # a double with no short decimal form
    assert insert_bars(key, bars.iloc[:400]).inserted == 400
    assert insert_bars(key, bars.iloc[300:]).inserted == 100  # the careful path, same key
    assert paths_taken == [True, False]
    rows = Stock.objects.filter(symbol="ETHUSD")
    assert set(rows.values_list("bar_length", "exchange", "source", "provisional")) == {
        ("1m", "", key.source, False)
    }
    pd.testing.assert_frame_equal(stored_values("ETHUSD"), bars, check_exact=True)
    assert StockRollup.objects.filter(symbol="ETHUSD", bar_length="1h").count() == 9


def test_the_newest_bar_of_a_fast_batch_is_provisional_and_so_is_its_bucket(paths_taken):
    bars = BARS.iloc[:3000]
    insert_bars(KEY, bars, provisional_time=bars["time"].iloc[-1])
    assert paths_taken == [True]
    assert list(Stock.objects.filter(provisional=True).values_list("time", flat=True)) == [
        bars["time"].iloc[-1]
    ]
    assert StockRollup.objects.filter(provisional=True).count() == 2  # its hour and its day
    assert_rollups_match()


@pytest.mark.django_db(transaction=True)
def test_another_writer_waits_until_a_fast_batch_commits(monkeypatch):
    """Another writer's bar at a time the batch lacks (BARS miss an hour) raises no unique
    violation; were it stored between the emptiness check and the commit, the rollups the
    fast path aggregates from its batch would leave it out. The series' write lock makes
    the other writer wait (PostgreSQL's advisory lock; SQLite's IMMEDIATE transaction)."""
    insert_bars(KEY, BARS.iloc[:1])
    insert_bars(KEY, BARS.iloc[2000:2001])
    other = BARS.iloc[[0]].copy()
    other["time"] = pd.Timestamp("2021-01-01 10:30", tz="UTC")  # inside the missing hour
    writers: list[threading.Thread] = []

    def other_writer() -> None:
        try:
            insert_bars(SeriesKey("BTCUSD", "1m", "Gemini", "other writer"), other)
        finally:
            connections.close_all()

    real_check = bars_service._range_is_empty

    def check_then_let_the_other_writer_in(key, times):
        empty = real_check(key, times)
        if not writers:
            writers.append(threading.Thread(target=other_writer))
            writers[0].start()
            time.sleep(0.5)  # time enough for it to commit, were it not kept waiting
        return empty

    monkeypatch.setattr(bars_service, "_range_is_empty", check_then_let_the_other_writer_in)
    insert_bars(KEY, BARS.iloc[1:2000])
    writers[0].join(30)
    assert not writers[0].is_alive()
    assert Stock.objects.filter(source="other writer").count() == 1
    assert_rollups_match()


def test_an_hourly_series_goes_fast_with_its_daily_rollup(paths_taken):
    hourly = make_series("2021-01-01", 24 * 9)
    key = SeriesKey("BTCUSD", "1h", "Gemini", "test")
    insert_bars(key, hourly.iloc[:5])
    insert_bars(key, hourly.iloc[5:])
    assert paths_taken == [True, True]
    assert StockRollup.objects.filter(bar_length="1d").count() == 9
    assert_rollups_match(bar_length="1h")


def test_a_name_with_a_nul_character_is_refused_and_nothing_is_stored():
    for key in (
        SeriesKey("BTCUSD\x00X", "1m", "Gemini", "test"),
        SeriesKey("BTCUSD", "1m", "Gem\x00ini", "test"),
        SeriesKey("BTCUSD", "1m", "Gemini", "csv:a\x00.csv"),
    ):
        with pytest.raises(SeriesKeyError, match="NUL character"):
            insert_bars(key, BARS.iloc[:5])
    assert not Stock.objects.exists()


def test_the_same_instant_is_the_same_stored_time_whatever_else_the_batch_holds():
    """A batch with one time off the whole second used to write every time of the batch
    with microseconds on SQLite, and the unique index then took 00:00:00.000000 and
    00:00:00 for two bars."""
    first = BARS.iloc[:10].copy()
    first.loc[first.index[-1], "time"] += pd.Timedelta(milliseconds=500)
    insert_bars(KEY, first)
    assert insert_bars(KEY, BARS.iloc[:9]).inserted == 0
    assert Stock.objects.count() == 10
