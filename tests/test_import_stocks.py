"""The import service and `manage.py import_stocks` against the bar store."""

from __future__ import annotations

import csv
import io
import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import predictor.services.bars as bars_service
import predictor.services.importing as importing
from predictor.models import Stock
from predictor.services.importing import import_csv_file, import_csv_files
from tests.checks import present
from tests.conftest import (
    BAD_ROWS_FILE,
    BAD_ROWS_OTHER_SYMBOL,
    BAD_ROWS_READER_REJECTIONS,
    BAD_ROWS_STORED,
    DATA_DIR,
    FIXTURE_FILES,
    FIXTURES_DIR,
    REPO_DIR,
    UNREADABLE_FILES,
    run_import,
    utc,
)
from utils.csv_formats import Rejection

pytestmark = pytest.mark.django_db

GEMINI_HEADER = "Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume"
SKEWED_NOTE = (
    "times from the unix column: the columns disagree on 3 rows (first at line 3: unix says "
    "2020-03-08 02:00:00, Date says 2020-03-07 21:00:00); both look sound, and the unix "
    "column is the exchange's own"
)
EPOCH_2020 = 1577836800  # 2020-01-01 00:00 UTC


def stored(symbol: str | None = None, bar_length: str | None = None) -> list[tuple]:
    """Stored bars as (time, open, high, low, close, volume), oldest first."""
    queryset = Stock.objects.all()
    if symbol:
        queryset = queryset.filter(symbol=symbol)
    if bar_length:
        queryset = queryset.filter(bar_length=bar_length)
    return list(
        queryset.order_by("time").values_list("time", "open", "high", "low", "close", "volume")
    )


def provisional_times(symbol: str = "BTCUSD", bar_length: str = "1h") -> list:
    rows = Stock.objects.filter(symbol=symbol, bar_length=bar_length, provisional=True)
    return list(rows.order_by("time").values_list("time", flat=True))


def snapshot() -> list[tuple]:
    """Every stored row, every column, to prove a re-run changed nothing."""
    return list(Stock.objects.order_by("id").values_list())


def summary(path, symbol, bar_length, rows, inserted, present, rejected) -> str:
    return (
        f"{path}: {symbol} {bar_length} - rows read {rows}, bars inserted {inserted}, "
        f"already present {present}, rejected {rejected}"
    )


def hourly_file(write_csv, name: str, hours: range, *, close_offset: float = 0.0) -> Path:
    """A Gemini-layout file, oldest first, bar i at 2020-01-01 + i h with prices from i."""
    lines = [GEMINI_HEADER]
    for i in hours:
        o = 100.0 + i
        lines.append(
            f"{EPOCH_2020 + 3600 * i},x,BTCUSD,{o},{o + 2},{o - 1},{o + 1 + close_offset},{i}"
        )
    return write_csv(name, lines)


def hourly_bars(hours: range, *, close_offset: float = 0.0) -> list[tuple]:
    """What hourly_file's bars must be stored as, written from the same rule."""
    return [
        (
            utc("2020-01-01 00:00") + timedelta(hours=i),
            100.0 + i,
            102.0 + i,
            99.0 + i,
            101.0 + i + close_offset,
            float(i),
        )
        for i in hours
    ]


# -- every layout -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURE_FILES))
def test_command_imports_each_layout_exactly(name):
    expected = FIXTURE_FILES[name]
    out, err = run_import(expected.path)
    n = len(expected.bars)
    assert out.splitlines() == [
        summary(expected.path, expected.symbol, expected.bar_length, n, n, 0, 0)
    ]
    skewed = name == "Gemini_BTCUSD_skewed_1h.csv"  # the Date column is local time
    assert err == (f"{expected.path}: {SKEWED_NOTE}\n" if skewed else "")
    assert stored() == list(expected.bars)
    rows = Stock.objects.values_list("symbol", "bar_length", "exchange", "source").distinct()
    assert list(rows) == [(expected.symbol, expected.bar_length, expected.exchange, f"csv:{name}")]
    assert all(t.utcoffset() == timedelta(0) for t, *_ in stored())


