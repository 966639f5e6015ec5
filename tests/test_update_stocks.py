"""update_stocks against a real HTTP server that speaks CoinAPI and misbehaves on demand.

Every scenario ends in one of two states: the stored bars equal the server's series (no
duplicates, every hole reported), or the command failed with a clear one-line message and
everything stored before the failure is intact.

Most tests run inside the usual rolled-back test transaction, where each page the command
commits becomes a savepoint. The ones marked `committed` commit for real: the resume after a
give-up (what a crash leaves behind is what was committed), and every test that writes more
than one series, because on PostgreSQL `insert_bars` stages rows in a temporary table that is
only emptied at COMMIT, so inside one outer transaction one series' rows would be re-inserted
under the next series' key.
"""

from __future__ import annotations

import io
import socket
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from cryptooracle.settings.base import coinapi_symbol_ids
from predictor.models import Stock
from predictor.services.bars import SeriesKey, insert_bars
from tests.coinapi_server import CoinApiServer, make_series
from utils.coinapi import default_symbol_id, parse_page, period_id

pytestmark = pytest.mark.django_db
committed = pytest.mark.django_db(transaction=True)

GEMINI = "GEMINI_SPOT_BTC_USD"
SERIES = make_series("2021-01-01", 48)  # two days of 1h bars
STORED = 5  # bars stored before each update


@pytest.fixture
def server():
    with CoinApiServer({GEMINI: SERIES}) as running:
        yield running


@pytest.fixture
def coinapi(server, settings):
    """Point the command at the test server, with short timeouts and backoffs."""
    settings.COINAPI_URL = server.url
    settings.COINAPI_KEY = "test-key"
    settings.COINAPI_TIMEOUT = 0.4
    settings.COINAPI_MAX_RETRIES = 3
    settings.COINAPI_BACKOFF = 0.01
    settings.COINAPI_MAX_RETRY_AFTER = 2
    settings.COINAPI_PAGE_LIMIT = 10
    settings.COINAPI_SYMBOL_IDS = {}
    return server


def store(bars: pd.DataFrame, symbol="BTCUSD", bar_length="1h", exchange="Gemini") -> None:
    insert_bars(SeriesKey(symbol, bar_length, exchange, "test"), bars)


