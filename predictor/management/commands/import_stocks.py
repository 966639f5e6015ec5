"""./manage.py import_stocks [PATH ...]: load CryptoDataDownload CSV files into the bar store."""

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from tqdm import tqdm

from predictor.management.base import OracleCommand
from predictor.services.bars import column_width
from predictor.services.importing import (
    DEFAULT_CHUNK_ROWS,
    FileImportResult,
    find_csv_files,
    import_csv_files,
)
from utils.csv_formats import CsvFormatError, count_data_lines, detect_layout

REJECTIONS_SHOWN = 20


def _data_rows(path: Path) -> int:
    """Rows below the header, to size the progress bar; an unreadable file counts none."""
    try:
        return max(count_data_lines(path) - detect_layout(path).header_line, 0)
    except (CsvFormatError, OSError):
        return 0


class Command(OracleCommand):
    help = (
        "Import OHLCV bars from CryptoDataDownload CSV files (every *.csv under data/ by "
        "default). Safe to run again: bars already stored are left as they are."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "paths", nargs="*", type=Path, help="CSV files or folders (default: data/)"
        )
        parser.add_argument("-s", "--symbol", help="store the bars under this symbol, e.g. BTCUSD")
        parser.add_argument(
            "-b", "--bar-length", help="the bars' length (1m, 1h, 1d...) if the file misleads"
        )
        parser.add_argument(
            "--exchange",
            help="the exchange the bars come from, if the file name does not say (Gemini...)",
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="refuse a file that gives one time twice with different values",
        )
        parser.add_argument(
            "--allow-exchange-mix",
            action="store_true",
            help="add bars from another exchange to a stored series of the same symbol",
        )
        parser.add_argument(
            "--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per transaction"
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args, **options):
        paths = options["paths"] or [Path(settings.DATA_DIR)]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"no such file or folder: {', '.join(missing)}")
        if options["chunk_rows"] < 1:
            raise CommandError("--chunk-rows must be at least 1")
        for flag in ("symbol", "exchange"):
            limit = column_width(flag)
            if options[flag] is not None and not 0 < len(options[flag]) <= limit:
                raise CommandError(f"--{flag} must be 1 to {limit} characters")
        files = find_csv_files(paths)
        if not files:
            raise CommandError(f"no CSV files under {', '.join(map(str, paths))}")

        # Each row is read, then stored: the bar counts both steps, so it moves at the pace
        # of the whole import rather than stopping at 100 % while the bars are written.
        total = 2 * sum(_data_rows(f) for f in files)
        hide = options["no_progress"] or options["verbosity"] == 0
        with tqdm(total=total, unit=" steps", disable=hide, file=sys.stderr) as bar:
            results = import_csv_files(
                files,
                symbol=options["symbol"],
                bar_length=options["bar_length"],
                exchange=options["exchange"],
                strict=options["strict"],
                allow_exchange_mix=options["allow_exchange_mix"],
                chunk_rows=options["chunk_rows"],
                on_progress=lambda _path, _phase, rows: bar.update(rows),
            )
        for result in results:
            self._report(result)
        failed = [r for r in results if r.error]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} files could not be imported: "
                + "; ".join(str(r.error) for r in failed)
            )

    def _report(self, result: FileImportResult) -> None:
        if result.error:
            self.stderr.write(self.style.ERROR(f"FAILED {result.error}"))
            if not result.rows_read:
                return
        duplicates = result.duplicates
        self.stdout.write(
            f"{result.path}: {result.symbol} {result.bar_length} - rows read {result.rows_read}, "
            f"bars inserted {result.inserted}, already present {result.already_present}, "
            f"rejected {result.rejected}"
            + (f", provisional bars replaced {result.replaced}" if result.replaced else "")
            + (f", duplicates: {duplicates.summary()}" if duplicates.times else "")
        )
        for note in result.notes:
            self.stderr.write(self.style.WARNING(f"{result.path}: {note}"))
        self._lines(result, "rejected", result.rejections, result.rejected)
        self._lines(result, "duplicate", duplicates.notes, duplicates.rows_dropped)

    def _lines(self, result: FileImportResult, what: str, lines: list, total: int) -> None:
        for item in sorted(lines, key=lambda r: r.line)[:REJECTIONS_SHOWN]:
            self.stderr.write(
                self.style.WARNING(f"{result.path}:{item.line}: {what}: {item.reason}")
            )
        if total > REJECTIONS_SHOWN:
            self.stderr.write(
                self.style.WARNING(
                    f"{result.path}: ... and {total - REJECTIONS_SHOWN} more {what} rows"
                )
            )
