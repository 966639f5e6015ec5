"""A small CoinAPI REST v1 client for OHLCV history: no Django, only `requests`.

Retries: transient failures (429, 5xx, timeouts, refused or dropped connections before the
answer's headers) are retried by urllib3's `Retry`, mounted on the session through an
HTTPAdapter. It is the retry code every `requests` user already runs, and it does exponential
backoff, jitter and Retry-After correctly; writing our own would only add bugs. It cannot see
what happens after the headers (requests reads the body later), so a body cut mid-read or a
body that is not the JSON list CoinAPI promises is retried here, around it, with a second
`Retry` of the same size so the backoff and the budget follow the same rules.

A Retry-After longer than `max_retry_after` is not waited for at all: CoinAPI sends one of
hours when the daily quota is spent, and waiting a capped while and retrying would only keep
a scheduled job busy for minutes before failing anyway. The request gives up at once with
`CoinApiRateLimited`, which names the time CoinAPI asked for, and the caller stops the run.

Items are checked one by one: a bad item is reported with its position and left out, never
stored, and never stops the good items of its page.

Counting: `requests_sent` counts every HTTP request made, retries and failed ones included
(a connection that could not be made counts as the tries urllib3 spent on it).
`credits_used` estimates what CoinAPI bills: one credit per 100 items returned, rounded up,
and at least one per answered data request, counted for every answer whose body is the JSON
list of items (items later dropped or found invalid were still returned, so they count).
Requests that failed (an error status, a connection or body that broke off, a body that is
not a list) are not counted: CoinAPI bills the data it returns. CoinAPI's own usage page
remains the authority; this figure is for seeing what a run costs.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3 import BaseHTTPResponse
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, ProtocolError, ResponseError
from urllib3.util.retry import Retry

from utils.bar_checks import BAR_COLUMNS, VALUE_FIELDS, untrusted_reasons
from utils.errors import CryptoOracleError

DEFAULT_URL = "https://rest.coinapi.io"
MAX_LIMIT = 100_000  # CoinAPI's largest page
ITEMS_PER_CREDIT = 100  # CoinAPI bills one credit per 100 items returned, rounded up
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Our field -> CoinAPI's item key, also used to name the field in messages.
_ITEM_KEYS = {
    "open": "price_open",
    "high": "price_high",
    "low": "price_low",
    "close": "price_close",
    "volume": "volume_traded",
}

# CoinAPI's periods, by length in seconds; see https://docs.coinapi.io (OHLCV, list periods).
_PERIOD_UNITS = (("DAY", 86400), ("HRS", 3600), ("MIN", 60), ("SEC", 1))
_PERIODS = {
    "SEC": {1, 2, 3, 4, 5, 6, 10, 15, 20, 30},
    "MIN": {1, 2, 3, 4, 5, 6, 10, 15, 20, 30},
    "HRS": {1, 2, 3, 4, 6, 8, 12},
    "DAY": {1, 2, 3, 5, 7, 10},
}

# The names our CSV import stores in Stock.exchange, as CoinAPI spells the exchange id.
EXCHANGE_IDS = {
    "Gemini": "GEMINI",
    "Binance": "BINANCE",
    "BinanceUS": "BINANCEUS",
    "Bitstamp": "BITSTAMP",
    "Coinbase": "COINBASE",
    "Kraken": "KRAKEN",
    "Bitfinex": "BITFINEX",
    "Poloniex": "POLONIEX",
    "KuCoin": "KUCOIN",
}
_QUOTES = ("USDT", "USDC", "BUSD", "USD", "EUR", "GBP", "JPY", "DAI", "BTC", "ETH")


class CoinApiError(CryptoOracleError):
    """Any failure talking to CoinAPI; the message is one line meant for a person."""


class CoinApiAuthError(CoinApiError):
    """401/403: the key is wrong, expired or lacks the right to this data."""


class CoinApiRetriesExhausted(CoinApiError):
    """The server kept failing (or rate limiting) through the whole retry budget."""


class CoinApiRateLimited(CoinApiRetriesExhausted):
    """429/503 with a Retry-After longer than we wait: every further request would be
    refused too (an exhausted quota), so the whole run should stop, not only this series."""


class CoinApiMalformedResponse(CoinApiError):
    """The answer was not the JSON list of items the protocol promises, even after retries."""


class CoinApiRequestError(CoinApiError):
    """Any other 4xx: the request itself is wrong (unknown symbol id, bad period...)."""


@dataclass(frozen=True)
class InvalidItem:
    """An item left out of a page: its 1-based position in the page and why."""

    position: int
    reason: str
    time: datetime | None = None


@dataclass
class OhlcvPage:
    """One answer, parsed. `bars` holds only valid items inside the range asked for."""

    time_start: datetime
    time_end: datetime
    items: int = 0
    bars: pd.DataFrame = field(default_factory=lambda: empty_bars())
    invalid: list[InvalidItem] = field(default_factory=list)
    dropped: int = 0  # items before time_start, at or after time_end, or repeated
    last_time: datetime | None = None  # latest period start in range, valid or not


def empty_bars() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype="float64") for name in BAR_COLUMNS})
    frame["time"] = pd.Series(dtype="datetime64[us, UTC]")
    return frame


def period_id(bar_seconds: int) -> str:
    """CoinAPI's period for a bar length: 60 -> '1MIN', 3600 -> '1HRS', 604800 -> '7DAY'."""
    for unit, size in _PERIOD_UNITS:
        if bar_seconds % size == 0 and bar_seconds // size in _PERIODS[unit]:
            return f"{bar_seconds // size}{unit}"
    raise ValueError(f"CoinAPI has no OHLCV period of {bar_seconds} seconds")


