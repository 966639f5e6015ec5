"""audit_bars on bars that an earlier version of the app could have stored.

Bars are written with bulk_create, past every check of the importer, the way a database
filled before those checks may hold them. Each test asserts the exact lines printed, the
exit status and, for --fix, the full list of rows before and after: the bad bars are gone,
every other row is unchanged down to its id, and the forecasts are untouched.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from predictor.models import Stock, StockPrediction, TrainingSession

pytestmark = pytest.mark.django_db

ROW_FIELDS = (
    "id",
    "symbol",
    "bar_length",
    "time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "exchange",
    "source",
    "provisional",
)
NEWEST_PROVISIONAL = (
    "BTCUSD 1h: the newest bar (2020-05-01 14:00:00 UTC) is provisional, as is normal: "
    "the next update_stocks or import replaces it with the complete bar"
)
STALE_PROVISIONAL = (
    "BTCUSD 1h: 1 provisional bar is not the newest: it was never confirmed by its source "
    "(2020-05-01 02:00:00 UTC)"
)
GAPS = (
    "BTCUSD 1h: 2 gaps, 6 bars missing; longest 5 bars missing "
    "from 2020-05-01 05:00:00 UTC to 2020-05-01 09:00:00 UTC"
)
BAD_LINES = [
    "BTCUSD 1h: 2 bars off the 1h grid (first 2020-05-01 00:00:00.500000 UTC)",
    "BTCUSD 1h: 1 bar dated before 2009 (1990-01-01 00:00:00 UTC)",
    "BTCUSD 1h: 1 bar dated in the future (2200-01-01 00:00:00 UTC)",
    "BTCUSD 1h: 2 bars with an infinite value (first 2020-05-01 05:00:00 UTC)",
    "BTCUSD 1h: 1 bar with a price above 1e+12 (2020-05-01 06:00:00 UTC)",
    "BTCUSD 1h: 1 bar with high below low (2020-05-01 08:00:00 UTC)",
]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def bar(
    time: str,
    *,
    symbol: str = "BTCUSD",
    bar_length: str = "1h",
    exchange: str = "Gemini",
    provisional: bool = False,
    **values: float,
) -> Stock:
    """A bar that passes every rule unless `values` say otherwise."""
    prices = {"open": 100.0, "high": 110.0, "low": 90.0, "close": 105.0, "volume": 1.0}
    return Stock(
        symbol=symbol,
        bar_length=bar_length,
        time=utc(time),
        exchange=exchange,
        source="test",
        provisional=provisional,
        **prices | values,
    )


def store(*bars: Stock) -> list[int]:
    """Insert the bars as they are (no checks) and return their ids."""
    created = Stock.objects.bulk_create(bars)
    ids = [b.id for b in created]
    assert None not in ids
    return ids


def audit(*args: str) -> tuple[list[str], str | None]:
    """(lines printed, the CommandError message or None for exit status 0)."""
    out = io.StringIO()
    try:
        call_command("audit_bars", *args, stdout=out)
    except CommandError as error:
        message = str(error)
        assert "\n" not in message
        return out.getvalue().splitlines(), message
    return out.getvalue().splitlines(), None


def rows() -> list[tuple]:
    return list(Stock.objects.order_by("id").values_list(*ROW_FIELDS))


def predictions() -> list[tuple]:
    return list(
        StockPrediction.objects.order_by("id").values_list(
            "id", "session_id", "time", "steps_ahead", "predicted_close", "actual_close"
        )
    )


@pytest.fixture
def damaged() -> dict[str, list[int]]:
    """BTCUSD 1h with every kind of problem, and a clean ETHUSD 1h beside it.

    Good BTCUSD bars: 00-04, 10, 11, 13, 14 (05-09 and 12 missing). 02:00 is a provisional
    bar that is not the newest; 14:00, the newest good bar, is provisional and from another
    exchange. The bad bars sit inside the gaps, before and after the series.
    """
    good = store(
        *(bar(f"2020-05-01 {hour:02d}:00") for hour in (0, 1, 3, 4, 10, 11, 13)),
        bar("2020-05-01 02:00", provisional=True),
        bar("2020-05-01 14:00", provisional=True, exchange="Coinbase"),
        *(bar(f"2020-05-01 {hour:02d}:00", symbol="ETHUSD") for hour in (0, 1, 2)),
    )
    bad = store(
        bar("2020-05-01 11:46:40"),  # an Excel-rounded unix timestamp
        bar("2020-05-01 00:00:00.5"),
        bar("2020-05-01 05:00", open=math.inf),
        bar("2020-05-01 06:00", high=1e308, close=1e308),
        bar("2020-05-01 07:00", volume=math.inf),
        bar("2020-05-01 08:00", high=80.0),
        bar("1990-01-01 00:00"),
        bar("2200-01-01 00:00"),
    )
    return {"good": good, "bad": bad}


# --- the report ------------------------------------------------------------------------------


def test_reports_each_problem_on_its_own_line_and_fails_on_bars_that_cannot_be_right(damaged):
    before = rows()
    lines, error = audit()
    assert lines == [
        *BAD_LINES,
        "BTCUSD 1h: exchanges mixed in one series: Gemini 16 bars, Coinbase 1 bar",
        STALE_PROVISIONAL,
        NEWEST_PROVISIONAL,
        GAPS,
        "audited 2 series, 20 bars: 8 bars cannot be right, 1 series mixing exchanges, "
        "1 stale provisional bar, 2 gaps (6 bars missing); "
        "the newest bar is provisional in 1 series",
    ]
    assert error == (
        "8 stored bars cannot be right (off the grid or impossible values): "
        "`manage.py audit_bars --fix` deletes them"
    )
    assert rows() == before  # an audit writes nothing


def test_a_clean_series_reports_no_problems(damaged):
    lines, error = audit("-s", "ethusd")
    assert lines == ["audited 1 series, 3 bars: no problems found"]
    assert error is None


def test_an_empty_bar_store_has_nothing_to_audit():
    assert audit() == (["no stored bars: nothing to audit"], None)


def test_gaps_provisional_bars_and_mixed_exchanges_alone_exit_0(damaged):
    Stock.objects.filter(id__in=damaged["bad"]).delete()
    lines, error = audit("-s", "BTCUSD", "-b", "1h")
    assert error is None
    assert lines == [
        "BTCUSD 1h: exchanges mixed in one series: Gemini 8 bars, Coinbase 1 bar",
        STALE_PROVISIONAL,
        NEWEST_PROVISIONAL,
        GAPS,
        "audited 1 series, 9 bars: 1 series mixing exchanges, 1 stale provisional bar, "
        "2 gaps (6 bars missing); the newest bar is provisional in 1 series",
    ]


def test_a_provisional_newest_bar_is_information_not_a_problem():
    store(bar("2020-05-01 00:00"), bar("2020-05-01 01:00", provisional=True))
    assert audit() == (
        [
            "BTCUSD 1h: the newest bar (2020-05-01 01:00:00 UTC) is provisional, as is normal: "
            "the next update_stocks or import replaces it with the complete bar",
            "audited 1 series, 2 bars: no problems found; "
            "the newest bar is provisional in 1 series",
        ],
        None,
    )


def test_a_single_missing_bar_is_named_by_its_time():
    store(*(bar(f"2020-05-01 0{hour}:00") for hour in (0, 1, 3)))
    lines, _ = audit()
    assert lines[0] == (
        "BTCUSD 1h: 1 gap, 1 bar missing; longest 1 bar missing at 2020-05-01 02:00:00 UTC"
    )


def test_flags_narrow_the_audit_and_are_repeatable(damaged):
    lines, error = audit("-s", "ETHUSD", "-s", "btcusd", "-b", "1h")
    assert lines[-1].startswith("audited 2 series, 20 bars: 8 bars cannot be right")
    assert error is not None
    assert "`manage.py audit_bars -s ETHUSD -s BTCUSD -b 1h --fix`" in error
    with pytest.raises(CommandError, match=r"^no stored series match -b 1d \(stored: "):
        call_command("audit_bars", "-b", "1d", stdout=io.StringIO())


def test_a_bar_is_counted_once_under_the_first_rule_it_breaks():
    store(
        bar("2020-05-01 00:00"),
        bar("2020-05-01 00:30", open=math.inf, high=50.0),  # off grid, inf, high < low
        bar("1990-01-01 00:00", volume=-1.0),  # before 2009 and a negative volume
    )
    lines, error = audit()
    assert lines == [
        "BTCUSD 1h: 1 bar off the 1h grid (2020-05-01 00:30:00 UTC)",
        "BTCUSD 1h: 1 bar dated before 2009 (1990-01-01 00:00:00 UTC)",
        "audited 1 series, 3 bars: 2 bars cannot be right",
    ]
    assert error is not None


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"open": 0.0, "low": 0.0}, "with a price of 0 or below"),
        ({"open": -5.0, "low": -10.0}, "with a price of 0 or below"),
        ({"low": -math.inf}, "with an infinite value"),
        ({"close": 1e13, "high": 1e13}, "with a price above 1e+12"),
        ({"low": 2e12, "open": 2e12, "high": 2e12, "close": 2e12}, "with a price above 1e+12"),
        ({"open": 200.0}, "with open or close outside low..high"),
        ({"close": 80.0}, "with open or close outside low..high"),
        ({"volume": -1.0}, "with a negative volume"),
        ({"volume": 1e19}, "with a volume above 1e+18"),
        ({"volume": -math.inf}, "with an infinite value"),
    ],
)
def test_each_value_rule(values, reason):
    """The gap is that of the series once the bad bar is deleted, as --fix will leave it."""
    store(bar("2020-05-01 00:00"), bar("2020-05-01 01:00", **values), bar("2020-05-01 02:00"))
    lines, error = audit()
    assert lines == [
        f"BTCUSD 1h: 1 bar {reason} (2020-05-01 01:00:00 UTC)",
        "BTCUSD 1h: 1 gap, 1 bar missing; longest 1 bar missing at 2020-05-01 01:00:00 UTC",
        "audited 1 series, 3 bars: 1 bar cannot be right, 1 gap (1 bar missing)",
    ]
    assert error is not None


@pytest.mark.parametrize(
    ("bar_length", "good", "off"),
    [
        ("1d", "2020-05-01 00:00", "2020-05-02 12:00"),
        # Weeks count from 1970-01-01, a Thursday, as get_bars draws them.
        ("1w", "2020-04-30 00:00", "2020-05-04 00:00"),
        ("15m", "2020-05-01 00:45", "2020-05-01 00:50"),
        ("1m", "2020-05-01 00:01", "2020-05-01 00:01:00.000001"),
    ],
)
def test_each_bar_length_has_its_own_grid(bar_length, good, off):
    store(bar(good, bar_length=bar_length), bar(off, bar_length=bar_length))
    lines, _ = audit()
    shown = off if "." in off else off + ":00"
    assert lines[0] == f"BTCUSD {bar_length}: 1 bar off the {bar_length} grid ({shown} UTC)"
    assert lines[-1] == "audited 1 series, 2 bars: 1 bar cannot be right"


@pytest.mark.parametrize("field", ["open", "high", "low", "close", "volume"])
def test_nan(field):
    """PostgreSQL stores NaN (and sorts it above every number, so it must be caught before
    any comparison); SQLite turns it into NULL, which the NOT NULL columns refuse."""
    nan: dict[str, Any] = {field: math.nan}
    if connection.vendor == "sqlite":
        with pytest.raises(IntegrityError), transaction.atomic():
            store(bar("2020-05-01 01:00", **nan))
        assert not Stock.objects.exists()
        return
    ids = store(bar("2020-05-01 00:00"), bar("2020-05-01 01:00", **nan))
    lines, error = audit()
    assert lines == [
        "BTCUSD 1h: 1 bar with a value that is not a number (NaN) (2020-05-01 01:00:00 UTC)",
        "audited 1 series, 2 bars: 1 bar cannot be right",
    ]
    assert error is not None
    audit("--fix")
    assert list(Stock.objects.values_list("id", flat=True)) == ids[:1]


def test_a_bad_provisional_bar_is_a_bad_bar_and_the_newest_good_one_is_judged_newest():
    store(
        bar("2020-05-01 00:00"),
        bar("2020-05-01 01:00", provisional=True),
        bar("2020-05-01 02:00", provisional=True, volume=math.inf),
    )
    lines, _ = audit()
    assert lines == [
        "BTCUSD 1h: 1 bar with an infinite value (2020-05-01 02:00:00 UTC)",
        "BTCUSD 1h: the newest bar (2020-05-01 01:00:00 UTC) is provisional, as is normal: "
        "the next update_stocks or import replaces it with the complete bar",
        "audited 1 series, 3 bars: 1 bar cannot be right; "
        "the newest bar is provisional in 1 series",
    ]


# --- --fix -----------------------------------------------------------------------------------


def make_forecasts() -> None:
    """Forecasts for times of good and of bad bars: --fix must leave all of them."""
    session = TrainingSession.objects.create(
        kind="evaluation",
        symbol="BTCUSD",
        interval="H",
        features="close",
        target="price",
        window=3,
        output_size=1,
        shuffle_buffer=10,
        train_split=0.8,
        units=4,
        epochs=1,
        batch_size=4,
        dropout=0.0,
        optimizer="adam",
        loss="mse",
        activation="tanh",
        scaler="minmax",
        seed=7,
    )
    StockPrediction.objects.bulk_create(
        StockPrediction(session=session, time=utc(time), steps_ahead=1, predicted_close=101.0)
        for time in ("2020-05-01 04:00", "2020-05-01 05:00", "2020-05-01 06:00")
    )


def test_fix_deletes_exactly_the_bars_that_cannot_be_right(damaged):
    make_forecasts()
    before, forecasts = rows(), predictions()
    lines, error = audit("--fix")
    assert error is None
    assert lines == [
        *BAD_LINES,
        "BTCUSD 1h: exchanges mixed in one series: Gemini 16 bars, Coinbase 1 bar",
        STALE_PROVISIONAL,
        NEWEST_PROVISIONAL,
        GAPS,
        "BTCUSD 1h: deleted 2 bars off the 1h grid "
        "(2020-05-01 00:00:00.500000 UTC, 2020-05-01 11:46:40 UTC)",
        "BTCUSD 1h: deleted 1 bar dated before 2009 (1990-01-01 00:00:00 UTC)",
        "BTCUSD 1h: deleted 1 bar dated in the future (2200-01-01 00:00:00 UTC)",
        "BTCUSD 1h: deleted 2 bars with an infinite value "
        "(2020-05-01 05:00:00 UTC, 2020-05-01 07:00:00 UTC)",
        "BTCUSD 1h: deleted 1 bar with a price above 1e+12 (2020-05-01 06:00:00 UTC)",
        "BTCUSD 1h: deleted 1 bar with high below low (2020-05-01 08:00:00 UTC)",
        "audited 2 series, 20 bars: deleted 8 bars that could not be right, 1 series mixing "
        "exchanges, 1 stale provisional bar, 2 gaps (6 bars missing); "
        "the newest bar is provisional in 1 series",
    ]
    assert rows() == [row for row in before if row[0] not in damaged["bad"]]
    assert [row[0] for row in rows()] == damaged["good"]
    assert predictions() == forecasts


def test_fix_is_idempotent(damaged):
    audit("--fix")
    after_first = rows()
    lines, error = audit("--fix")
    assert error is None
    assert not any("cannot be right" in line or "deleted" in line for line in lines)
    assert lines[-1] == (
        "audited 2 series, 12 bars: 1 series mixing exchanges, 1 stale provisional bar, "
        "2 gaps (6 bars missing); the newest bar is provisional in 1 series"
    )
    assert rows() == after_first
    assert audit()[1] is None


def test_fix_keeps_to_the_series_named(damaged):
    (eth_bad,) = store(bar("2020-05-01 03:00", symbol="ETHUSD", low=120.0))
    before = rows()
    lines, error = audit("--fix", "-s", "ETHUSD")
    assert error is None
    assert lines == [
        "ETHUSD 1h: 1 bar with high below low (2020-05-01 03:00:00 UTC)",
        "ETHUSD 1h: deleted 1 bar with high below low (2020-05-01 03:00:00 UTC)",
        "audited 1 series, 4 bars: deleted 1 bar that could not be right",
    ]
    assert rows() == [row for row in before if row[0] != eth_bad]


def test_fix_deletes_nothing_when_the_bars_change_under_it(damaged, monkeypatch):
    """The delete must remove exactly what was listed; otherwise it is rolled back whole."""
    from predictor.services import auditing

    listed = auditing.untrustworthy_bars
    monkeypatch.setattr(auditing, "untrustworthy_bars", lambda *a, **k: listed(*a, **k)[1:])
    before = rows()
    _, error = audit("--fix")
    assert error == (
        "the audit listed 6 bars to delete but 8 matched when deleting: bars were written "
        "meanwhile; nothing was deleted, run it again"
    )
    assert rows() == before
