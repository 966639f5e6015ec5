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
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from cryptooracle.settings.base import coinapi_symbol_ids
from predictor.models import Stock
from predictor.services.bars import SeriesKey, insert_bars
from predictor.services.importing import import_csv_file
from tests.checks import present
from tests.coinapi_server import CoinApiServer, make_series, still_forming
from utils.coinapi import (
    credits_for,
    default_symbol_id,
    parse_page,
    period_id,
    retry_after_seconds,
)

pytestmark = pytest.mark.django_db
committed = pytest.mark.django_db(transaction=True)

REPO_DIR = Path(__file__).resolve().parent.parent
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


def rows(symbol="BTCUSD", bar_length="1h") -> list[tuple]:
    """Every stored field of a series, ids included, oldest first: proof a bar did not change."""
    fields = [f.attname for f in Stock._meta.concrete_fields]
    series = Stock.objects.filter(symbol=symbol, bar_length=bar_length).order_by("time")
    return list(series.values_list(*fields))


def provisional_times(symbol="BTCUSD", bar_length="1h") -> list[pd.Timestamp]:
    series = Stock.objects.filter(symbol=symbol, bar_length=bar_length, provisional=True)
    return [pd.Timestamp(t) for t in series.order_by("time").values_list("time", flat=True)]


def clear_of_the_hour(margin: float = 5.0) -> pd.Timestamp:
    """The start of the current hour, after waiting out an hour's last seconds if need be, so
    that the command, which reads the clock itself, sees the same hour as the test."""
    now = pd.Timestamp.now(tz="UTC")
    left = (now.floor("1h") + pd.Timedelta(hours=1) - now).total_seconds()
    if left < margin:
        time.sleep(left + 0.1)
    return pd.Timestamp.now(tz="UTC").floor("1h")


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


