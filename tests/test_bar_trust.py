"""Bars you can trust: real-world files that used to put wrong bars into the store.

Each fixture under tests/fixtures/csv/trust/ reproduces one way a file goes wrong (saved by
Excel, listed twice, overflowing values, impossible dates, another exchange, a bar still
forming). Each test asserts exactly which bars are stored, and that bars stored before are
unchanged. Expected bars are written out by hand from the fixture files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management.base import CommandError

from predictor.models import Stock
from predictor.selectors import get_bars
from predictor.services.importing import import_csv_file
from tests.conftest import FIXTURE_FILES, FIXTURES_DIR, run_import, utc

pytestmark = pytest.mark.django_db

TRUST_DIR = FIXTURES_DIR / "trust"


def rows(symbol: str, bar_length: str = "1h") -> list[tuple]:
    """Every column of a series' stored rows, ids included, oldest first."""
    queryset = Stock.objects.filter(symbol=symbol, bar_length=bar_length).order_by("time")
    return list(queryset.values_list())


def bars(symbol: str, bar_length: str = "1h") -> list[tuple]:
    """(time, open, high, low, close, volume, exchange, provisional), oldest first."""
    queryset = Stock.objects.filter(symbol=symbol, bar_length=bar_length).order_by("time")
    return list(
        queryset.values_list(
            "time", "open", "high", "low", "close", "volume", "exchange", "provisional"
        )
    )


def test_excel_rounded_unix_column_uses_the_date_column():
    """Excel saved `Unix Timestamp` as 1.58838E+12 (to 10,000 s); the Date column is right.

    The file lands in a stored hourly ETHUSD series. Before, its bars were stored at times
    like 00:40:00 inside that series; now every bar is on the hour, from the Date column, and
    the summary says why.
    """
    series = TRUST_DIR / "Gemini_ETHUSD_1h.csv"
    excel = TRUST_DIR / "Gemini_ETHUSD_excel_1h.csv"
    run_import(series)
    before = rows("ETHUSD")
    out, err = run_import(excel)
    assert out.splitlines() == [
        f"{excel}: ETHUSD 1h - rows read 7, bars inserted 6, already present 0, rejected 0, "
        "provisional bars replaced 1"
    ]
    assert err.splitlines() == [
        f"{excel}: times from the Date column: the columns disagree on 7 rows (first at line "
        "3: unix says 2020-05-02 06:13:20, Date says 2020-05-02 05:00:00); the unix column "
        "has 7 values off the 1h grid and 5 rows sharing a time the other column tells apart"
    ]
    assert bars("ETHUSD") == [
        (utc("2020-05-01 19:00"), 196.0, 198.0, 195.0, 197.0, 6.0, "Gemini", False),
        (utc("2020-05-01 20:00"), 197.0, 199.0, 196.0, 198.0, 7.0, "Gemini", False),
        (utc("2020-05-01 21:00"), 198.0, 200.0, 197.0, 199.0, 8.0, "Gemini", False),
        (utc("2020-05-01 22:00"), 199.0, 201.0, 198.0, 200.0, 9.0, "Gemini", False),
        # The first file's newest bar (volume 0.5: still forming) completed by the newer file.
        (utc("2020-05-01 23:00"), 200.0, 202.0, 199.0, 201.0, 10.0, "Gemini", False),
        (utc("2020-05-02 00:00"), 201.0, 203.0, 200.0, 202.0, 11.0, "Gemini", False),
        (utc("2020-05-02 01:00"), 202.0, 204.0, 201.0, 203.0, 12.0, "Gemini", False),
        (utc("2020-05-02 02:00"), 203.0, 205.0, 202.0, 204.0, 13.0, "Gemini", False),
        (utc("2020-05-02 03:00"), 204.0, 206.0, 203.0, 205.0, 14.0, "Gemini", False),
        (utc("2020-05-02 04:00"), 205.0, 207.0, 204.0, 206.0, 15.0, "Gemini", False),
        (utc("2020-05-02 05:00"), 206.0, 208.0, 205.0, 207.0, 16.0, "Gemini", True),
    ]
    assert rows("ETHUSD")[:4] == before[:4]  # bars that were not provisional: untouched
    hourly = get_bars("ETHUSD", "1h")
    assert len(hourly) == 11 and (hourly.index.minute == 0).all()


