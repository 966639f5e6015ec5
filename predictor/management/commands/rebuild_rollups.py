"""./manage.py rebuild_rollups: build the hourly and daily rollups of every stored series."""

from predictor.management.base import OracleCommand
from predictor.services.rollups import rebuild_all_rollups


class Command(OracleCommand):
    help = (
        "Build the rollups (hourly and daily buckets that get_bars reads) of every stored "
        "series from its bars. Imports and updates keep them current on their own; run this "
        "after writing bars past the app (SQL, bulk_create) or to check a database by hand."
    )

    def handle(self, *args, **options):
        rebuilt = rebuild_all_rollups()
        for series in rebuilt:
            self.stdout.write(f"{series.symbol} {series.bar_length}: {series.buckets} buckets")
        total = sum(series.buckets for series in rebuilt)
        self.stdout.write(f"rebuilt the rollups of {len(rebuilt)} series: {total} buckets")