@pytest.mark.parametrize("name", sorted(FIXTURE_FILES))
def test_service_imports_each_layout_exactly(name):
    expected = FIXTURE_FILES[name]
    result = import_csv_file(expected.path, chunk_rows=2)
    n = len(expected.bars)
    assert result.error is None
    assert (result.symbol, result.bar_length) == (expected.symbol, expected.bar_length)
    assert (result.rows_read, result.inserted, result.already_present, result.rejected) == (
        n,
        n,
        0,
        0,
    )
    assert stored(expected.symbol, expected.bar_length) == list(expected.bars)


def test_all_layouts_in_one_folder_land_in_their_own_series(tmp_path):
    """Different pairs and bar lengths from one run; each series holds exactly its file."""
    names = [
        "Binance_BTCUSDT_1h.csv",
        "Coinbase_ETHUSD_1h_old.csv",
        "Gemini_BTCUSD_1h.csv",
        "Gemini_BTCUSD_d.csv",
        "Gemini_ETHUSD_2020_1min.csv",
        "Gemini_LTCUSD_1h.csv",
    ]
    for name in names:
        shutil.copy(FIXTURES_DIR / name, tmp_path / name)
    out, _ = run_import(tmp_path)
    assert len(out.splitlines()) == len(names)
    for name in names:
        expected = FIXTURE_FILES[name]
        assert stored(expected.symbol, expected.bar_length) == list(expected.bars), name
    assert Stock.objects.count() == sum(len(FIXTURE_FILES[n].bars) for n in names)


def test_bad_rows_reported_with_lines_and_reasons():
    out, err = run_import(BAD_ROWS_FILE)
    rejections = sorted([*BAD_ROWS_READER_REJECTIONS, BAD_ROWS_OTHER_SYMBOL])
    assert out.splitlines() == [summary(BAD_ROWS_FILE, "BTCUSD", "1h", 9, 3, 0, 6)]
    assert err.splitlines() == [
        f"{BAD_ROWS_FILE}:{line}: rejected: {reason}" for line, reason in rejections
    ]
    assert stored() == list(BAD_ROWS_STORED)


@pytest.mark.parametrize("chunk_rows", [1, 2, 5])
def test_service_rejections_do_not_depend_on_chunking(chunk_rows):
    result = import_csv_file(BAD_ROWS_FILE, chunk_rows=chunk_rows)
    assert result.error is None
    assert result.rejections == [
        Rejection(line, reason)
        for line, reason in sorted([*BAD_ROWS_READER_REJECTIONS, BAD_ROWS_OTHER_SYMBOL])
    ]
    assert (result.rows_read, result.inserted, result.rejected) == (9, 3, 6)
    assert stored() == list(BAD_ROWS_STORED)


# -- flags ------------------------------------------------------------------------------


def test_symbol_and_bar_length_flags_override_the_file():
    expected = FIXTURE_FILES["Gemini_BTCUSD_1h.csv"]
    out, err = run_import(expected.path, "--symbol", "xbt/eur", "--bar-length", "60m")
    assert out.splitlines() == [summary(expected.path, "XBTEUR", "1h", 5, 5, 0, 0)]
    assert err == ""
    assert stored("XBTEUR", "1h") == list(expected.bars)
    assert not Stock.objects.exclude(symbol="XBTEUR").exists()


def test_bar_length_flag_that_disagrees_with_the_bars_warns():
    expected = FIXTURE_FILES["Gemini_BTCUSD_1h.csv"]
    _, err = run_import(expected.path, "-b", "2h")
    off_grid = "not on the grid of 2h bars (whole multiples of 2h since 1970-01-01)"
    assert err.splitlines() == [
        f"{expected.path}: --bar-length 2h given, but the bars are 1h apart",
        f"{expected.path}:4: rejected: time 2020-01-01 03:00:00 UTC is {off_grid}",
        f"{expected.path}:6: rejected: time 2020-01-01 01:00:00 UTC is {off_grid}",
    ]
    assert stored("BTCUSD", "2h") == [expected.bars[i] for i in (0, 2, 4)]


