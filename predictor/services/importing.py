"""Import CryptoDataDownload CSV files into the bar store.

Each file is read and judged whole first (utils.bar_files: time column, bar length, grid,
duplicates, rejected rows), so nothing is stored from a file that is then refused. Its bars
are then stored oldest first in chunks, each chunk committed on its own: an interrupted
import leaves only whole chunks behind, and because storing a bar that is already stored is
a no-op, running the import again simply completes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from predictor.services.bars import (
    SeriesKey,
    SeriesKeyError,
    check_same_exchange,
    insert_bars,
    refresh_planner_statistics,
    series_exchange,
    series_queryset,
)
from predictor.services.rollups import ensure_rollups
from utils.bar_files import DEFAULT_CHUNK_ROWS, BarFile, Duplicates, read_bar_file
from utils.csv_formats import CsvFormatError, Rejection

# Progress callback: (file, phase "read" or "store", rows done in this step).
ProgressCallback = Callable[[Path, str, int], None]


@dataclass
class FileImportResult:
    """What importing one file did; `error` is set when the file could not be imported."""

    path: Path
    symbol: str = ""
    bar_length: str = ""
    rows_read: int = 0
    inserted: int = 0
    replaced: int = 0  # provisional bars the file's bars of the same time changed
    already_present: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    duplicates: Duplicates = field(default_factory=Duplicates)
    notes: list[str] = field(default_factory=list)  # decisions the user should see
    error: str | None = None


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
    exchange: str | None = None,
    strict: bool = False,
    allow_exchange_mix: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_progress: ProgressCallback | None = None,
) -> list[FileImportResult]:
    """Import each file; one that cannot be imported is reported and the others still import."""
    results = [
        import_csv_file(
            path,
            symbol=symbol,
            bar_length=bar_length,
            exchange=exchange,
            strict=strict,
            allow_exchange_mix=allow_exchange_mix,
            chunk_rows=chunk_rows,
            on_progress=on_progress,
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
    exchange: str | None = None,
    strict: bool = False,
    allow_exchange_mix: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> FileImportResult:
    """Import one file. `symbol`, `bar_length` and `exchange` override what the file says."""
    result = FileImportResult(path=path)
    try:
        if chunk_rows < 1:
            raise ValueError("--chunk-rows must be at least 1")
        bar_file = read_bar_file(
            path,
            symbol=symbol,
            bar_length=bar_length,
            strict=strict,
            now=now,
            chunk_rows=chunk_rows,
            on_rows=(lambda rows: on_progress(path, "read", rows)) if on_progress else None,
        )
        _record_reading(result, bar_file)
        key = SeriesKey(
            symbol=bar_file.symbol,
            bar_length=bar_file.bar_length,
            exchange=bar_file.layout.exchange if exchange is None else exchange,
            source=f"csv:{path.name}"[:128],
        )
        key.check()
        _check_exchange(key, allow_exchange_mix)
        _store(bar_file, key, result, chunk_rows, on_progress)
    except (CsvFormatError, ValueError) as error:
        result.error = str(error) if str(path) in str(error) else f"{path}: {error}"
    return result


def _record_reading(result: FileImportResult, bar_file: BarFile) -> None:
    result.symbol = bar_file.symbol
    result.bar_length = bar_file.bar_length
    result.rows_read = bar_file.rows_read
    result.rejected = bar_file.rejected
    result.rejections = bar_file.rejections
    result.duplicates = bar_file.duplicates
    result.notes = bar_file.notes


def _check_exchange(key: SeriesKey, allow_exchange_mix: bool) -> None:
    stored = series_exchange(key.symbol, key.bar_length)
    if stored is None or allow_exchange_mix:
        return
    try:
        check_same_exchange(
            key.symbol,
            key.bar_length,
            stored=stored,
            incoming=key.exchange,
            how_to_separate="store this file under another name with --symbol, "
            "or name its exchange with --exchange if the file name misleads",
        )
    except SeriesKeyError as error:
        raise CsvFormatError(f"{error}; nothing was stored from this file") from error


def _store(
    bar_file: BarFile,
    key: SeriesKey,
    result: FileImportResult,
    chunk_rows: int,
    on_progress: ProgressCallback | None,
) -> None:
    """Oldest first, one transaction per chunk; the file's newest bar stored provisional."""
    bars = _without_stale_newest_bar(bar_file, key, result)
    newest = bar_file.newest_time
    for start in range(0, len(bars), chunk_rows):
        chunk = bars.iloc[start : start + chunk_rows]
        stored = insert_bars(key, chunk, provisional_time=newest)
        result.inserted += stored.inserted
        result.replaced += stored.replaced
        result.already_present += len(chunk) - stored.inserted - stored.replaced
        if on_progress:
            on_progress(bar_file.path, "store", len(chunk))
    ensure_rollups(key.symbol, key.bar_length)


def _without_stale_newest_bar(bar_file: BarFile, key: SeriesKey, result: FileImportResult):
    """The file's newest bar was most likely still forming when the file was made. As the
    series' newest it is stored provisional, to be replaced; behind newer stored bars it
    could never be replaced, so it is stored only if that time is already held."""
    newest = bar_file.newest_time
    series = series_queryset(key.symbol, key.bar_length)
    if newest is None or not series.filter(time__gt=newest).exists():
        return bar_file.bars
    if not series.filter(time=newest).exists():
        result.rejected += 1
        result.rejections.append(
            Rejection(
                int(bar_file.bars["line"].iloc[-1]),
                f"the file's newest bar ({newest:%Y-%m-%d %H:%M} UTC) was probably still "
                "forming when the file was made, and newer bars are stored: not stored",
            )
        )
    else:
        result.already_present += 1
    return bar_file.bars.iloc[:-1]
