"""Import CryptoDataDownload CSV files into the bar store.

Each file streams through in chunks, and each chunk is committed on its own, so memory stays
bounded and an interrupted import leaves only whole chunks behind. Because inserting a bar
that is already stored is a no-op, running the import again simply completes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.services.bars import SeriesKey, insert_bars, refresh_planner_statistics
from utils.csv_formats import (
    BarChunk,
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
MAX_REJECTIONS_KEPT = 1000


@dataclass
class FileImportResult:
    """What importing one file did; `error` is set when the file could not be read at all."""

    path: Path
    symbol: str = ""
    bar_length: str = ""
    rows_read: int = 0
    inserted: int = 0
    already_present: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def add_rejections(self, rejections: list[Rejection]) -> None:
        self.rejected += len(rejections)
        room = MAX_REJECTIONS_KEPT - len(self.rejections)
        self.rejections.extend(rejections[: max(room, 0)])


def find_csv_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and every *.csv under the folders named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() == ".csv"))
        else:
            found.append(path)
    return found


def import_csv_files(
    paths: Iterable[Path],
    *,
    symbol: str | None = None,
    bar_length: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_rows: Callable[[Path, int], None] | None = None,
) -> list[FileImportResult]:
    """Import each file; one that cannot be read is reported and the others still import."""
    results = [
        import_csv_file(
            path, symbol=symbol, bar_length=bar_length, chunk_rows=chunk_rows, on_rows=on_rows
        )
        for path in paths
    ]
    if any(result.inserted for result in results):
        refresh_planner_statistics()
    return results


def import_csv_file(
    path: Path,
    *,
    symbol: str | None = None,
    bar_length: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_rows: Callable[[Path, int], None] | None = None,
) -> FileImportResult:
    """Import one file. `symbol` and `bar_length` override what the file says."""
    result = FileImportResult(path=path)
    try:
        if bar_length is not None:
            bar_length = timeframe_from_seconds(timeframe_seconds(bar_length))
        layout = detect_layout(path)
        result.symbol = _file_symbol(layout, symbol)
        chunks = iter_bar_chunks(layout, chunk_rows=chunk_rows)
        for chunk in _chunks_with_symbol_checked(chunks, result.symbol, overridden=bool(symbol)):
            if not result.bar_length:
                result.bar_length = _file_bar_length(layout, chunk, bar_length, result)
            _store_chunk(chunk, layout, result)
            if on_rows:
                on_rows(path, chunk.rows_read)
    except (CsvFormatError, ValueError) as error:
        result.error = str(error) if str(path) in str(error) else f"{path}: {error}"
    return result


def _store_chunk(chunk: BarChunk, layout: CsvLayout, result: FileImportResult) -> None:
    key = SeriesKey(
        symbol=result.symbol,
        bar_length=result.bar_length,
        exchange=layout.exchange,
        source=f"csv:{layout.path.name}"[:128],
    )
    inserted = insert_bars(key, chunk.bars)
    result.rows_read += chunk.rows_read
    result.inserted += inserted
    result.already_present += len(chunk.bars) - inserted
    result.add_rejections(chunk.rejected)


def _file_symbol(layout: CsvLayout, override: str | None) -> str:
    symbol = normalise_symbol(override) if override else layout.symbol_from_name
    if not symbol:
        raise CsvFormatError(
            f"{layout.path}: cannot tell the symbol (no Symbol column and none in the file "
            "name); pass --symbol"
        )
    return symbol


def _chunks_with_symbol_checked(
    chunks: Iterator[BarChunk], symbol: str, *, overridden: bool
) -> Iterator[BarChunk]:
    """Reject rows whose Symbol column names another pair: one file is one series."""
    for chunk in chunks:
        if not overridden and len(chunk.symbols):
            normalised = chunk.symbols.map(
                {raw: normalise_symbol(raw) for raw in chunk.symbols.dropna().unique()}
            )
            other = (normalised != symbol).to_numpy()
            if other.any():
                chunk = _reject_other_symbols(chunk, other, normalised, symbol)
        yield chunk


def _reject_other_symbols(
    chunk: BarChunk, other: np.ndarray, normalised: pd.Series, symbol: str
) -> BarChunk:
    lines = chunk.lines_of(chunk.bars.index[other])
    extra = [
        Rejection(line, f"symbol {found!r} is not the file's symbol {symbol!r}")
        for line, found in zip(lines, normalised[other].fillna("").tolist(), strict=True)
    ]
    return BarChunk(
        bars=chunk.bars[~other],
        symbols=chunk.symbols[~other],
        rejected=sorted(chunk.rejected + extra, key=lambda r: r.line),
        rows_read=chunk.rows_read,
        first_data_line=chunk.first_data_line,
        skipped_lines=chunk.skipped_lines,
    )


def _file_bar_length(
    layout: CsvLayout, chunk: BarChunk, override: str | None, result: FileImportResult
) -> str:
    """Flag first; else the bars' own spacing, which must agree with the file name."""
    inferred = infer_timeframe(chunk.bars["time"])
    named = layout.timeframe_from_name
    if override:
        if inferred and inferred != override:
            result.warnings.append(
                f"--bar-length {override} given, but the bars are {inferred} apart"
            )
        return override
    if inferred and named and inferred != named:
        raise CsvFormatError(
            f"{layout.path}: the file name says {named} bars but they are {inferred} apart; "
            "pass --bar-length to choose"
        )
    if inferred or named:
        return inferred or named
    raise CsvFormatError(
        f"{layout.path}: cannot tell the bar length from one bar and no hint in the file "
        "name; pass --bar-length"
    )