def test_symbol_flag_keeps_rows_the_symbol_check_would_reject():
    """Overriding the symbol means the Symbol column is not checked."""
    result = import_csv_file(BAD_ROWS_FILE, symbol="BTCUSD")
    assert result.rejected == len(BAD_ROWS_READER_REJECTIONS)
    assert len(stored()) == len(BAD_ROWS_STORED) + 1


def test_file_without_hints_needs_the_flags(write_csv):
    path = write_csv(
        "prices.csv", ["Date,Open,High,Low,Close,Volume", "2020-01-01 00:00,1,2,0.5,1.5,3"]
    )
    with pytest.raises(CommandError):
        run_import(path)
    assert Stock.objects.count() == 0
    result = import_csv_file(path)
    assert "pass --symbol" in present(result.error)
    result = import_csv_file(path, symbol="BTCUSD")
    assert "pass --bar-length" in present(result.error)  # one bar: no spacing to measure
    out, _ = run_import(path, "--symbol", "BTCUSD", "--bar-length", "1d")
    assert out.splitlines() == [summary(path, "BTCUSD", "1d", 1, 1, 0, 0)]
    assert stored("BTCUSD", "1d") == [(utc("2020-01-01 00:00"), 1.0, 2.0, 0.5, 1.5, 3.0)]


def test_file_name_and_bar_spacing_disagree(write_csv):
    path = write_csv(
        "Gemini_BTCUSD_1h.csv",
        [GEMINI_HEADER, "1577836800,x,BTCUSD,1,2,0.5,1.5,3", "1577923200,x,BTCUSD,1,2,0.5,1.5,3"],
    )
    result = import_csv_file(path)
    assert result.error == (
        f"{path}: the file name says 1h bars but they are 1d apart; pass --bar-length to choose"
    )
    assert Stock.objects.count() == 0


@pytest.mark.parametrize("bad", ["--chunk-rows=0", "--bar-length=H"])
def test_bad_flags_fail(bad):
    path = FIXTURE_FILES["Gemini_BTCUSD_1h.csv"].path
    with pytest.raises(CommandError):
        run_import(path, bad)
    assert Stock.objects.count() == 0


def test_missing_path_fails(tmp_path):
    with pytest.raises(CommandError, match="no such file or folder"):
        run_import(tmp_path / "nope.csv")


# -- unreadable files -------------------------------------------------------------------


def test_unreadable_files_fail_one_line_each_while_the_others_import(tmp_path):
    good = FIXTURE_FILES["Gemini_BTCUSD_1h.csv"]
    for name in (good.name, *UNREADABLE_FILES):
        shutil.copy(FIXTURES_DIR / name, tmp_path / name)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("import_stocks", str(tmp_path), "--no-progress", stdout=out, stderr=err)

    assert failure.value.returncode == 1  # manage.py exits with it
    assert str(failure.value).startswith("3 of 4 files could not be imported: ")
    failed_lines = err.getvalue().splitlines()
    assert len(failed_lines) == 3
    for line, name in zip(failed_lines, sorted(UNREADABLE_FILES), strict=True):
        assert line.startswith(f"FAILED {tmp_path / name}: ")
        assert str(tmp_path / name) in str(failure.value)
    assert out.getvalue().splitlines() == [
        summary(tmp_path / good.name, "BTCUSD", "1h", 5, 5, 0, 0)
    ]
    assert stored() == list(good.bars)


# -- idempotency ------------------------------------------------------------------------


