"""utils.studies.read_csv_bars: the notebooks' way to read a shipped file without Django."""

import pandas as pd

from tests.conftest import BAD_ROWS_FILE, BAD_ROWS_STORED, FIXTURE_FILES
from utils.studies import read_csv_bars


def as_rows(frame: pd.DataFrame) -> list[tuple]:
    return [
        (time.to_pydatetime(), *map(float, row))
        for time, row in zip(frame.index, frame.to_numpy(), strict=True)
    ]


def test_reads_every_bar_oldest_first() -> None:
    fixture = FIXTURE_FILES["Gemini_BTCUSD_1h.csv"]
    bars = read_csv_bars(fixture.path)
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert str(bars.index.tz) == "UTC"
    assert as_rows(bars) == list(fixture.bars)


def test_leaves_out_rows_the_importer_rejects() -> None:
    bars = read_csv_bars(BAD_ROWS_FILE)  # bad values, and a row of another pair
    assert as_rows(bars) == list(BAD_ROWS_STORED)