def stored(symbol="BTCUSD", bar_length="1h") -> pd.DataFrame:
    rows = Stock.objects.filter(symbol=symbol, bar_length=bar_length).order_by("time")
    frame = pd.DataFrame(rows.values("time", "open", "high", "low", "close", "volume"))
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def assert_same_bars(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    expected = expected.reset_index(drop=True)
    assert actual["time"].is_unique
    assert list(actual["time"]) == list(expected["time"])
    for name in ("open", "high", "low", "close", "volume"):
        assert actual[name].tolist() == pytest.approx(expected[name].tolist()), name


def update(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("update_stocks", "--no-progress", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fail(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        update(*args)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the normal run ---------------------------------------------------------------------


def test_fetches_everything_after_the_last_stored_bar_page_by_page(coinapi):
    store(SERIES.head(STORED))
    out, err = update()
    assert_same_bars(stored(), SERIES)
    assert "BTCUSD 1h from GEMINI_SPOT_BTC_USD" in out
    assert "bars fetched 43, inserted 43, requests 6, gaps 0" in out  # 5 pages + 1 empty
    assert err == ""
    starts = [r["query"]["time_start"] for r in coinapi.requests]
    assert starts[:2] == ["2021-01-01T05:00:00", "2021-01-01T15:00:00"]  # after the last seen
    assert {r["query"]["period_id"] for r in coinapi.requests} == {"1HRS"}
    assert {r["query"]["limit"] for r in coinapi.requests} == {"10"}
    assert {r["key"] for r in coinapi.requests} == {"test-key"}
    new = Stock.objects.filter(time__gte=SERIES["time"][STORED])
    assert set(new.values_list("exchange", "source")) == {("Gemini", "CoinAPI " + GEMINI)}


def test_a_second_run_changes_nothing(coinapi):
    store(SERIES.head(STORED))
    update()
    out, _ = update("--limit", "100")
    assert "bars fetched 0, inserted 0, requests 1, gaps 0" in out
    assert_same_bars(stored(), SERIES)


def test_the_bar_still_forming_is_never_stored(coinapi):
    now = pd.Timestamp.now(tz="UTC").floor("1h")
    series = make_series(str(now - pd.Timedelta(hours=20)), 21)  # the last bar is forming
    coinapi.series[GEMINI] = series
    coinapi.ignore_time_end = True  # even a server that sends it anyway
    store(series.head(STORED))
    out, _ = update()
    assert_same_bars(stored(), series.head(20))
    assert coinapi.requests[0]["query"]["time_end"] == f"{now:%Y-%m-%dT%H:%M:%S}"
    assert "no bars yet" not in out


@committed
def test_only_the_series_named_by_flags(coinapi):
    store(SERIES.head(STORED))
    eth = make_series("2021-01-01", 3)
    store(eth, symbol="ETHUSD")
    update("-s", "btcusd", "-b", "1h")
    assert_same_bars(stored(), SERIES)
    assert len(stored("ETHUSD")) == 3
    assert {r["path"] for r in coinapi.requests} == {f"/v1/ohlcv/{GEMINI}/history"}


@committed
def test_a_bar_length_alone_picks_the_stored_series_of_that_length(coinapi):
    store(SERIES.head(STORED))
    store(make_series("2021-01-01", 3, freq="1D"), symbol="ETHUSD", bar_length="1d")
    update("-b", "1h")
    assert_same_bars(stored(), SERIES)
    assert len(stored("ETHUSD", "1d")) == 3
    assert "no bars of bar length 4h stored yet" in fail("-b", "4h")


def test_nothing_stored_at_all_says_what_to_do(coinapi):
    assert "no bars stored yet: run import_stocks first" in fail()
    assert coinapi.requests == []


@committed
def test_every_stored_series_by_default(coinapi):
    eth_series = make_series("2021-01-01", 30)
    coinapi.series["GEMINI_SPOT_ETH_USD"] = eth_series
    store(SERIES.head(STORED))
    store(eth_series.head(STORED), symbol="ETHUSD")
    out, _ = update()
    assert_same_bars(stored(), SERIES)
    assert_same_bars(stored("ETHUSD"), eth_series)
    assert "ETHUSD 1h from GEMINI_SPOT_ETH_USD" in out


def test_holes_in_the_servers_series_are_reported_as_gaps(coinapi):
    holey = SERIES.drop(index=[10, 11, 12, 30]).reset_index(drop=True)
    coinapi.series[GEMINI] = holey
    store(SERIES.head(STORED))
    out, err = update()
    assert_same_bars(stored(), holey)
    assert "gaps 2" in out
    assert "no bars between 2021-01-01 09:00 and 2021-01-01 13:00 UTC (3 missing)" in err
    assert "no bars between 2021-01-02 05:00 and 2021-01-02 07:00 UTC (1 missing)" in err


def test_a_hole_right_after_the_last_stored_bar_is_a_gap(coinapi):
    coinapi.series[GEMINI] = SERIES.drop(index=[5, 6]).reset_index(drop=True)
    store(SERIES.head(STORED))
    _, err = update()
    assert "no bars between 2021-01-01 04:00 and 2021-01-01 07:00 UTC (2 missing)" in err


def test_backfill_fills_holes_and_never_changes_a_stored_bar(coinapi):
    kept = SERIES.drop(index=range(10, 20)).copy()
    kept.loc[3, "close"] = 100.75  # differs from the server: must stay as stored
    store(kept)
    out, _ = update("--backfill", "2021-01-01")
    expected = SERIES.copy()
    expected.loc[3, "close"] = 100.75
    assert_same_bars(stored(), expected)
    assert "inserted 10," in out
    assert coinapi.requests[0]["query"]["time_start"] == "2021-01-01T00:00:00"


@committed
def test_a_series_not_stored_yet_starts_at_backfill(coinapi):
    store(make_series("2021-01-01", 3), symbol="ETHUSD")
    update("-s", "BTCUSD", "-b", "1h", "--backfill", "2021-01-01T00:00")
    assert_same_bars(stored(), SERIES)


# --- a server that misbehaves, then recovers ---------------------------------------------


@pytest.mark.parametrize("fault", ["500", "503", "drop", "cut", "garbage", "object", "short"])
def test_transient_failures_are_retried(coinapi, fault):
    coinapi.faults = [None, fault, fault]  # the second page fails twice, then works
    store(SERIES.head(STORED))
    out, _ = update()
    assert_same_bars(stored(), SERIES)
    assert "inserted 43," in out
    assert [r["fault"] for r in coinapi.requests[:3]] == [None, fault, fault]


def test_429_waits_as_long_as_retry_after_says(coinapi):
    coinapi.faults = ["429"]
    store(SERIES.head(STORED))
    began = time.monotonic()
    out, _ = update()
    assert time.monotonic() - began >= 1.0  # Retry-After: 1
    assert_same_bars(stored(), SERIES)
    assert "requests 7," in out  # the 429 counts as a request


@pytest.mark.parametrize("fault", ["hang", "hang_body"])
def test_a_server_that_hangs_past_the_timeout_is_retried(coinapi, fault):
    coinapi.faults = [fault]
    store(SERIES.head(STORED))
    began = time.monotonic()
    update()
    assert time.monotonic() - began < 1.5  # the client timeout (0.4 s), not the hang (2 s)
    assert_same_bars(stored(), SERIES)


def test_short_pages_do_not_end_the_update_early(coinapi):
    coinapi.page_cap = 3  # fewer than the limit of 10, though more bars follow
    store(SERIES.head(STORED))
    update()
    assert_same_bars(stored(), SERIES)


def test_overlapping_pages_store_nothing_twice(coinapi):
    coinapi.overlap = True
    store(SERIES.head(STORED))
    out, _ = update()
    assert_same_bars(stored(), SERIES)
    assert "bars fetched 43, inserted 43," in out


def test_an_invalid_item_is_reported_with_its_position_and_not_stored(coinapi):
    bad = SERIES["time"][12]
    coinapi.invalid_times = {bad}
    store(SERIES.head(STORED))
    out, err = update()
    assert_same_bars(stored(), SERIES.drop(index=12))
    assert "invalid items 1" in out
    assert (
        "not stored: item 8 of the page from 2021-01-01 05:00: price_high is missing or not "
        "a number" in err
    )
    assert "no bars between 2021-01-01 11:00 and 2021-01-01 13:00 UTC (1 missing)" in err


# --- failures that stop the command ------------------------------------------------------


@committed
def test_giving_up_keeps_every_page_already_stored_and_the_next_run_resumes(coinapi):
    coinapi.faults = [None, "500", "500", "500", "500"]  # 1 try + 3 retries for page two
    store(SERIES.head(STORED))
    message = fail()
    assert "HTTP 500" in message and "after 4 tries" in message
    assert "every bar fetched before is kept" in message
    assert_same_bars(stored(), SERIES.head(STORED + 10))
    update()
    assert_same_bars(stored(), SERIES)


def test_a_429_that_never_ends_says_how_long_the_server_asked_to_wait(coinapi, settings):
    coinapi.faults = ["429"] * 4
    coinapi.retry_after = 3600  # the client waits at most COINAPI_MAX_RETRY_AFTER
    settings.COINAPI_MAX_RETRY_AFTER = 0.1
    store(SERIES.head(STORED))
    message = fail("--limit", "100")
    assert "HTTP 429" in message and "wait 3600 s" in message
    assert_same_bars(stored(), SERIES.head(STORED))


def test_a_server_that_cannot_be_reached_is_a_clear_error(coinapi, settings):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        settings.COINAPI_URL = f"http://127.0.0.1:{unused.getsockname()[1]}"
    store(SERIES.head(STORED))
    assert "CoinAPI could not be reached after 4 tries" in fail()
    assert_same_bars(stored(), SERIES.head(STORED))


def test_a_body_that_never_parses_is_reported_not_stored(coinapi):
    coinapi.faults = ["garbage"] * 4
    store(SERIES.head(STORED))
    message = fail()
    assert "not JSON" in message
    assert_same_bars(stored(), SERIES.head(STORED))


def test_a_rejected_key_says_the_key_is_wrong_and_changes_nothing(coinapi, settings):
    settings.COINAPI_KEY = "wrong-key"
    store(SERIES.head(STORED))
    message = fail()
    assert "CoinAPI rejected the key (HTTP 401: Invalid API key): check COINAPI_KEY" in message
    assert len(coinapi.requests) == 1  # a wrong key is not retried
    assert_same_bars(stored(), SERIES.head(STORED))


def test_no_key_is_a_one_line_error_before_any_request(coinapi, settings):
    settings.COINAPI_KEY = ""
    store(SERIES.head(STORED))
    assert "set the COINAPI_KEY environment variable" in fail()
    assert coinapi.requests == []
    assert_same_bars(stored(), SERIES.head(STORED))


def test_an_unknown_symbol_id_is_a_clear_error(coinapi):
    store(SERIES.head(STORED))
    message = fail("--symbol-id", "BTCUSD=GEMINI_SPOT_BTC_EUR")
    assert "HTTP 400: Unknown symbol GEMINI_SPOT_BTC_EUR" in message


def test_a_series_with_nothing_stored_needs_backfill(coinapi):
    store(SERIES.head(STORED))
    assert "give --backfill FROM" in fail("-s", "BTCUSD", "-b", "1d")
    assert "no stored ETHUSD bars" in fail("-s", "ETHUSD")
    assert coinapi.requests == []


# --- exchanges ---------------------------------------------------------------------------


def test_mixing_exchanges_is_refused_before_any_request(coinapi):
    store(SERIES.head(STORED))
    message = fail("--symbol-id", "BTCUSD=BITSTAMP_SPOT_BTC_USD")
    assert "stored bars come from Gemini" in message and "--allow-exchange-mix" in message
    assert coinapi.requests == []
    assert_same_bars(stored(), SERIES.head(STORED))


@committed
def test_mixing_exchanges_when_allowed_records_where_bars_came_from(coinapi):
    coinapi.series["BITSTAMP_SPOT_BTC_USD"] = SERIES
    store(SERIES.head(STORED))
    update("--symbol-id", "BTCUSD=BITSTAMP_SPOT_BTC_USD", "--allow-exchange-mix")
    assert_same_bars(stored(), SERIES)
    assert Stock.objects.filter(exchange="Bitstamp").count() == len(SERIES) - STORED


@committed
def test_the_symbol_id_setting_is_used_and_still_checked(coinapi, settings):
    settings.COINAPI_SYMBOL_IDS = {"BTCUSD": "BITSTAMP_SPOT_BTC_USD"}
    store(SERIES.head(STORED))
    assert "mixing exchanges" in fail()
    store(SERIES.head(STORED), symbol="XBTUSD", exchange="Bitstamp")
    coinapi.series["BITSTAMP_SPOT_BTC_USD"] = SERIES
    settings.COINAPI_SYMBOL_IDS = {"XBTUSD": "BITSTAMP_SPOT_BTC_USD"}
    update("-s", "XBTUSD")
    assert_same_bars(stored("XBTUSD"), SERIES)


def test_a_series_with_no_exchange_recorded_counts_as_gemini(coinapi):
    store(SERIES.head(STORED), exchange="")
    update()
    assert_same_bars(stored(), SERIES)
    assert coinapi.requests[0]["path"] == f"/v1/ohlcv/{GEMINI}/history"


# --- the pieces, without a server --------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (30, "30SEC"),
        (60, "1MIN"),
        (300, "5MIN"),
        (900, "15MIN"),
        (3600, "1HRS"),
        (14400, "4HRS"),
        (86400, "1DAY"),
        (604800, "7DAY"),
    ],
)
def test_bar_lengths_map_to_coinapi_periods(seconds, expected):
    assert period_id(seconds) == expected


def test_a_bar_length_coinapi_lacks_is_refused():
    with pytest.raises(ValueError, match="no OHLCV period"):
        period_id(45 * 60)


def test_default_symbol_ids():
    assert default_symbol_id("BTCUSD", "Gemini") == GEMINI
    assert default_symbol_id("ETHUSDT", "Binance") == "BINANCE_SPOT_ETH_USDT"
    assert default_symbol_id("ETHBTC", "Kraken") == "KRAKEN_SPOT_ETH_BTC"


def test_symbol_ids_from_the_environment_override_the_setting():
    text = "BTCUSD=BITSTAMP_SPOT_BTC_USD, ethusd=kraken_spot_eth_usd"
    assert coinapi_symbol_ids({"BTCUSD": GEMINI, "LTCUSD": "X"}, text) == {
        "BTCUSD": "BITSTAMP_SPOT_BTC_USD",
        "ETHUSD": "KRAKEN_SPOT_ETH_USD",
        "LTCUSD": "X",
    }
    with pytest.raises(ImproperlyConfigured, match="not SYMBOL=COINAPI_SYMBOL_ID"):
        coinapi_symbol_ids({}, "BTCUSD")


def api_item(hour: int, **changes) -> dict:
    start = datetime(2021, 1, 1, hour, tzinfo=UTC)
    item = {
        "time_period_start": start.isoformat().replace("+00:00", ".0000000Z"),
        "time_period_end": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "price_open": 10,
        "price_high": 12,
        "price_low": 9,
        "price_close": 11.5,
        "volume_traded": 3.5,
    }
    return {**item, **changes}


def test_parse_page_reports_each_bad_item_by_position():
    start = datetime(2021, 1, 1, 1, tzinfo=UTC)
    items = [
        api_item(1),
        "nonsense",
        api_item(2, time_period_start="yesterday"),
        api_item(2, price_low=13),
        api_item(3, time_period_end=None),  # optional: not checked when absent
        api_item(4, volume_traded=-1),
        api_item(5, price_close=True),
        api_item(6, time_period_end="2021-01-01T08:00:00Z"),
        api_item(1),  # repeated
        api_item(0),  # before the range
        api_item(9),
    ]
    page = parse_page(items, start, start + timedelta(hours=8), 3600)
    reasons = {item.position: item.reason for item in page.invalid}
    assert reasons == {
        2: "not an object: nonsense",
        3: "time_period_start is missing or not a UTC time: yesterday",
        4: "price_high is below price_low",
        6: "volume_traded is negative",
        7: "price_close is missing or not a number",
        8: "period 06:00..08:00 is not one bar",
    }
    assert page.dropped == 3
    assert page.bars["time"].dt.hour.tolist() == [1, 3]
    assert page.last_time == datetime(2021, 1, 1, 6, tzinfo=UTC)


def test_bad_flags_are_one_line_errors(coinapi):
    store(SERIES.head(STORED))
    assert "'yesterday' is not a date like 2021-01-01" in fail("--backfill", "yesterday")
    assert "'BTCUSD' is not SYMBOL=COINAPI_SYMBOL_ID" in fail("--symbol-id", "BTCUSD")
    assert "--limit must be between 1 and 100000" in fail("--limit", "0")
    assert "no OHLCV period of 2700 seconds" in fail(
        "-s", "BTCUSD", "-b", "45m", "--backfill", "2021-01-01"
    )
    assert coinapi.requests == []