def test_second_import_inserts_nothing_and_changes_nothing():
    expected = FIXTURE_FILES["Gemini_BTCUSD_1h.csv"]
    run_import(expected.path)
    before = snapshot()
    out, err = run_import(expected.path)
    assert out.splitlines() == [summary(expected.path, "BTCUSD", "1h", 5, 0, 5, 0)]
    assert err == ""
    assert snapshot() == before


def test_overlapping_files_keep_the_first_bars_but_complete_the_provisional_one(write_csv):
    """The second file's overlapping bars differ. The stored ones must not change, except the
    first file's newest bar, which was provisional: the newer file's bar replaces it."""
    first = hourly_file(write_csv, "a/Gemini_BTCUSD_1h.csv", range(0, 6))
    second = hourly_file(write_csv, "b/Gemini_BTCUSD_1h.csv", range(3, 10), close_offset=0.5)
    run_import(first)
    before = snapshot()
    assert provisional_times() == [utc("2020-01-01 05:00")]
    out, _ = run_import(second)
    assert out.splitlines() == [
        summary(second, "BTCUSD", "1h", 7, 4, 2, 0) + ", provisional bars replaced 1"
    ]
    assert snapshot()[:5] == before[:5]
    assert stored() == hourly_bars(range(0, 5)) + hourly_bars(range(5, 10), close_offset=0.5)
    assert provisional_times() == [utc("2020-01-01 09:00")]

    out, err = run_import(first.parent.parent)  # both again, in one run
    newest_of_first = f"{first}:7: rejected: the file's newest bar (2020-01-01 05:00 UTC) was"
    assert out.splitlines() == [
        summary(first, "BTCUSD", "1h", 6, 0, 6, 0),  # 05:00 is held, so it counts as present
        summary(second, "BTCUSD", "1h", 7, 0, 7, 0),
    ]
    assert newest_of_first not in err
    assert Stock.objects.count() == 10
    assert provisional_times() == [utc("2020-01-01 09:00")]


def test_an_older_files_newest_bar_is_not_stored_behind_newer_bars(write_csv):
    """A file's newest bar was most likely still forming; behind newer stored bars it could
    never be replaced, so it is rejected rather than stored for ever."""
    newer = hourly_file(write_csv, "a/Gemini_BTCUSD_1h.csv", range(5, 10))
    older = hourly_file(write_csv, "b/Gemini_BTCUSD_1h.csv", range(0, 3))
    run_import(newer)
    before = snapshot()
    out, err = run_import(older)
    assert out.splitlines() == [summary(older, "BTCUSD", "1h", 3, 2, 0, 1)]
    assert err.splitlines() == [
        f"{older}:4: rejected: the file's newest bar (2020-01-01 02:00 UTC) was probably "
        "still forming when the file was made, and newer bars are stored: not stored"
    ]
    assert stored() == hourly_bars(range(0, 2)) + hourly_bars(range(5, 10))
    assert [row for row in snapshot() if row in before] == before


def test_duplicate_bars_within_one_file_keep_the_larger_volume(write_csv):
    path = write_csv(
        "Gemini_BTCUSD_1h.csv",
        [
            GEMINI_HEADER,
            "1577840400,x,BTCUSD,2,3,1,2,5",
            "1577840400000,x,BTCUSD,9,9,9,9,9",  # the same hour, in ms, with more volume
            "1577836800,x,BTCUSD,1,2,0.5,1.5,3",
        ],
    )
    result = import_csv_file(path)
    assert (result.inserted, result.already_present, result.rejected) == (2, 0, 0)
    assert (result.duplicates.times, result.duplicates.conflicting) == (1, 1)
    assert result.duplicates.notes == [
        Rejection(
            2,
            "2020-01-01 01:00:00 given again: other values than line 3, which is "
            "kept (larger volume)",
        )
    ]
    assert stored() == [
        (utc("2020-01-01 00:00"), 1.0, 2.0, 0.5, 1.5, 3.0),
        (utc("2020-01-01 01:00"), 9.0, 9.0, 9.0, 9.0, 9.0),
    ]


