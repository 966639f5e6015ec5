"""The rules a bar must pass before it is stored, shared by every source of bars.

CSV files and CoinAPI answers both go through `untrusted_reasons`, and the audit of stored
bars (`audit_bars`) applies the same limits, so "a bar we trust" means the same thing
whichever way it arrived. Vectorised: a page or chunk is checked at once.
"""

from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pandas as pd

from utils.timeframes import timeframe_from_seconds

BAR_COLUMNS = ("time", "open", "high", "low", "close", "volume")
PRICE_FIELDS = ("open", "high", "low", "close")
VALUE_FIELDS = (*PRICE_FIELDS, "volume")

# Limits past which a value is a corrupt file, not a market. A price above a trillion quote
# units per base unit (BTC in Vietnamese dong is about 2.5e9) or a bar volume above 1e18
# base units (a day of SHIB is about 1e13) has never traded; 1e308 and inf are typos and
# overflow, and a single one of them would poison every mean, chart and scaler downstream.
MAX_PRICE = 1e12
MAX_VOLUME = 1e18
# No exchange traded crypto before 2009 (Bitcoin's first block is 2009-01-03).
EARLIEST_BAR_TIME = pd.Timestamp("2009-01-01", tz="UTC")


def untrusted_reasons(bars: pd.DataFrame, labels: Mapping[str, str] | None = None) -> pd.Series:
    """Why each bar's values cannot be trusted ('' for a good bar); the first failed rule wins.

    `labels` names the fields as the source does (CoinAPI's price_high), so a message points
    at what the user can find in the source. Times are checked by `time_reasons`, which
    needs the bar length.
    """
    label = {field: field for field in VALUE_FIELDS} | dict(labels or {})
    prices = bars[list(PRICE_FIELDS)]
    body_high = bars[["open", "close"]].max(axis=1)
    body_low = bars[["open", "close"]].min(axis=1)
    checks = [
        *((bars[f].isna(), f"{label[f]} is missing or not a number") for f in VALUE_FIELDS),
        *((~np.isfinite(bars[f]), f"{label[f]} is infinite") for f in VALUE_FIELDS),
        ((prices <= 0).any(axis=1), "a price is 0 or negative"),
        ((prices > MAX_PRICE).any(axis=1), f"a price is above {MAX_PRICE:.0e}: not a real price"),
        (bars["high"] < bars["low"], f"{label['high']} is below {label['low']}"),
        (
            (body_high > bars["high"]) | (body_low < bars["low"]),
            "open or close lies outside low..high",
        ),
        (bars["volume"] < 0, f"{label['volume']} is negative"),
        (
            bars["volume"] > MAX_VOLUME,
            f"{label['volume']} is above {MAX_VOLUME:.0e}: not a real volume",
        ),
    ]
    return _first_reasons(bars.index, checks)


def time_reasons(times: pd.Series, bar_seconds: int, *, now: datetime) -> pd.Series:
    """Why each opening time cannot be a bar's ('' for a good one); `times` are UTC.

    A bar opens on its series' grid: a whole multiple of its length since 1970-01-01 UTC
    (weeks too, so weekly buckets start on Thursdays, as get_bars draws them). It opens no
    earlier than 2009 and no later than now: the bar still forming is the newest there can be.
    """
    micros = times.to_numpy(dtype="datetime64[us]").astype("int64")
    length = timeframe_from_seconds(bar_seconds)
    checks = [
        (
            micros % (bar_seconds * 1_000_000) != 0,
            f"is not on the grid of {length} bars (whole multiples of {length} since 1970-01-01)",
        ),
        ((times < EARLIEST_BAR_TIME).to_numpy(), "is before 2009"),
        ((times > pd.Timestamp(now)).to_numpy(), "is in the future"),
    ]
    reasons = _first_reasons(times.index, checks)
    bad = (reasons != "").to_numpy()
    if bad.any():  # formatting every good time would cost more than all the checks
        shown = times[bad].dt.strftime("%Y-%m-%d %H:%M:%S.%f").str.removesuffix(".000000")
        reasons[bad] = "time " + shown + " UTC " + reasons[bad]
    return reasons


def _first_reasons(index: pd.Index, checks: list[tuple]) -> pd.Series:
    reasons = pd.Series("", index=index, dtype=object)
    for mask, reason in reversed(checks):
        reasons = reasons.mask(np.asarray(mask), reason)
    return reasons