def exchange_id(exchange: str) -> str:
    """CoinAPI's id for an exchange name as we store it ('Gemini' -> 'GEMINI')."""
    return EXCHANGE_IDS.get(exchange, re.sub(r"[^A-Z0-9]", "", exchange.upper()))


def exchange_name(symbol_id: str) -> str:
    """The stored exchange name for a symbol id ('BITSTAMP_SPOT_BTC_USD' -> 'Bitstamp')."""
    code = symbol_exchange_id(symbol_id)
    names = {value: key for key, value in EXCHANGE_IDS.items()}
    return names.get(code, code.title())


def symbol_exchange_id(symbol_id: str) -> str:
    """The exchange part of a CoinAPI symbol id: everything before the first underscore."""
    return symbol_id.split("_", 1)[0].upper()


def default_symbol_id(symbol: str, exchange: str) -> str:
    """The spot market of a pair on an exchange: ('BTCUSD', 'Gemini') -> GEMINI_SPOT_BTC_USD."""
    pair = symbol.upper()
    for quote in _QUOTES:
        if pair.endswith(quote) and len(pair) > len(quote):
            return f"{exchange_id(exchange)}_SPOT_{pair[: -len(quote)]}_{quote}"
    raise ValueError(
        f"cannot tell the base and quote currencies of {symbol!r}: give its CoinAPI symbol id "
        f"(e.g. {symbol}=GEMINI_SPOT_XXX_USD)"
    )