def test_two_symbols_in_one_transaction_do_not_mix():
    """insert_bars may run inside an outer transaction (a test, a caller's atomic block)."""
    btc = FIXTURE_FILES["Gemini_BTCUSD_1h.csv"]
    ltc = FIXTURE_FILES["Gemini_LTCUSD_1h.csv"]
    results = import_csv_files([btc.path, ltc.path])
    assert [r.inserted for r in results] == [5, 3]
    assert stored("BTCUSD") == list(btc.bars)
    assert stored("LTCUSD") == list(ltc.bars)


# -- interrupted imports ----------------------------------------------------------------


@pytest.mark.parametrize("where", ["before the write", "half-way through the write"])
def test_interrupted_import_keeps_whole_chunks_and_rerun_completes(write_csv, monkeypatch, where):
    path = hourly_file(write_csv, "Gemini_BTCUSD_1h.csv", range(10))
    calls = []
    real_insert_bars = importing.insert_bars
    real_writer = bars_service._insert_rows

    def interrupt_before(key, bars, **options):
        calls.append(len(bars))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_insert_bars(key, bars, **options)

    def interrupt_half_way(key, bars, **options):
        calls.append(len(bars))
        if len(calls) == 3:
            real_writer(key, bars.iloc[:1], **options)  # one row of the chunk is written...
            raise KeyboardInterrupt  # ...and then the process is interrupted
        return real_writer(key, bars, **options)

    if where == "before the write":
        monkeypatch.setattr(importing, "insert_bars", interrupt_before)
    else:
        monkeypatch.setattr(bars_service, "_insert_rows", interrupt_half_way)
    with pytest.raises(KeyboardInterrupt):
        run_import(path, "--chunk-rows", 3)
    assert calls == [3, 3, 3]
    assert stored() == hourly_bars(range(6))  # two whole chunks, nothing of the third

    monkeypatch.undo()
    out, _ = run_import(path, "--chunk-rows", 3)
    assert out.splitlines() == [summary(path, "BTCUSD", "1h", 10, 4, 6, 0)]
    assert stored() == hourly_bars(range(10))


