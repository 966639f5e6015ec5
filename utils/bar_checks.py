"""The rules a bar must pass before it is stored, shared by every source of bars.

CSV files and CoinAPI answers both go through `untrusted_reasons`, so "a bar we trust" means
the same thing whichever way it arrived. Vectorised: a page or chunk is checked at once.
"""

from collections.abc import Mapping

import pandas as pd

BAR_COLUMNS = ("time", "open", "high", "low", "close", "volume")
PRICE_FIELDS = ("open", "high", "low", "close")
VALUE_FIELDS = (*PRICE_FIELDS, "volume")


def untrusted_reasons(bars: pd.DataFrame, labels: Mapping[str, str] | None = None) -> pd.Series:
    """Why each bar cannot be trusted ('' for a good bar); the first failed rule wins.

    `labels` names the fields as the source does (CoinAPI's price_high), so a message points
    at what the user can find in the source.
    """
    label = {field: field for field in VALUE_FIELDS} | dict(labels or {})
    prices = bars[list(PRICE_FIELDS)]
    body_high = bars[["open", "close"]].max(axis=1)
    body_low = bars[["open", "close"]].min(axis=1)
    checks = [
        *((bars[f].isna(), f"{label[f]} is missing or not a number") for f in VALUE_FIELDS),
        ((prices <= 0).any(axis=1), "a price is 0 or negative"),
        (bars["high"] < bars["low"], f"{label['high']} is below {label['low']}"),
        (
            (body_high > bars["high"]) | (body_low < bars["low"]),
            "open or close lies outside low..high",
        ),
        (bars["volume"] < 0, f"{label['volume']} is negative"),
    ]
    reasons = pd.Series("", index=bars.index, dtype=object)
    for mask, reason in reversed(checks):
        reasons = reasons.mask(mask.to_numpy(), reason)
    return reasons