def update_failing(*args: str) -> tuple[str, str, str]:
    """stdout, stderr and the one-line error of a run that fails after its summary."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("update_stocks", "--no-progress", *args, stdout=out, stderr=err)
    message = str(caught.value)
    assert "\n" not in message
    return out.getvalue(), err.getvalue(), message


# --- the normal run ---------------------------------------------------------------------


def test_fetches_everything_after_the_last_stored_bar_page_by_page(coinapi):
    store(SERIES.head(STORED))
    out, err = update()
    assert_same_bars(stored(), SERIES)
    assert "BTCUSD 1h from GEMINI_SPOT_BTC_USD" in out
    # 5 pages + 1 empty; 1 credit each (at most 100 items, and an empty answer costs 1)
    assert "bars fetched 43, inserted 43, requests 6, credits 6, gaps 0" in out
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
    assert "bars fetched 0, inserted 0, requests 1, credits 1, gaps 0" in out
    assert_same_bars(stored(), SERIES)


def test_the_bar_still_forming_is_never_stored(coinapi):
    now = clear_of_the_hour()
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


# --- the newest bar is provisional ------------------------------------------------------


def test_a_bar_still_forming_on_a_lagging_server_is_stored_provisional_then_completed(coinapi):
    now = clear_of_the_hour()
    series = make_series(str(now - pd.Timedelta(hours=20)), 21)  # bar 20 forms on our clock
    newest = series["time"][19]  # the newest period closed on our clock...
    coinapi.series[GEMINI] = series
    lag = pd.Timedelta(hours=1)  # ...still forms on CoinAPI's clock, one period behind ours
    coinapi.clock = pd.Timestamp.now(tz="UTC") - lag
    store(series.head(STORED))
    before = rows()

    out, _ = update()
    partial = pd.concat([series.head(19), still_forming(series.iloc[[19]])])
    assert_same_bars(stored(), partial)  # what CoinAPI said, bar 19 with its partial values
    assert provisional_times() == [newest]
    assert rows()[:STORED] == before
    assert "bars fetched 15, inserted 15, requests 2, credits 2, gaps 0" in out

    first = rows()
    coinapi.clock = pd.Timestamp.now(tz="UTC")  # CoinAPI's clock catches up: bar 19 is done
    out, _ = update()
    assert_same_bars(stored(), series.head(20))
    assert rows()[:19] == first[:19]  # every older bar unchanged, ids and all
    assert rows()[19][0] == first[19][0]  # replaced in place
    # Still the newest closed period on our clock, so still provisional: the next run asks
    # for it once more, and it becomes final once a newer bar is stored.
    assert provisional_times() == [newest]
    assert coinapi.requests[-1]["query"]["time_start"] == f"{newest:%Y-%m-%dT%H:%M:%S}"
    assert "bars fetched 1, inserted 0, replaced 1, requests 1, credits 1, gaps 0" in out


def test_a_csv_series_whose_newest_bar_was_forming_is_completed_by_coinapi(coinapi, write_csv):
    partial = still_forming(SERIES.iloc[[STORED - 1]])  # the file was made mid-hour
    lines = [
        "Created on 01-01-2021,https://www.CryptoDataDownload.com",
        "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume",
    ]
    for bar in pd.concat([SERIES.head(STORED - 1), partial]).iloc[::-1].itertuples():
        lines.append(
            f"{bar.time.value // 10**6},{bar.time:%Y-%m-%d %H:%M:%S},BTCUSD,"
            f"{bar.open},{bar.high},{bar.low},{bar.close},{bar.volume}"
        )
    imported = import_csv_file(write_csv("Gemini_BTCUSD_1h.csv", lines))
    assert imported.error is None and imported.inserted == STORED
    newest = SERIES["time"][STORED - 1]
    assert provisional_times() == [newest]
    before = rows()

    out, _ = update()
    assert_same_bars(stored(), SERIES)  # the partial bar now holds CoinAPI's complete values
    assert rows()[: STORED - 1] == before[: STORED - 1]  # the older CSV bars unchanged
    bar_id, *_ = rows()[STORED - 1]
    assert bar_id == before[STORED - 1][0]
    completed = Stock.objects.get(id=bar_id)
    assert (completed.source, completed.provisional) == ("CoinAPI " + GEMINI, False)
    assert provisional_times() == []  # newer bars followed it, so it is final
    assert coinapi.requests[0]["query"]["time_start"] == f"{newest:%Y-%m-%dT%H:%M:%S}"
    # The provisional bar is fetched again: 44 bars, not 43, and it is not a gap.
    assert "bars fetched 44, inserted 43, replaced 1, requests 6, credits 6, gaps 0" in out


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
    # Retry-After within COINAPI_MAX_RETRY_AFTER: waited for and retried until the budget
    # runs out. (A longer one ends the run at once: see the tests below.)
    coinapi.faults = ["429"] * 2
    coinapi.retry_after = 1
    settings.COINAPI_MAX_RETRIES = 1
    store(SERIES.head(STORED))
    message = fail("--limit", "100")
    assert (
        "HTTP 429: Too many requests after 2 tries, server asks to wait 1 s; try again later"
        in message
    )
    assert len(coinapi.requests) == 2
    assert_same_bars(stored(), SERIES.head(STORED))


@committed
@pytest.mark.parametrize(
    ("fault", "answer"),
    [("429", "HTTP 429: Too many requests"), ("503_wait", "HTTP 503: Down for maintenance")],
)
def test_a_retry_after_longer_than_the_cap_ends_the_run_at_once(coinapi, fault, answer):
    eth = make_series("2021-01-01", 30)
    coinapi.series["GEMINI_SPOT_ETH_USD"] = eth
    store(SERIES.head(STORED))
    store(eth.head(STORED), symbol="ETHUSD")
    before = rows() + rows("ETHUSD")
    coinapi.faults = [fault] * 10
    coinapi.retry_after = 86400  # an exhausted daily quota; COINAPI_MAX_RETRY_AFTER is 2 s
    began = time.monotonic()
    out, _, message = update_failing()
    assert time.monotonic() - began < 1.0  # no sleeping, no retries
    asked = datetime.now(UTC) + timedelta(days=1)
    assert f"{answer} and asks to wait 86400 s (until " in message
    until = present(re.search(r"until (\S+ \S+) UTC\)", message)).group(1)
    moment = datetime.fromisoformat(until).replace(tzinfo=UTC)
    assert abs((moment - asked).total_seconds()) < 5
    assert "longer than COINAPI_MAX_RETRY_AFTER (2 s); the run stops here" in message
    assert "not attempted: ETHUSD 1h" in message  # the next series is not even tried
    assert [r["path"] for r in coinapi.requests] == [f"/v1/ohlcv/{GEMINI}/history"]
    assert "bars fetched 0, inserted 0, requests 1, credits 0, gaps 0" in out
    assert "ETHUSD" not in out
    assert rows() + rows("ETHUSD") == before


def test_a_retry_after_given_as_a_date_is_read_uncapped():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert retry_after_seconds("Fri, 02 Jan 2026 12:00:00 GMT", now) == 86400
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0  # already past
    assert retry_after_seconds(" 86400 ") == 86400
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


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


# --- what a run counts and says ---------------------------------------------------------


@pytest.mark.parametrize("fault", ["500", "garbage", "drop"])
def test_the_requests_of_a_page_that_failed_are_counted(coinapi, fault):
    coinapi.faults = [None, None, *[fault] * 4]  # the third page: 1 try + 3 retries, all bad
    store(SERIES.head(STORED))
    out, _, message = update_failing()
    assert "after 4 tries" in message
    assert len(coinapi.requests) == 6
    # 2 good pages + the 4 tries of the third; only answered requests cost credits
    assert "bars fetched 20, inserted 20, requests 6, credits 2, gaps 0" in out
    assert_same_bars(stored(), SERIES.head(STORED + 20))


@pytest.mark.parametrize(
    ("limit", "requests", "credits"),
    [
        ("1000", 2, 4),  # 245 items (3 credits), then an empty answer (1)
        ("100", 4, 4),  # 100, 100, 45 items, then an empty answer
        ("50", 6, 6),  # 50 x 4, 45, then an empty answer
    ],
)
def test_credits_are_one_per_100_items_and_at_least_one_per_answer(
    coinapi, limit, requests, credits
):
    series = make_series("2021-01-01", 250)
    coinapi.series[GEMINI] = series
    store(series.head(STORED))
    out, _ = update("--limit", limit)
    assert_same_bars(stored(), series)
    assert f"bars fetched 245, inserted 245, requests {requests}, credits {credits}, " in out
    assert len(coinapi.requests) == requests


def test_credits_for_an_answer():
    assert [credits_for(n) for n in (0, 1, 100, 101, 245, 100_000)] == [1, 1, 1, 2, 3, 1000]


def test_an_over_long_symbol_is_a_one_line_error_on_every_engine(coinapi):
    message = fail("-s", "X" * 300, "-b", "1h", "--backfill", "2021-01-01")
    assert "the symbol 'XXXXXXXX" in message
    assert "is 300 characters; the bar store holds at most 32: give a shorter one" in message
    assert coinapi.requests == []
    assert not Stock.objects.exists()


def test_logs_written_to_a_pipe_carry_no_colour_codes(coinapi, tmp_path):
    """The development settings, as cron runs them: urllib3's retry warning comes through,
    without the terminal colour codes coloredlogs would add."""
    coinapi.faults = ["drop"]  # retried by urllib3, which logs a warning
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cryptooracle.settings.development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "COINAPI_URL": coinapi.url,
        "COINAPI_KEY": "test-key",
        "COINAPI_BACKOFF": "0.01",
        "COINAPI_PAGE_LIMIT": "100",
        "COINAPI_SYMBOL_IDS": "",
    }
    manage = [sys.executable, str(REPO_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, timeout=120)
    done = subprocess.run(
        [*manage, "update_stocks", "-s", "BTCUSD", "-b", "1h", "--backfill", "2021-01-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING urllib3.connectionpool: Retrying (" in done.stderr
    assert "connection broken by" in done.stderr
    assert "bars fetched 48, inserted 48," in done.stdout
    assert "\x1b[" not in done.stdout + done.stderr


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