def iso_utc(moment: datetime) -> str:
    """A UTC time the way CoinAPI takes it in a query: 2021-01-01T00:00:00."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class _BrokenBody(CoinApiError):
    """The headers came, the body did not (connection cut, read timeout): worth a retry."""


class _CappedRetry(Retry):
    """urllib3's Retry, but giving up at once on a Retry-After longer than `max_retry_after`.

    CoinAPI answers an exhausted daily quota with 429 and a Retry-After of hours; a scheduled
    job should give up and say so rather than hang until tomorrow, or wait a capped while and
    ask again only to be refused again. Raising MaxRetryError from `increment` is urllib3's
    own way to end the retries: with raise_on_status=False it hands back that last answer,
    and `_raise_for_status` turns it into CoinApiRateLimited.
    """

    max_retry_after: float = 120.0

    def new(self, **kwargs) -> _CappedRetry:
        fresh = super().new(**kwargs)
        fresh.max_retry_after = self.max_retry_after
        return fresh

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> _CappedRetry:
        if error is None and response is not None and not response.get_redirect_location():
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is not None and wait > self.max_retry_after:
                reason = ResponseError(f"Retry-After of {wait:.0f} s is longer than we wait")
                # urllib3 itself passes the pool it has, which may be None here, like this
                raise MaxRetryError(_pool, url, reason)  # type: ignore[arg-type]
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response) -> float | None:
        # `increment` lets a redirect through whatever its Retry-After, and urllib3 then
        # sleeps it: capped all the same.
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.max_retry_after)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; None if absent
    or unreadable. Unlike urllib3's parser it is not capped, so a quota's day shows as a day."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # an HTTP date is GMT, but parsedate drops "-0000"
        moment = moment.replace(tzinfo=UTC)
    return max((moment - (now or datetime.now(UTC))).total_seconds(), 0.0)


def credits_for(items: int) -> int:
    """CoinAPI credits for one answered data request of `items` items: per 100, at least 1."""
    return max(1, math.ceil(items / ITEMS_PER_CREDIT))


class CoinApiClient:
    """OHLCV history from CoinAPI REST v1, with retries, typed errors and paging."""

    def __init__(
        self,
        key: str,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        max_retry_after: float = 120.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.requests_sent = 0  # every HTTP request made, retries and failures included
        self.credits_used = 0  # CoinAPI credits the answered requests cost
        self._retry = _CappedRetry(
            total=max_retries,
            backoff_factor=backoff,
            backoff_jitter=backoff,
            backoff_max=backoff_max,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,  # hand back the last answer so we can say what it was
        )
        self._retry.max_retry_after = max_retry_after
        self.session = requests.Session()
        self.session.headers.update({"X-CoinAPI-Key": key, "Accept": "application/json"})
        self.session.mount(self.base_url, HTTPAdapter(max_retries=self._retry))

    def close(self) -> None:
        self.session.close()

    def ohlcv_history(
        self,
        symbol_id: str,
        period: str,
        time_start: datetime,
        time_end: datetime,
        limit: int = MAX_LIMIT,
    ) -> OhlcvPage:
        """One page of bars with period start in [time_start, time_end)."""
        params = {
            "period_id": period,
            "time_start": iso_utc(time_start),
            "time_end": iso_utc(time_end),
            "limit": limit,
        }
        items = self._get_json(f"/v1/ohlcv/{symbol_id}/history", params)
        return parse_page(items, time_start, time_end, period_seconds(period))

    def iter_ohlcv(
        self,
        symbol_id: str,
        period: str,
        start: datetime,
        end: datetime,
        limit: int = MAX_LIMIT,
    ) -> Iterator[OhlcvPage]:
        """Pages covering [start, end); each next page starts one period after the last seen.

        A short page does not mean the end (a server may cap pages below `limit`): paging
        stops only at `end` or at a page with nothing new in range. Items overlapping an
        earlier page fall before the next page's start and are dropped by `parse_page`.
        """
        step = timedelta(seconds=period_seconds(period))
        cursor = start
        while cursor < end:
            page = self.ohlcv_history(symbol_id, period, cursor, end, limit)
            yield page
            if page.last_time is None or page.last_time < cursor:
                return
            cursor = page.last_time + step

    def _get_json(self, path: str, params: dict) -> list:
        """GET and decode, retrying a body that breaks off mid-read or is not a JSON list."""
        retry = self._retry
        while True:
            try:
                items = decode_items(self._get_body(path, params))
                self.credits_used += credits_for(len(items))
                return items
            except (_BrokenBody, CoinApiMalformedResponse) as error:
                try:  # a ProtocolError counts as a read error, as urllib3 counts a dropped one
                    retry = retry.increment("GET", path, error=ProtocolError(str(error)))
                except MaxRetryError:
                    if isinstance(error, CoinApiMalformedResponse):
                        raise CoinApiMalformedResponse(
                            f"{error} (the same after {self.max_retries + 1} tries)"
                        ) from error
                    raise CoinApiRetriesExhausted(
                        f"CoinAPI answers kept breaking off after {self.max_retries + 1} "
                        f"tries: {error}"
                    ) from error
                retry.sleep()

    def _get_body(self, path: str, params: dict) -> bytes:
        """One GET (urllib3 retries inside it) and its whole body, or a typed error."""
        try:
            response = self.session.get(
                self.base_url + path, params=params, timeout=self.timeout, stream=True
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            self.requests_sent += self.max_retries + 1  # urllib3 spent the whole budget
            raise CoinApiRetriesExhausted(
                f"CoinAPI could not be reached after {self.max_retries + 1} tries: {_short(error)}"
            ) from error
        except requests.RequestException as error:  # a bad COINAPI_URL, for one
            raise CoinApiRequestError(f"cannot ask CoinAPI: {_short(error)}") from error
        with response:
            self.requests_sent += _attempts(response)
            _raise_for_status(response, self._retry.max_retry_after)
            try:
                return response.content
            except requests.RequestException as error:
                raise _BrokenBody(f"the answer broke off mid-body: {_short(error)}") from error


def _attempts(response: requests.Response) -> int:
    """Requests urllib3 made for this answer: the failed ones in its history, plus this one."""
    retries = getattr(response.raw, "retries", None)
    return 1 + (len(retries.history) if retries is not None else 0)


def _raise_for_status(response: requests.Response, max_retry_after: float) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _error_detail(response)
    if status in (401, 403):
        raise CoinApiAuthError(
            f"CoinAPI rejected the key (HTTP {status}{detail}): check COINAPI_KEY"
        )
    if status in RETRY_STATUSES:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if wait is not None and wait > max_retry_after:
            until = datetime.now(UTC) + timedelta(seconds=wait)
            raise CoinApiRateLimited(
                f"CoinAPI answered HTTP {status}{detail} and asks to wait {wait:.0f} s "
                f"(until {until:%Y-%m-%d %H:%M:%S} UTC), longer than COINAPI_MAX_RETRY_AFTER "
                f"({max_retry_after:g} s); the run stops here, try again later"
            )
        asked = f", server asks to wait {wait:.0f} s" if wait is not None else ""
        raise CoinApiRetriesExhausted(
            f"CoinAPI still answered HTTP {status}{detail} after {_attempts(response)} "
            f"tries{asked}; try again later"
        )
    raise CoinApiRequestError(f"CoinAPI refused the request: HTTP {status}{detail}")


def _error_detail(response: requests.Response) -> str:
    """CoinAPI's own {"error": "..."} text, if the body has one and can be read."""
    try:
        message = response.json().get("error")
    except (ValueError, AttributeError, requests.RequestException):
        return ""
    return f": {_short(message)}" if message else ""


