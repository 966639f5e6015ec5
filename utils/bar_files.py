"""One CSV file read whole and judged whole: the bars it may store, and why the rest may not.

`utils.csv_formats` turns each row into candidate values; what can only be decided from the
whole file happens here, before anything is stored:

- which time column to believe when the unix column and the Date column disagree (Excel
  rounds `Unix Timestamp` to six digits while the Date column stays right);
- the bar length, and the grid every bar must sit on;
- times given more than once, and which row of them is the bar;
- which bar is the file's newest, still forming when the file was made.

No Django imports: notebooks read files through `read_bar_file` exactly as the importer does.
Memory grows with the file (about 70 bytes a row: 2 million minute bars take ~150 MB), the
price of judging the file whole; it is read in bounded chunks all the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from utils.bar_checks import VALUE_FIELDS, time_reasons
from utils.csv_formats import (
    CsvFormatError,
    CsvLayout,
    Rejection,
    detect_layout,
    infer_timeframe,
    iter_bar_chunks,
    normalise_symbol,
)
from utils.timeframes import timeframe_from_seconds, timeframe_seconds

DEFAULT_CHUNK_ROWS = 100_000
EXAMPLES_KEPT = 1000
_COLUMN_NAMES = {"unix": "the unix column", "date": "the Date column"}


@dataclass
class Duplicates:
    """Times the file gives more than once, and what became of their rows."""

    times: int = 0  # distinct times given twice or more
    conflicting: int = 0  # of those, times whose rows disagree on a value
    rows_dropped: int = 0  # rows not stored because another row of their time was kept
    notes: list[Rejection] = field(default_factory=list)  # a line per dropped row

    def summary(self) -> str:
        return (
            f"{self.times} times given more than once ({self.conflicting} with different "
            f"values), {self.rows_dropped} rows not stored"
        )


@dataclass
class BarFile:
    """What a file holds, judged: `bars` are fit to store, oldest first, one per time."""

    layout: CsvLayout
    symbol: str
    bar_length: str
    bars: pd.DataFrame  # BAR_COLUMNS plus `line`; time is datetime64[us, UTC], unique, sorted
    rows_read: int
    rejections: list[Rejection]
    rejected: int
    duplicates: Duplicates
    time_column: str  # "unix" or "date": the column the times came from
    notes: list[str] = field(default_factory=list)  # decisions the summary must show

    @property
    def path(self) -> Path:
        return self.layout.path

    @property
    def newest_time(self) -> pd.Timestamp | None:
        """The file's newest bar: still forming when the file was made, so provisional."""
        return self.bars["time"].iloc[-1] if len(self.bars) else None


def read_bar_file(
    path: Path,
    *,
    symbol: str | None = None,
    bar_length: str | None = None,
    strict: bool = False,
    now: datetime | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_rows: Callable[[int], None] | None = None,
) -> BarFile:
    """Read and judge one file; raises CsvFormatError (one line naming the file) to refuse it.

    `symbol` and `bar_length` override what the file says. With `strict`, a file that gives
    one time twice with different values is refused instead of keeping one of them.
    """
    now = now or datetime.now(UTC)
    layout = detect_layout(path)
    if bar_length is not None:
        bar_length = _canonical_bar_length(bar_length)
    file_symbol = _file_symbol(layout, symbol)
    rows, rejections, rows_read = _read_rows(layout, file_symbol, symbol, chunk_rows, on_rows)
    named_seconds = _named_bar_seconds(layout, bar_length)
    time_column, times, notes = choose_time_column(rows, layout, named_seconds)
    rows = pd.DataFrame(
        {"time": times, **{name: rows[name] for name in VALUE_FIELDS}, "line": rows["line"]},
        copy=False,
    )
    rows, missing = _drop_rows_without_time(rows, time_column)
    warnings, length = _decide_bar_length(layout, rows["time"], bar_length)
    rows, time_rejections = _drop_bad_times(rows, timeframe_seconds(length), now)
    rows, duplicates = keep_one_bar_per_time(rows)
    if strict and duplicates.conflicting:
        raise CsvFormatError(
            f"{path}: {duplicates.conflicting} times are given more than once with different "
            f"values (first at line {duplicates.notes[0].line}); refused because of --strict"
        )
    rejections = sorted(rejections + missing + time_rejections, key=lambda r: r.line)
    return BarFile(
        layout=layout,
        symbol=file_symbol,
        bar_length=length,
        bars=rows,
        rows_read=rows_read,
        rejections=rejections[:EXAMPLES_KEPT],
        rejected=len(rejections),
        duplicates=duplicates,
        time_column=time_column,
        notes=notes + warnings,
    )


def _canonical_bar_length(text: str) -> str:
    return timeframe_from_seconds(timeframe_seconds(text))


def _file_symbol(layout: CsvLayout, override: str | None) -> str:
    symbol = normalise_symbol(override) if override else layout.symbol_from_name
    if not symbol:
        raise CsvFormatError(
            f"{layout.path}: cannot tell the symbol (no Symbol column and none in the file "
            "name); pass --symbol"
        )
    return symbol


