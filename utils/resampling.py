"""Turn fine bars into coarser ones by the OHLCV rules, vectorised.

open is the first bar's open, high the max, low the min, close the last bar's close and
volume the sum. A bucket with no bars is left out rather than filled: a missing bar is
missing, and inventing a price for it would silently flatter any model trained on it.
"""

import pandas as pd

from utils.timeframes import interval_offset

_AGGREGATIONS = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def resample_bars(bars: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Aggregate bars indexed by opening time into `interval` buckets labelled by their start.

    Adds bar_count, the number of source bars in each bucket, so callers can tell a full
    hour of 60 minute bars from one built out of a handful.
    """
    offset = interval_offset(interval)
    # pandas ignores origin="epoch" for day offsets ('D', '2D') on a timezone-aware index and
    # starts the buckets at the first bar's day instead, so the same interval would give
    # different buckets for different ranges. Bucketing naive UTC times keeps them fixed.
    utc = bars.index.tz is not None
    source = bars.tz_convert("UTC").tz_localize(None) if utc else bars
    resampler = source.resample(offset, label="left", closed="left", origin="epoch")
    result = resampler.agg(_AGGREGATIONS)
    result["bar_count"] = resampler["close"].count()
    result = result[result["bar_count"] > 0]
    if utc:
        result = result.tz_localize("UTC")
    result.index.name = bars.index.name
    return result.astype({"bar_count": "int64"})
