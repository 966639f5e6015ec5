"""./manage.py import_stocks [PATH ...]: load CryptoDataDownload CSV files into the bar store."""

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

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


class Command(BaseCommand):
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
        files = find_csv_files(paths)
        if not files:
            raise CommandError(f"no CSV files under {', '.join(map(str, paths))}")

        total = sum(_data_rows(f) for f in files)
        hide = options["no_progress"] or options["verbosity"] == 0
        with tqdm(total=total, unit=" rows", disable=hide, file=sys.stderr) as bar:
            results = import_csv_files(
                files,
                symbol=options["symbol"],
                bar_length=options["bar_length"],
                chunk_rows=options["chunk_rows"],
                on_rows=lambda _path, rows: bar.update(rows),
            )
        for result in results:
            self._report(result)
        failed = [r for r in results if r.error]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} files could not be imported: "
                + "; ".join(r.error for r in failed)
            )

    def _report(self, result: FileImportResult) -> None:
        if result.error:
            self.stderr.write(self.style.ERROR(f"FAILED {result.error}"))
            if not result.rows_read:
                return
        self.stdout.write(
            f"{result.path}: {result.symbol} {result.bar_length} - rows read {result.rows_read}, "
            f"bars inserted {result.inserted}, already present {result.already_present}, "
            f"rejected {result.rejected}"
        )
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"{result.path}: {warning}"))
        for rejection in result.rejections[:REJECTIONS_SHOWN]:
            self.stderr.write(
                self.style.WARNING(f"{result.path}:{rejection.line}: rejected: {rejection.reason}")
            )
        if result.rejected > REJECTIONS_SHOWN:
            self.stderr.write(
                self.style.WARNING(
                    f"{result.path}: ... and {result.rejected - REJECTIONS_SHOWN} more "
                    "rejected rows"
                )
            )