def _read_rows(
    layout: CsvLayout,
    file_symbol: str,
    override: str | None,
    chunk_rows: int,
    on_rows: Callable[[int], None] | None,
) -> tuple[pd.DataFrame, list[Rejection], int]:
    """Every usable row of the file, with rows naming another pair rejected (one file is one
    series; `--symbol` says the file's rows are all the pair named).

    Chunks are kept as plain column arrays and joined one column at a time, so the whole
    file is held about once, not twice, while it is joined.
    """
    columns: dict[str, list[np.ndarray]] = {}
    rejections, rows_read = [], 0
    for chunk in iter_bar_chunks(layout, chunk_rows=chunk_rows):
        bars = chunk.bars
        if not override and len(chunk.symbols):
            bars, other = _without_other_symbols(bars, chunk.symbols, file_symbol)
            rejections.extend(other)
        for name in bars.columns:
            dtype = "datetime64[us]" if name in ("unix", "date") else None  # UTC, naive
            # A copy, not a view of the chunk's block: the block is then freed with the chunk.
            columns.setdefault(name, []).append(bars[name].to_numpy(dtype=dtype, copy=True))
        rejections.extend(chunk.rejected)
        rows_read += chunk.rows_read
        if on_rows:
            on_rows(chunk.rows_read)
    joined = {}
    for name in list(columns):
        joined[name] = np.concatenate(columns.pop(name))
    rows = pd.DataFrame(joined, copy=False)
    for name in ("unix", "date"):
        if name in rows:
            rows[name] = rows[name].dt.tz_localize("UTC")
    return rows, rejections, rows_read


def _without_other_symbols(
    bars: pd.DataFrame, symbols: pd.Series, file_symbol: str
) -> tuple[pd.DataFrame, list[Rejection]]:
    found = symbols.map({raw: normalise_symbol(raw) for raw in symbols.dropna().unique()})
    other = (found != file_symbol).to_numpy()
    if not other.any():
        return bars, []
    rejections = [
        Rejection(line, f"symbol {name!r} is not the file's symbol {file_symbol!r}")
        for line, name in zip(bars["line"][other], found[other].fillna("").tolist(), strict=True)
    ]
    return bars[~other], rejections


def _named_bar_seconds(layout: CsvLayout, override: str | None) -> int | None:
    """The bar length the user or the file name states, before looking at the times."""
    named = override or layout.timeframe_from_name
    return timeframe_seconds(named) if named else None


# -- which time column ------------------------------------------------------------------


def choose_time_column(
    rows: pd.DataFrame, layout: CsvLayout, bar_seconds: int | None
) -> tuple[str, pd.Series, list[str]]:
    """(column, times, notes): the time column to believe, for the whole file.

    Where the columns agree the unix column is used, with the Date column filling its blanks.
    Where they disagree, a column is suspect if its values fall off the bar grid, or if it
    gives one time to rows the other column keeps apart (six-digit rounding does both). The
    unix column wins unless it is suspect and the Date column is not; a file whose columns
    are both suspect is refused. The decision is written into the import summary.
    """
    columns = [c for c in ("unix", "date") if c in rows]
    if len(columns) == 1 or rows.empty:
        return columns[0], rows[columns[0]], []
    unix, date = rows["unix"], rows["date"]
    disagree = (unix.notna() & date.notna() & (unix != date)).to_numpy()
    if not disagree.any():
        return "unix", unix.fillna(date), []
    problems = {
        "unix": _column_problems(unix, date, bar_seconds),
        "date": _column_problems(date, unix, bar_seconds),
    }
    first = int(np.argmax(disagree))
    example = (
        f"{disagree.sum()} rows (first at line {rows['line'].iloc[first]}: unix says "
        f"{unix.iloc[first]:%Y-%m-%d %H:%M:%S}, Date says {date.iloc[first]:%Y-%m-%d %H:%M:%S})"
    )
    if problems["unix"] and problems["date"]:
        raise CsvFormatError(
            f"{layout.path}: the unix column and the Date column disagree on {example}, and "
            f"neither can be trusted: unix has {problems['unix']}; Date has {problems['date']}"
        )
    chosen = "date" if problems["unix"] else "unix"
    other = "unix" if chosen == "date" else "date"
    why = (
        f"{_COLUMN_NAMES[other]} has {problems[other]}"
        if problems[other]
        else "both look sound, and the unix column is the exchange's own"
    )
    note = f"times from {_COLUMN_NAMES[chosen]}: the columns disagree on {example}; {why}"
    return chosen, rows[chosen], [note]