def test_file_whose_time_columns_both_look_wrong_is_refused():
    path = TRUST_DIR / "Gemini_BTCUSD_untrusted_1h.csv"
    with pytest.raises(CommandError) as failure:
        run_import(path)
    assert str(failure.value) == (
        f"1 of 1 files could not be imported: {path}: the unix column and the Date column "
        "disagree on 3 rows (first at line 3: unix says 2020-05-02 00:40:00, Date says "
        "2020-05-02 02:30:00), and neither can be trusted: unix has 3 values off the 1h grid "
        "and 3 rows sharing a time the other column tells apart; Date has 3 values off the "
        "1h grid"
    )
    assert not Stock.objects.exists()


BINANCE_DUPES = TRUST_DIR / "Binance_BTCUSDT_dupes_1h.csv"
BINANCE_KEPT = [
    (utc("2021-03-01 00:00"), 45134.11, 46571.16, 44950.0, 46285.48, 2710.6512, "Binance", False),
    (utc("2021-03-01 01:00"), 46285.49, 46734.0, 46088.13, 46516.98, 2112.4, "Binance", False),
    # Given twice: the millisecond row has the larger volume.
    (utc("2021-03-01 02:00"), 46516.99, 46600.0, 46200.0, 46300.5, 1500.25, "Binance", False),
    # Given twice, identically.
    (utc("2021-03-01 03:00"), 46300.51, 46800.0, 46250.0, 46750.0, 1800.5, "Binance", False),
    # Given twice: the seconds/"04-AM" row has the larger volume. The newest bar stored.
    (utc("2021-03-01 04:00"), 46750.0, 46990.0, 46700.0, 46940.0, 2000.0, "Binance", True),
    # 05:00 is given twice with other prices and the same volume: neither is stored.
]


def test_duplicates_within_a_file_keep_the_larger_volume_and_are_counted_apart():
    out, err = run_import(BINANCE_DUPES)
    assert out.splitlines() == [
        f"{BINANCE_DUPES}: BTCUSDT 1h - rows read 10, bars inserted 5, already present 0, "
        "rejected 0, duplicates: 4 times given more than once (3 with different values), "
        "5 rows not stored"
    ]
    tie = "given more than once with other values and the same volume: none stored"
    assert err.splitlines() == [
        f"{BINANCE_DUPES}:3: duplicate: 2021-03-01 05:00:00 {tie}",
        f"{BINANCE_DUPES}:4: duplicate: 2021-03-01 04:00:00 given again: other values than "
        "line 10, which is kept (larger volume)",
        f"{BINANCE_DUPES}:9: duplicate: 2021-03-01 05:00:00 {tie}",
        f"{BINANCE_DUPES}:11: duplicate: 2021-03-01 03:00:00 given again: the same bar as line 5",
        f"{BINANCE_DUPES}:12: duplicate: 2021-03-01 02:00:00 given again: other values than "
        "line 6, which is kept (larger volume)",
    ]
    assert bars("BTCUSDT") == BINANCE_KEPT


def test_strict_refuses_a_file_with_conflicting_duplicates_and_keeps_what_was_stored():
    run_import(FIXTURE_FILES["Binance_BTCUSDT_1h.csv"].path)
    before = rows("BTCUSDT")
    with pytest.raises(CommandError) as failure:
        run_import(BINANCE_DUPES, "--strict")
    assert str(failure.value) == (
        f"1 of 1 files could not be imported: {BINANCE_DUPES}: 3 times are given more than "
        "once with different values (first at line 3); refused because of --strict"
    )
    assert rows("BTCUSDT") == before


def test_non_finite_and_absurd_values_are_rejected_row_by_row():
    path = TRUST_DIR / "Gemini_BTCUSD_values_1h.csv"
    out, err = run_import(path)
    assert out.splitlines() == [
        f"{path}: BTCUSD 1h - rows read 10, bars inserted 5, already present 0, rejected 5"
    ]
    assert err.splitlines() == [
        f"{path}:6: rejected: high is infinite",
        f"{path}:7: rejected: a price is above 1e+12: not a real price",
        f"{path}:8: rejected: volume is infinite",
        f"{path}:9: rejected: open is infinite",
        f"{path}:10: rejected: volume is above 1e+18: not a real volume",
    ]
    assert [bar[:6] for bar in bars("BTCUSD")] == [
        (utc("2019-12-31 22:00"), 7170.0, 7185.0, 7165.0, 7180.0, 7.0),
        (utc("2019-12-31 23:00"), 7180.0, 7195.0, 7175.0, 7190.0, 9.0),
        (utc("2020-01-01 05:00"), 7250.0, 7260.0, 7240.0, 7255.0, 4.5),
        (utc("2020-01-01 06:00"), 7255.0, 7266.0, 7250.0, 7265.0, 6.0),
        (utc("2020-01-01 07:00"), 7265.0, 7270.0, 7260.0, 7268.0, 5.5),
    ]