def decode_items(content: bytes) -> list:
    """The JSON list CoinAPI answers with; anything else is a malformed body."""
    try:
        items = json.loads(content)
    except ValueError as error:
        raise CoinApiMalformedResponse(
            f"CoinAPI answered with a body that is not JSON ({len(content)} bytes): "
            f"{_short(content[:80])}"
        ) from error
    if not isinstance(items, list):
        raise CoinApiMalformedResponse(
            f"CoinAPI answered with a JSON {type(items).__name__}, not a list of bars: "
            f"{_short(items)}"
        )
    return items


def period_seconds(period: str) -> int:
    match = re.fullmatch(r"(\d+)(SEC|MIN|HRS|DAY)", period)
    if not match:
        raise ValueError(f"unsupported CoinAPI period {period!r}")
    return int(match.group(1)) * dict(_PERIOD_UNITS)[match.group(2)]


def parse_page(
    items: list, time_start: datetime, time_end: datetime, bar_seconds: int
) -> OhlcvPage:
    """Valid, new, in-range items as a bar frame; every bad one reported with its position.

    Items outside [time_start, time_end) or repeating a time are dropped, not reported: a
    server that overlaps its pages sends bars we already have. The values of the remaining
    items are checked all at once by the same rules as the CSV import (utils.bar_checks).
    """
    page = OhlcvPage(time_start=time_start, time_end=time_end, items=len(items))
    seen: set[datetime] = set()
    rows: list[tuple] = []
    positions: list[int] = []
    for position, item in enumerate(items, start=1):
        parsed = parse_item(item, bar_seconds)
        time = parsed.time if isinstance(parsed, InvalidItem) else parsed[0]
        if time is not None and (time < time_start or time >= time_end or time in seen):
            page.dropped += 1
            continue
        if time is not None:
            seen.add(time)
            page.last_time = max(page.last_time or time, time)
        if isinstance(parsed, InvalidItem):
            page.invalid.append(InvalidItem(position, parsed.reason, parsed.time))
        else:
            rows.append(parsed)
            positions.append(position)
    if rows:
        _check_values(page, rows, positions)
    return page


def _check_values(page: OhlcvPage, rows: list[tuple], positions: list[int]) -> None:
    bars = pd.DataFrame(rows, columns=list(BAR_COLUMNS)).astype(
        {name: "float64" for name in VALUE_FIELDS}
    )
    reasons = untrusted_reasons(bars, labels=_ITEM_KEYS)
    for position, reason, time in zip(positions, reasons, bars["time"], strict=True):
        if reason:
            page.invalid.append(InvalidItem(position, reason, time))
    page.invalid.sort(key=lambda invalid: invalid.position)
    good = bars[(reasons == "").to_numpy()].sort_values("time", ignore_index=True)
    good["time"] = pd.to_datetime(good["time"], utc=True).astype("datetime64[us, UTC]")
    page.bars = good


def parse_item(item: object, bar_seconds: int) -> tuple | InvalidItem:
    """(time, open, high, low, close, volume), values None where unusable, or why not a bar."""
    if not isinstance(item, dict):
        return InvalidItem(0, f"not an object: {_short(item)}")
    start = _parse_time(item.get("time_period_start"))
    if start is None:
        shown = _short(item.get("time_period_start"))
        return InvalidItem(0, f"time_period_start is missing or not a UTC time: {shown}")
    end = _parse_time(item.get("time_period_end"))
    if end is not None and (end - start).total_seconds() != bar_seconds:
        return InvalidItem(0, f"period {start:%H:%M}..{end:%H:%M} is not one bar", start)
    return (start, *(_number(item.get(key)) for key in _ITEM_KEYS.values()))


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _short(value: object, width: int = 120) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
