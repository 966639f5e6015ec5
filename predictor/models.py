"""Database tables. Fields, constraints and indexes only: behaviour lives in services/selectors."""

from django.db import models


class Stock(models.Model):
    """One OHLCV bar of one symbol, keyed by (symbol, bar length, opening time in UTC).

    The name is the original tool's; a row is a bar, not a company. Prices are floats
    (IEEE doubles): exchanges quote at most ~10 significant digits and every consumer is
    numeric code, so Decimal would only cost conversions.
    """

    symbol = models.CharField(
        max_length=32, help_text="Pair as the exchange names it, e.g. BTCUSD."
    )
    bar_length = models.CharField(
        max_length=8, help_text="Freqtrade-style timeframe of the bar: 1m, 5m, 1h, 1d, 1w."
    )
    time = models.DateTimeField(help_text="Opening time of the bar, UTC.")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField(help_text="Traded volume in the base currency (BTC for BTCUSD).")
    exchange = models.CharField(max_length=32, blank=True, default="")
    source = models.CharField(
        max_length=128, blank=True, default="", help_text="Where the bar came from, e.g. a file."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["symbol", "bar_length", "time"], name="stock_unique_bar"
            ),
        ]
        # The unique constraint's index (symbol, bar_length, time) serves every range scan
        # of one series; this one serves "latest bar of each symbol" across bar lengths.
        indexes = [models.Index(fields=["symbol", "time"], name="stock_symbol_time")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.bar_length} {self.time:%Y-%m-%d %H:%M} close={self.close}"