def _column_problems(column: pd.Series, other: pd.Series, bar_seconds: int | None) -> str:
    """Why a time column looks corrupt ('' if it does not): off-grid values or merged rows."""
    present = column.dropna()
    seconds = bar_seconds or _inferred_seconds(present)
    problems = []
    if seconds:
        micros = present.to_numpy(dtype="datetime64[us]").astype("int64")
        off_grid = int((micros % (seconds * 1_000_000) != 0).sum())
        if off_grid:
            problems.append(f"{off_grid} values off the {timeframe_from_seconds(seconds)} grid")
    both = column.notna() & other.notna()
    merged = both & column.duplicated(keep=False) & ~other.duplicated(keep=False)
    if merged.any():
        problems.append(f"{int(merged.sum())} rows sharing a time the other column tells apart")
    return " and ".join(problems)


def _inferred_seconds(times: pd.Series) -> int | None:
    inferred = infer_timeframe(times)
    return timeframe_seconds(inferred) if inferred else None


def _drop_rows_without_time(
    rows: pd.DataFrame, column: str
) -> tuple[pd.DataFrame, list[Rejection]]:
    """Rows whose chosen time column is blank: the other column was found untrustworthy."""
    missing = rows["time"].isna().to_numpy()
    if not missing.any():
        return rows, []
    other = "Date" if column == "unix" else "unix"
    reason = (
        f"{_COLUMN_NAMES[column]} is blank, and {other} is not used in this file "
        "(see the note on time columns)"
    )
    return rows[~missing], [Rejection(line, reason) for line in rows["line"][missing]]


# -- bar length, grid and range ---------------------------------------------------------


def _decide_bar_length(
    layout: CsvLayout, times: pd.Series, override: str | None
) -> tuple[list[str], str]:
    """Flag first; else the bars' own spacing, which must agree with the file name."""
    inferred = infer_timeframe(times)
    named = layout.timeframe_from_name
    if override:
        warning = f"--bar-length {override} given, but the bars are {inferred} apart"
        return ([warning] if inferred and inferred != override else []), override
    if inferred and named and inferred != named:
        raise CsvFormatError(
            f"{layout.path}: the file name says {named} bars but they are {inferred} apart; "
            "pass --bar-length to choose"
        )
    length = inferred or named
    if length:
        return [], length
    raise CsvFormatError(
        f"{layout.path}: cannot tell the bar length from one bar and no hint in the file "
        "name; pass --bar-length"
    )


def _drop_bad_times(
    rows: pd.DataFrame, bar_seconds: int, now: datetime
) -> tuple[pd.DataFrame, list[Rejection]]:
    reasons = time_reasons(rows["time"], bar_seconds, now=now)
    bad = (reasons != "").to_numpy()
    if not bad.any():
        return rows, []
    rejections = [
        Rejection(line, reason)
        for line, reason in zip(rows["line"][bad], reasons[bad], strict=True)
    ]
    return rows[~bad], rejections


# -- one bar per time -------------------------------------------------------------------


def keep_one_bar_per_time(rows: pd.DataFrame) -> tuple[pd.DataFrame, Duplicates]:
    """Oldest first, one row per time: of rows giving the same time, the one with the largest
    volume (a bar's volume only grows while it forms, so the largest is the most complete).

    Identical rows are one bar. Rows that disagree and tie on the largest volume cannot be
    told apart: none of them is stored, and each is reported.
    """
    report = Duplicates()
    if rows["time"].is_unique:  # the usual file: one key to sort by
        return rows.sort_values("time", ignore_index=True), report
    rows = rows.sort_values(
        ["time", "volume", "line"], ascending=[True, False, True], ignore_index=True
    )
    first = ~rows["time"].duplicated(keep="first").to_numpy()
    values = list(VALUE_FIELDS)
    kept = rows[first].set_index("time")
    repeats = rows[~first]
    best = kept.loc[repeats["time"]]
    same = (repeats[values].to_numpy() == best[values].to_numpy()).all(axis=1)
    tie = ~same & (repeats["volume"].to_numpy() == best["volume"].to_numpy())
    tied_times = repeats["time"][tie].unique()
    report.times = repeats["time"].nunique()
    report.conflicting = repeats["time"][~same].nunique()
    tied = repeats["time"].isin(tied_times).to_numpy()
    for (line, time), is_same, kept_line in zip(
        repeats[~tied][["line", "time"]].itertuples(index=False),
        same[~tied],
        best["line"][~tied],
        strict=True,
    ):
        why = (
            f"the same bar as line {kept_line}"
            if is_same
            else f"other values than line {kept_line}, which is kept (larger volume)"
        )
        report.notes.append(Rejection(int(line), f"{time:%Y-%m-%d %H:%M:%S} given again: {why}"))
    keep = first & ~rows["time"].isin(tied_times).to_numpy()
    report.notes.extend(
        Rejection(
            int(line),
            f"{time:%Y-%m-%d %H:%M:%S} given more than once with other values and the same "
            "volume: none stored",
        )
        for line, time in rows[~keep & rows["time"].isin(tied_times).to_numpy()][
            ["line", "time"]
        ].itertuples(index=False)
    )
    report.notes.sort(key=lambda note: note.line)
    report.rows_dropped = len(report.notes)
    del report.notes[EXAMPLES_KEPT:]
    return rows[keep].reset_index(drop=True), report