def test_impossible_times_are_rejected_row_by_row_and_the_file_still_imports():
    """A year-3000 row used to fail the whole file with an overflow."""
    path = TRUST_DIR / "Gemini_BTCUSD_times_1h.csv"
    out, err = run_import(path)
    assert out.splitlines() == [
        f"{path}: BTCUSD 1h - rows read 9, bars inserted 4, already present 0, rejected 5"
    ]
    assert err.splitlines() == [
        f"{path}:3: rejected: time 3000-01-01 00:00:00 UTC is in the future",
        f"{path}:4: rejected: time 2200-01-01 00:00:00 UTC is in the future",
        f"{path}:6: rejected: time 2020-01-01 03:00:00.500000 UTC is not on the grid of 1h "
        "bars (whole multiples of 1h since 1970-01-01)",
        f"{path}:10: rejected: time 1990-01-01 00:00:00 UTC is before 2009",
        f"{path}:11: rejected: time 1938-01-01 00:00:00 UTC is before 2009",
    ]
    assert [bar[:6] for bar in bars("BTCUSD")] == [
        (utc("2020-01-01 00:00"), 7190.0, 7215.0, 7185.0, 7210.0, 8.0),
        (utc("2020-01-01 01:00"), 7210.0, 7225.0, 7205.0, 7220.0, 3.0),
        (utc("2020-01-01 02:00"), 7220.0, 7235.0, 7215.0, 7230.0, 1.0),
        (utc("2020-01-01 04:00"), 7250.0, 7260.0, 7240.0, 7255.0, 4.5),
    ]


def test_a_time_in_the_current_bar_is_kept_and_one_after_it_rejected(write_csv):
    now = utc("2020-01-01 02:30")
    path = write_csv(
        "Gemini_BTCUSD_1h.csv",
        [
            "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume",
            "1577847600,2020-01-01 03:00:00,BTCUSD,1,2,0.5,1.5,3",  # opens after now
            "1577844000,2020-01-01 02:00:00,BTCUSD,1,2,0.5,1.5,3",  # the bar still forming
            "1577840400,2020-01-01 01:00:00,BTCUSD,1,2,0.5,1.5,3",
        ],
    )
    result = import_csv_file(path, now=now)
    assert [(r.line, r.reason) for r in result.rejections] == [
        (2, "time 2020-01-01 03:00:00 UTC is in the future")
    ]
    assert [(bar[0], bar[-1]) for bar in bars("BTCUSD")] == [
        (utc("2020-01-01 01:00"), False),
        (utc("2020-01-01 02:00"), True),
    ]


def test_a_file_from_another_exchange_is_refused_with_both_ways_out():
    gemini = FIXTURE_FILES["Gemini_BTCUSD_1h.csv"]
    coinbase = TRUST_DIR / "Coinbase_BTCUSD_later_1h.csv"
    run_import(gemini.path)
    before = rows("BTCUSD")
    with pytest.raises(CommandError) as failure:
        run_import(coinbase)
    assert str(failure.value) == (
        f"1 of 1 files could not be imported: {coinbase}: BTCUSD 1h: the stored bars come "
        "from Gemini but these come from Coinbase; mixing exchanges in one series is refused "
        "(store this file under another name with --symbol, or name its exchange with "
        "--exchange if the file name misleads, or pass --allow-exchange-mix to mix them); "
        "nothing was stored from this file"
    )
    assert rows("BTCUSD") == before

    run_import(coinbase, "--symbol", "BTCUSD_COINBASE")
    assert [bar[0] for bar in bars("BTCUSDCOINBASE")] == [
        utc("2021-03-01 03:00"),
        utc("2021-03-01 04:00"),
        utc("2021-03-01 05:00"),
    ]
    assert rows("BTCUSD") == before

    out, _ = run_import(coinbase, "--allow-exchange-mix")
    assert out.splitlines() == [
        f"{coinbase}: BTCUSD 1h - rows read 3, bars inserted 3, already present 0, rejected 0"
    ]
    mixed = bars("BTCUSD")
    assert [bar[6] for bar in mixed] == ["Gemini"] * 5 + ["Coinbase"] * 3
    # Gemini's newest bar stays provisional: no source has confirmed it (audit_bars says so).
    assert [bar[7] for bar in mixed] == [False] * 4 + [True] + [False] * 2 + [True]


