"""Bar lengths ('1m', '1h', '1d') and resampling intervals ('M', 'H', 'D', any pandas offset).

We name bar lengths the way Freqtrade and the exchanges do and convert to pandas offsets
only at the edge, so that what users type and what we store read the same.
"""

import re

import pandas as pd

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIMEFRAME = re.compile(r"^(\d+)([smhdw])$")

# The original tool's interval letters.
_INTERVAL_ALIASES = {"M": "1min", "H": "1h", "D": "1D"}


def timeframe_seconds(timeframe: str) -> int:
    """Length in seconds of a timeframe such as '1m', '15m', '1h', '1d'."""
    match = _TIMEFRAME.match(timeframe)
    if not match:
        raise ValueError(
            f"bar length {timeframe!r} is not a timeframe like 1m, 5m, 1h, 4h, 1d or 1w"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def timeframe_from_seconds(seconds: int) -> str:
    """The canonical timeframe name for a bar length in seconds (3600 -> '1h')."""
    if seconds <= 0:
        raise ValueError(f"a bar length must be positive, not {seconds} s")
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds % size == 0 and (unit != "w" or seconds == size):
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds has a name")


def interval_offset(interval: str) -> pd.DateOffset:
    """A pandas offset for 'M', 'H', 'D', a timeframe ('4h') or any pandas alias ('15min')."""
    text = interval.strip()
    if text in _INTERVAL_ALIASES:
        return pd.tseries.frequencies.to_offset(_INTERVAL_ALIASES[text])
    if _TIMEFRAME.match(text):
        return pd.tseries.frequencies.to_offset(pd.Timedelta(seconds=timeframe_seconds(text)))
    try:
        return pd.tseries.frequencies.to_offset(text)
    except ValueError as error:
        raise ValueError(
            f"interval {interval!r} is not M, H, D, a timeframe like 4h or a pandas offset"
        ) from error


def interval_seconds(interval: str) -> int:
    """Length in seconds of a fixed-length interval; calendar offsets (month) are rejected."""
    offset = interval_offset(interval)
    try:
        return int(pd.Timedelta(offset).total_seconds())
    except ValueError as error:
        raise ValueError(f"interval {interval!r} has no fixed length") from error