def test_sigint_leaves_whole_chunks_in_a_sound_database_and_rerun_completes(tmp_path):
    """A real process, a real SQLite file, a real Ctrl-C part-way through."""
    rows, chunk = 40_000, 200
    path = tmp_path / "Gemini_BTCUSD_1m.csv"
    start = 1_500_000_000 // 60 * 60
    with path.open("w") as handle:
        handle.write(GEMINI_HEADER + "\n")
        for i in range(rows):
            price = 100 + i % 7
            handle.write(f"{start + 60 * i},x,BTCUSD,{price},{price + 9},{price - 9},{price},1\n")
    database = tmp_path / "interrupt.sqlite3"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DATABASE_URL=f"sqlite:///{database}", DJANGO_RUNTIME_ENVIRONMENT="development")
    manage = [sys.executable, str(REPO_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=REPO_DIR, timeout=120)
    command = [*manage, "import_stocks", str(path), "--chunk-rows", str(chunk), "--no-progress"]

    def count() -> int:
        with sqlite3.connect(database, timeout=10) as db:
            return db.execute("SELECT COUNT(*) FROM predictor_stock").fetchone()[0]

    process = subprocess.Popen(
        command, env=env, cwd=REPO_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while count() < 3 * chunk and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode != 0, "the import finished before it could be interrupted"
    assert b"KeyboardInterrupt" in stderr
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        times = [t for (t,) in db.execute("SELECT time FROM predictor_stock ORDER BY time")]
    kept = len(times)
    assert 0 < kept < rows
    assert kept % chunk == 0  # whole chunks only
    first = utc("2017-07-14 02:40")  # 1500000000 s, rounded down to the minute
    assert times[0] == f"{first:%Y-%m-%d %H:%M:%S}"
    assert times[-1] == f"{first + timedelta(minutes=kept - 1):%Y-%m-%d %H:%M:%S}"

    # Bigger chunks for the re-run: completing must not depend on the chunking.
    command[command.index("--chunk-rows") + 1] = "20000"
    rerun = subprocess.run(
        command, env=env, cwd=REPO_DIR, capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines() == [summary(path, "BTCUSD", "1m", rows, rows - kept, kept, 0)]
    assert count() == rows


# -- the real shipped files -------------------------------------------------------------


def read_real_file(path: Path) -> tuple[list[tuple], list[int]]:
    """Bars with every price above 0, and the file lines of those without, by plain csv."""
    good, bad = [], []
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if line <= 2:
                continue
            unix = int(row[0])
            seconds = unix // 1000 if unix > 10**11 else unix
            values = [float(v) for v in row[3:8]]
            if min(values[:4]) <= 0:
                bad.append(line)
                continue
            good.append((utc("1970-01-01 00:00") + timedelta(seconds=seconds), *values))
    return sorted(good), bad


@pytest.mark.slow
def test_real_shipped_files_end_to_end():
    btc_path = DATA_DIR / "gemini_BTCUSD_1hr.csv"
    eth_path = DATA_DIR / "gemini_ETHUSD_1hr.csv"
    out, err = run_import(btc_path, eth_path)

    assert out.splitlines() == [
        summary(btc_path, "BTCUSD", "1h", 45_825, 45_824, 0, 1),
        summary(eth_path, "ETHUSD", "1h", 28_236, 28_235, 0, 1),
    ]
    assert err.splitlines() == [
        f"{btc_path}:45827: rejected: a price is 0 or negative",
        f"{eth_path}:28238: rejected: a price is 0 or negative",
    ]
    btc, eth = stored("BTCUSD", "1h"), stored("ETHUSD", "1h")
    assert len(btc) == 45_824
    assert len(eth) == 28_235
    # First and last bars as the files print them (the 0-price first bars are gone).
    assert btc[0] == (utc("2015-10-08 14:00"), 245.0, 245.0, 244.5, 245.0, 4.453648931)
    assert btc[-1] == (utc("2020-12-30 00:00"), 27368.9, 27600.0, 27368.9, 27524.93, 21.9246071316)
    assert eth[0] == (utc("2016-05-09 14:00"), 9.55, 10.0, 9.55, 10.0, 235.7740748)
    assert eth[-1] == (utc("2019-07-30 00:00"), 210.83, 210.84, 210.52, 210.84, 1.45781)
    # The units switch from seconds to milliseconds between these two bars.
    switch = {bar[0]: bar for bar in btc if bar[0].date().isoformat() == "2018-06-27"}
    assert switch[utc("2018-06-27 10:00")][1:5] == (6095.42, 6131.08, 6085.82, 6117.7)
    assert switch[utc("2018-06-27 11:00")][1:5] == (6117.7, 6117.7, 6081.2, 6092.2)

    hours = [bar[0] for bar in btc]
    missing = [
        a + timedelta(hours=1) for a, b in itertools.pairwise(hours) if b - a != timedelta(hours=1)
    ]
    assert missing == [utc("2019-11-13 00:00"), utc("2019-11-20 02:00"), utc("2019-12-17 01:00")]
    eth_hours = [bar[0] for bar in eth]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(eth_hours))

    # Every bar, value for value, against a plain csv reading of the files.
    for path, bars, line in ((btc_path, btc, 45_827), (eth_path, eth, 28_238)):
        expected, rejected_lines = read_real_file(path)
        assert rejected_lines == [line]
        assert bars == expected

    out, _ = run_import(DATA_DIR)  # the default folder: everything already there
    assert sorted(out.splitlines()) == [
        summary(btc_path, "BTCUSD", "1h", 45_825, 0, 45_824, 1),
        summary(eth_path, "ETHUSD", "1h", 28_236, 0, 28_235, 1),
    ]