def test_exchange_flag_names_the_exchange_of_a_file_whose_name_does_not(write_csv):
    run_import(FIXTURE_FILES["Gemini_BTCUSD_1h.csv"].path)
    path = write_csv(
        "BTCUSD_1h.csv",
        [
            "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume",
            "1577858400,2020-01-01 06:00:00,BTCUSD,1,2,0.5,1.5,3",
            "1577854800,2020-01-01 05:00:00,BTCUSD,1,2,0.5,1.5,3",
        ],
    )
    with pytest.raises(CommandError, match="these come from an unknown exchange"):
        run_import(path)
    run_import(path, "--exchange", "Gemini")
    assert [bar[6] for bar in bars("BTCUSD")] == ["Gemini"] * 7


def test_a_symbol_longer_than_the_column_is_refused_on_every_engine(write_csv):
    long_symbol = "BTC" + "X" * 297
    path = write_csv(
        "Gemini_long_1h.csv",
        [
            "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume",
            f"1577840400,2020-01-01 01:00:00,{long_symbol},1,2,0.5,1.5,3",
            f"1577836800,2020-01-01 00:00:00,{long_symbol},1,2,0.5,1.5,3",
        ],
    )
    with pytest.raises(CommandError) as failure:
        run_import(path)
    assert str(failure.value) == (
        f"1 of 1 files could not be imported: {path}: the symbol "
        f"'{long_symbol[:40]}'... is 300 characters; the bar store holds at most 32: give "
        "a shorter one"
    )
    with pytest.raises(CommandError, match="--symbol must be 1 to 32 characters"):
        run_import(path, "--symbol", long_symbol)
    assert not Stock.objects.exists()


def test_reimporting_the_same_file_keeps_its_newest_bar_provisional():
    path = FIXTURE_FILES["Gemini_BTCUSD_1h.csv"].path
    run_import(path)
    before = rows("BTCUSD")
    out, _ = run_import(path)
    assert out.endswith("bars inserted 0, already present 5, rejected 0\n")
    assert rows("BTCUSD") == before
    assert [bar[-1] for bar in bars("BTCUSD")] == [False] * 4 + [True]


def test_get_bars_tells_which_buckets_hold_a_provisional_bar():
    run_import(FIXTURE_FILES["Gemini_BTCUSD_1h.csv"].path)
    hourly = get_bars("BTCUSD", "1h")
    assert hourly["provisional"].tolist() == [False] * 4 + [True]
    two_hourly = get_bars("BTCUSD", "2h")
    assert list(two_hourly.index) == [
        utc("2020-01-01 00:00"),
        utc("2020-01-01 02:00"),
        utc("2020-01-01 04:00"),
    ]
    assert two_hourly["provisional"].tolist() == [False, False, True]


def test_shipped_files_newest_bars_are_provisional(tmp_path: Path):
    """The shipped BTCUSD file's last hour has a tenth of a normal hour's volume."""
    from tests.conftest import DATA_DIR

    run_import(DATA_DIR)
    provisional = Stock.objects.filter(provisional=True).order_by("symbol")
    assert list(provisional.values_list("symbol", "time", "volume")) == [
        ("BTCUSD", utc("2020-12-30 00:00"), 21.9246071316),
        ("ETHUSD", utc("2019-07-30 00:00"), 1.45781),
    ]


@pytest.mark.django_db(transaction=True)
def test_migration_marks_each_series_newest_bar_provisional():
    """Databases filled by earlier versions stored the newest bar as final; the migration
    marks it provisional so the next update or import replaces it."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("predictor", "0003_evaluation")], [("predictor", "0004_stock_provisional")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_stock = executor.loader.project_state(before).apps.get_model("predictor", "Stock")
    series = {("BTCUSD", "1h"): 3, ("BTCUSD", "1m"): 2, ("ETHUSD", "1h"): 1}
    for (symbol, bar_length), count in series.items():
        for hour in range(count):
            old_stock.objects.create(
                symbol=symbol,
                bar_length=bar_length,
                time=utc(f"2020-01-01 {hour:02d}:00"),
                open=1.0,
                high=2.0,
                low=0.5,
                close=1.5,
                volume=3.0,
            )
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new_stock = executor.loader.project_state(after).apps.get_model("predictor", "Stock")
        flagged = new_stock.objects.filter(provisional=True).order_by("symbol", "bar_length")
        assert list(flagged.values_list("symbol", "bar_length", "time")) == [
            ("BTCUSD", "1h", utc("2020-01-01 02:00")),
            ("BTCUSD", "1m", utc("2020-01-01 01:00")),
            ("ETHUSD", "1h", utc("2020-01-01 00:00")),
        ]
        assert new_stock.objects.count() == 6
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
