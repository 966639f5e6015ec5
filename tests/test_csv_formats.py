"""utils.csv_formats on its own: no database, only files and pandas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import (
    BAD_ROWS_FILE,
    BAD_ROWS_OTHER_SYMBOL,
    BAD_ROWS_READER_REJECTIONS,
    BAD_ROWS_STORED,
    FIXTURE_FILES,
    FIXTURES_DIR,
    UNREADABLE_FILES,
    utc,
)
from utils.bar_files import read_bar_file
from utils.csv_formats import (
    CsvFormatError,
    Rejection,
    base_currency,
    count_data_lines,
    detect_layout,
    infer_timeframe,
    iter_bar_chunks,
    normalise_symbol,
    parse_dates,
    unix_to_datetime,
)
from utils.timeframes import timeframe_from_seconds, timeframe_seconds

GEMINI_HEADER = "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume"


def read_all(
    path: Path, chunk_rows: int = 100_000, symbol: str | None = None, bar_length: str | None = None
) -> tuple[pd.DataFrame, list[Rejection], int]:
    """A file read and judged whole (utils.bar_files): bars by time, rejections, rows read."""
    bar_file = read_bar_file(path, chunk_rows=chunk_rows, symbol=symbol, bar_length=bar_length)
    assert bar_file.rejected == len(bar_file.rejections)
    return bar_file.bars, bar_file.rejections, bar_file.rows_read


def as_tuples(bars: pd.DataFrame) -> list[tuple]:
    return [
        (row.time.to_pydatetime(), row.open, row.high, row.low, row.close, row.volume)
        for row in bars.itertuples()
    ]


# -- layout detection -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURE_FILES))
def test_detect_layout_of_each_fixture(name):
    expected = FIXTURE_FILES[name]
    layout = detect_layout(expected.path)
    assert layout.header_line == expected.header_line
    assert layout.exchange == expected.exchange
    assert layout.symbol_from_name == expected.symbol
    assert layout.timeframe_from_name == expected.bar_length
    assert layout.columns["volume"] == expected.volume_column


def test_gemini_fixture_really_is_crlf_newest_first_with_mixed_units():
    raw = (FIXTURES_DIR / "Gemini_BTCUSD_1h.csv").read_bytes()
    lines = raw.split(b"\r\n")
    assert raw.count(b"\r\n") == raw.count(b"\n") == 7
    assert lines[0].startswith(b"Created on") and b"CryptoDataDownload" in lines[0]
    unix = [int(line.split(b",")[0]) for line in lines[2:-1]]
    assert unix == sorted(unix, key=lambda u: u / 1000 if u > 1e11 else u, reverse=True)
    assert {len(str(u)) for u in unix} == {10, 13}  # seconds and milliseconds


def test_columns_mapped_for_kraken_ignore_vwap_and_quote_volume():
    layout = detect_layout(FIXTURE_FILES["Kraken_BTCUSD_1h.csv"].path)
    assert layout.columns == {
        "unix": "unix",
        "date": "date",
        "symbol": "symbol",
        "open": "open",
        "high": "high",
        "low": "low",
        "close": "close",
        "volume": "Volume BTC",
    }


def test_layout_without_unix_column_uses_date():
    layout = detect_layout(FIXTURE_FILES["Coinbase_ETHUSD_1h_old.csv"].path)
    assert not layout.has_unix
    assert layout.has_date
    assert layout.columns["volume"] == "Volume From"


def test_symbol_column_wins_over_file_name(write_csv):
    path = write_csv(
        "Gemini_BTCUSD_1h.csv",
        [GEMINI_HEADER, "1577836800,2020-01-01 00:00:00,ETH/USD,1,2,0.5,1.5,3"],
    )
    assert detect_layout(path).symbol_from_name == "ETHUSD"


@pytest.mark.parametrize(
    ("file_name", "exchange", "symbol", "timeframe"),
    [
        ("gemini_BTCUSD_1hr.csv", "Gemini", "BTCUSD", "1h"),
        ("Binance_ETHUSDT_minute.csv", "Binance", "ETHUSDT", "1m"),
        ("Bitstamp_BTCUSD_d.csv", "Bitstamp", "BTCUSD", "1d"),
        ("gdax-LTCUSD-1h.csv", "Coinbase", "LTCUSD", "1h"),
        ("prices.csv", "", None, None),
    ],
)
def test_hints_from_file_name(write_csv, file_name, exchange, symbol, timeframe):
    path = write_csv(file_name, ["Date,Open,High,Low,Close,Volume", "2020-01-01,1,2,0.5,1.5,3"])
    layout = detect_layout(path)
    assert (layout.exchange, layout.symbol_from_name, layout.timeframe_from_name) == (
        exchange,
        symbol,
        timeframe,
    )


# -- every fixture read to the exact bars ----------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURE_FILES))
@pytest.mark.parametrize("chunk_rows", [1, 2, 100_000])
def test_fixture_bars_read_exactly(name, chunk_rows):
    expected = FIXTURE_FILES[name]
    bars, rejected, rows_read = read_all(expected.path, chunk_rows)
    assert rejected == []
    assert rows_read == len(expected.bars)
    assert str(bars["time"].dtype) == "datetime64[us, UTC]"
    assert as_tuples(bars) == list(expected.bars)


# -- timestamps -------------------------------------------------------------------------


def test_unix_seconds_milliseconds_microseconds_and_mixed():
    values = pd.Series(
        [1577836800, 1577840400000, 1577844000000000, 1577847600, "1577851200000", None, "x"]
    )
    times = unix_to_datetime(values)
    assert times.tolist()[:5] == [
        pd.Timestamp("2020-01-01 00:00", tz="UTC"),
        pd.Timestamp("2020-01-01 01:00", tz="UTC"),
        pd.Timestamp("2020-01-01 02:00", tz="UTC"),
        pd.Timestamp("2020-01-01 03:00", tz="UTC"),
        pd.Timestamp("2020-01-01 04:00", tz="UTC"),
    ]
    assert times.iloc[5:].isna().all()


def test_unix_fractional_seconds_and_float_milliseconds():
    times = unix_to_datetime(pd.Series([1577836800.5, 1577836800500.0]))
    assert times.tolist() == [pd.Timestamp("2020-01-01 00:00:00.5", tz="UTC")] * 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-12-30 13:00:00", "2020-12-30 13:00"),
        ("2020-12-30 13:00", "2020-12-30 13:00"),
        ("2019-07-30 01-AM", "2019-07-30 01:00"),
        ("2019-07-30 12-AM", "2019-07-30 00:00"),
        ("2019-07-30 12-PM", "2019-07-30 12:00"),
        ("2019-07-30 11-PM", "2019-07-30 23:00"),
        ("2020-12-30", "2020-12-30 00:00"),
        ("12/30/2020 13:00", "2020-12-30 13:00"),
        ("2020-12-30T13:00:00Z", "2020-12-30 13:00"),
        (" 2020-12-30 13:00:00 ", "2020-12-30 13:00"),
    ],
)
def test_date_formats(text, expected):
    parsed = parse_dates(pd.Series([text], dtype="string"))
    assert parsed.iloc[0] == pd.Timestamp(expected, tz="UTC")


def test_mixed_date_formats_in_one_column_and_garbage():
    parsed = parse_dates(
        pd.Series(["2019-07-30 01-AM", "2020-12-30", "not a date", None], dtype="string")
    )
    assert parsed.iloc[0] == pd.Timestamp("2019-07-30 01:00", tz="UTC")
    assert parsed.iloc[1] == pd.Timestamp("2020-12-30", tz="UTC")
    assert parsed.iloc[2:].isna().all()


def test_unix_wins_when_date_disagrees_and_both_look_sound():
    path = FIXTURE_FILES["Gemini_BTCUSD_skewed_1h.csv"].path
    bar_file = read_bar_file(path)
    assert bar_file.rejections == []
    assert bar_file.time_column == "unix"
    assert bar_file.notes == [
        "times from the unix column: the columns disagree on 3 rows (first at line 3: unix "
        "says 2020-03-08 02:00:00, Date says 2020-03-07 21:00:00); both look sound, and the "
        "unix column is the exchange's own"
    ]
    bars = bar_file.bars
    # The file's Date column says 2020-03-07 19:00 .. 21:00.
    assert bars["time"].tolist() == [
        utc("2020-03-08 00:00"),
        utc("2020-03-08 01:00"),
        utc("2020-03-08 02:00"),
    ]


def test_date_used_where_unix_is_blank(write_csv):
    path = write_csv(
        "Gemini_BTCUSD_1h.csv",
        [
            GEMINI_HEADER,
            "1577840400,2020-01-01 01:00:00,BTCUSD,1,2,0.5,1.5,3",
            ",2020-01-01 00:00:00,BTCUSD,1,2,0.5,1.5,4",
        ],
    )
    bars, rejected, _ = read_all(path)
    assert rejected == []
    assert bars["time"].tolist() == [utc("2020-01-01 00:00"), utc("2020-01-01 01:00")]
    assert bars["volume"].tolist() == [4.0, 3.0]


# -- volume column ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "symbol", "expected"),
    [
        ("Unix,Date,Symbol,Open,High,Low,Close,Volume BTC,Volume USDT", "BTCUSDT", 7.0),
        ("Unix,Date,Symbol,Open,High,Low,Close,Volume USD,Volume BTC", "BTC/USD", 8.0),
        ("Unix,Date,Symbol,Open,High,Low,Close,Volume BTC,Volume ETH", "ETH/BTC", 8.0),
        ("Unix,Date,Symbol,Open,High,Low,Close,Volume To,Volume From", "BTCUSD", 8.0),
        ("Unix,Date,Symbol,Open,High,Low,Close,vwap,Volume", "BTCUSD", 8.0),
        ("Unix,Date,Open,High,Low,Close,Volume USD,Volume XRP", None, 8.0),
    ],
)
def test_volume_is_the_base_currency_column(write_csv, header, symbol, expected):
    values = "1577836800,2020-01-01 00:00:00," + (f"{symbol}," if symbol else "")
    path = write_csv("prices_1h.csv", [header, values + "1,2,0.5,1.5,7,8"])
    bars, rejected, _ = read_all(path, symbol=symbol or "XRPUSD")
    assert rejected == []
    assert bars["volume"].tolist() == [expected]


# -- rejections -------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 4, 100_000])
def test_bad_rows_rejected_with_exact_file_lines(chunk_rows):
    bars, rejected, rows_read = read_all(BAD_ROWS_FILE, chunk_rows)
    assert [(r.line, r.reason) for r in rejected] == sorted(
        [*BAD_ROWS_READER_REJECTIONS, BAD_ROWS_OTHER_SYMBOL]
    )
    # Lines 3, 10 and 11 are good; line 9 is well-formed but names another pair.
    assert as_tuples(bars) == list(BAD_ROWS_STORED)
    assert rows_read == 9  # lines 3-7 and 9-12; the blank line 8 is not a row


@pytest.mark.parametrize("chunk_rows", [1, 2, 100_000])
def test_reader_rejects_only_what_no_column_can_save(chunk_rows):
    """The chunk reader keeps every candidate time; which column wins is decided per file."""
    chunks = list(iter_bar_chunks(detect_layout(BAD_ROWS_FILE), chunk_rows=chunk_rows))
    rejected = [(r.line, r.reason) for c in chunks for r in c.rejected]
    assert rejected == BAD_ROWS_READER_REJECTIONS


@pytest.mark.parametrize("chunk_rows", [1, 2, 100_000])
def test_bar_lines_survive_skipped_and_blank_lines(chunk_rows):
    layout = detect_layout(BAD_ROWS_FILE)
    lines = {}
    for chunk in iter_bar_chunks(layout, chunk_rows=chunk_rows):
        assert list(chunk.bars.columns[:2]) == ["unix", "date"]
        for line, time in zip(chunk.bars["line"], chunk.bars["unix"], strict=True):
            lines[line] = time
    assert lines == {
        3: utc("2020-01-01 06:00"),
        9: utc("2020-01-01 01:00"),
        10: utc("2020-01-01 00:00"),
        11: utc("2019-12-31 23:00"),
    }


@pytest.mark.parametrize("chunk_rows", [1, 2, 100_000])
def test_too_many_fields_on_the_first_data_lines(write_csv, chunk_rows):
    """pandas would take the extra field for an index and shift every column of every row."""
    path = write_csv(
        "Gemini_LTCUSD_1h.csv",
        [
            GEMINI_HEADER,
            "1577844000,2020-01-01 02:00:00,LTCUSD,41.5,41.9,41.2,41.8,310.0,5",
            "1577840400,2020-01-01 01:00:00,LTCUSD,41.1,41.6,41.0,41.5,120.5,1,2",
            "1577836800,2020-01-01 00:00:00,LTCUSD,41.3,41.4,40.9,41.1,95.25",
            "1577833200,2019-12-31 23:00:00,LTCUSD,41.2,41.35,41.0,41.3,80.0,7",
            "1577829600,2019-12-31 22:00:00,LTCUSD,41.0,41.25,40.8,41.2,60.0",
        ],
    )
    # Two bars survive, two hours apart: the flag keeps that spacing from naming the length.
    bars, rejected, rows_read = read_all(path, chunk_rows, bar_length="1h")
    assert [(r.line, r.reason) for r in rejected] == [
        (2, "expected 8 fields, saw 9"),
        (3, "expected 8 fields, saw 10"),
        (5, "expected 8 fields, saw 9"),
    ]
    assert as_tuples(bars) == [
        (utc("2019-12-31 22:00"), 41.0, 41.25, 40.8, 41.2, 60.0),
        (utc("2020-01-01 00:00"), 41.3, 41.4, 40.9, 41.1, 95.25),
    ]
    assert rows_read == 5


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("1577836800,2020-01-01 00:00:00,BTCUSD,-1,2,0.5,1.5,3", "a price is 0 or negative"),
        (
            "1577836800,2020-01-01 00:00:00,BTCUSD,abc,2,0.5,1.5,3",
            "open is missing or not a number",
        ),
        (
            "1577836800,2020-01-01 00:00:00,BTCUSD,3,2,0.5,1.5,3",
            "open or close lies outside low..high",
        ),
        (
            "1577836800,2020-01-01 00:00:00,BTCUSD,1,2,0.5,0.4,3",
            "open or close lies outside low..high",
        ),
        ("1577836800,2020-01-01 00:00:00,BTCUSD,1,2,0.5,1.5,", "volume is missing or not a number"),
        ("1577836800,2020-01-01 00:00:00,BTCUSD,1,2,0.5,1.5,-3", "volume is negative"),
        ("1577836800,2020-01-01 00:00:00,BTCUSD,1,2,0.5,1.5", "volume is missing or not a number"),
        (",yesterday,BTCUSD,1,2,0.5,1.5,3", "date cannot be parsed: 'yesterday'"),
    ],
)
def test_each_rejection_reason(write_csv, row, reason):
    good = "1577840400,2020-01-01 01:00:00,BTCUSD,1,2,0.5,1.5,3"
    path = write_csv(
        "Gemini_BTCUSD_1h.csv", ["Created on x,CryptoDataDownload", GEMINI_HEADER, good, row]
    )
    bars, rejected, rows_read = read_all(path)
    assert rejected == [Rejection(4, reason)]
    assert bars["time"].tolist() == [utc("2020-01-01 01:00")]
    assert rows_read == 2


def test_zero_volume_is_a_real_bar(write_csv):
    path = write_csv("Gemini_BTCUSD_1h.csv", [GEMINI_HEADER, "1577836800,x,BTCUSD,1,1,1,1,0"])
    bars, rejected, _ = read_all(path)
    assert rejected == []
    assert bars["volume"].tolist() == [0.0]


# -- unreadable files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("unreadable_empty.csv", "the file is empty"),
        ("unreadable_html.csv", "line 1 is not an OHLCV header (missing open, high, low, close)"),
        ("unreadable_utf16.csv", "not a UTF-8 text file"),
    ],
)
def test_unreadable_fixture_gives_one_line_reason_naming_the_file(name, why):
    assert name in UNREADABLE_FILES
    path = FIXTURES_DIR / name
    with pytest.raises(CsvFormatError) as error:
        detect_layout(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert why in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        (
            ["Created on 01-01-2020,https://www.CryptoDataDownload.com"],
            "no column header on line 2",
        ),
        (["Date,Open,High,Low,Close", "2020-01-01,1,2,0.5,1.5"], "no volume column"),
        (["Date,Open,High,Low,Volume", "2020-01-01,1,2,0.5,1.5"], r"missing close\)"),
        (
            ["Symbol,Open,High,Low,Close,Volume", "BTCUSD,1,2,0.5,1.5,3"],
            "missing a Unix Timestamp or Date column",
        ),
    ],
)
def test_unreadable_headers(write_csv, lines, why):
    path = write_csv("Gemini_BTCUSD_1h.csv", lines)
    with pytest.raises(CsvFormatError, match=why):
        detect_layout(path)


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(CsvFormatError, match="cannot open"):
        detect_layout(tmp_path / "nothing_here.csv")


# -- bar length, symbols ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (["2020-01-01 03:00", "2020-01-01 02:00", "2020-01-01 00:00"], "1h"),  # gap, newest first
        (["2020-01-01 00:00", "2020-01-01 00:01", "2020-01-01 00:02", "2020-01-01 00:04"], "1m"),
        (["2020-12-27", "2020-12-28", "2020-12-30", "2020-12-31"], "1d"),
        (["2020-01-01 00:00", "2020-01-01 00:15", "2020-01-01 00:30"], "15m"),
        (["2020-01-01 00:00", "2020-01-01 04:00", "2020-01-01 08:00"], "4h"),
        (["2020-01-06", "2020-01-13", "2020-01-20"], "1w"),
        (["2020-01-01 00:00", "2020-01-01 00:00", "2020-01-01 01:00"], "1h"),  # duplicates
        (["2020-01-01 00:00"], None),
        (["2020-01-01 00:00", "2020-01-01 00:00"], None),
    ],
)
def test_infer_timeframe(times, expected):
    assert infer_timeframe(pd.Series(pd.to_datetime(times, utc=True))) == expected


@pytest.mark.parametrize(
    ("seconds", "name"),
    [
        (60, "1m"),
        (300, "5m"),
        (3600, "1h"),
        (14400, "4h"),
        (86400, "1d"),
        (604800, "1w"),
        (1209600, "14d"),
        (90, "90s"),
    ],
)
def test_timeframe_names_round_trip(seconds, name):
    assert timeframe_from_seconds(seconds) == name
    assert timeframe_seconds(name) == seconds


@pytest.mark.parametrize("bad", ["H", "1hr", "", "0.5h", "1 h"])
def test_bad_timeframe_names(bad):
    with pytest.raises(ValueError, match="is not a timeframe"):
        timeframe_seconds(bad)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("BTC/USD", "BTCUSD"), ("btc-usd", "BTCUSD"), ("eth_usdt", "ETHUSDT"), (" BTCUSD ", "BTCUSD")],
)
def test_normalise_symbol(raw, expected):
    assert normalise_symbol(raw) == expected


@pytest.mark.parametrize(
    ("symbol", "base"),
    [("BTCUSD", "BTC"), ("BTCUSDT", "BTC"), ("ETHBTC", "ETH"), ("LTCEUR", "LTC"), ("USD", None)],
)
def test_base_currency(symbol, base):
    assert base_currency(symbol) == base


def test_count_data_lines_with_and_without_final_newline(write_csv, tmp_path):
    assert count_data_lines(write_csv("a.csv", ["x", "y", "z"])) == 3
    unterminated = tmp_path / "b.csv"
    unterminated.write_bytes(b"x\r\ny\r\nz")
    assert count_data_lines(unterminated) == 3


def test_real_gemini_file_read_without_database():
    """The shipped file's units switch from seconds to ms part-way; no time may be NaT."""
    path = Path(__file__).resolve().parent.parent / "data" / "gemini_BTCUSD_1hr.csv"
    bars, rejected, rows_read = read_all(path, chunk_rows=10_000)
    assert rows_read == 45_825
    assert bars["time"].is_monotonic_increasing and bars["time"].is_unique
    assert rejected == [Rejection(45_827, "a price is 0 or negative")]
    assert len(bars) == 45_824
    assert bars["time"].notna().all()
    steps = bars["time"].diff().dt.total_seconds().iloc[1:]
    assert set(steps.tolist()) == {3600.0, 7200.0}
