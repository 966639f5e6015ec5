"""Turn fine bars into coarser ones by the OHLCV rules, vectorised.

open is the first bar's open, high the max, low the min, close the last bar's close and
volume the sum. A bucket with no bars is left out rather than filled: a missing bar is
missing, and inventing a price for it would silently flatter any model trained on it.
"""

import pandas as pd

from utils.timeframes import interval_offset

BAR_COLUMNS = ("time", "open", "high", "low", "close", "volume")
_AGGREGATIONS = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def resample_bars(bars: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Aggregate bars indexed by opening time into `interval` buckets labelled by their start.

    Adds bar_count, the number of source bars in each bucket, so callers can tell a full
    hour of 60 minute bars from one built out of a handful.
    """
    offset = interval_offset(interval)
    resampler = bars.resample(offset, label="left", closed="left", origin="epoch")
    result = resampler.agg(_AGGREGATIONS)
    result["bar_count"] = resampler["close"].count()
    result = result[result["bar_count"] > 0]
    result.index.name = bars.index.name
    return result.astype({"bar_count": "int64"})
