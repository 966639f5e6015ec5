"""Bring stored bar series up to date from CoinAPI (./manage.py update_stocks).

Each series resumes one bar after its last stored bar, or at that bar if it is provisional,
and runs to the start of the current period on our clock. Our clock is not CoinAPI's: if
theirs lags, the last period we ask for may still be forming there. So the newest bar
stored is always provisional, and the next run asks for it again and replaces it; a bar is
never taken as closed on our clock alone. Every page is committed through `insert_bars` as
soon as it arrives, so a crash or a give-up keeps what was fetched and the next run simply
goes on from there.

A run stops as a whole, not series by series, when going on cannot help: CoinAPI rejects the
key, or asks us to wait longer than COINAPI_MAX_RETRY_AFTER (an exhausted quota). Every other
failure ends only its own series. A series counts every request it made, those of a page that
failed included, and the CoinAPI credits its answers cost (see utils.coinapi).

A series keeps to one exchange: bars continue from the exchange of the last stored bar, and
fetching from another one is refused unless asked for, because a series that silently
switches exchange shows jumps that are not in any market.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
from django.conf import settings
from django.db.models import Max

from predictor.models import Stock
from predictor.services.bars import (
    SeriesKey,
    SeriesKeyError,
    check_same_exchange,
    insert_bars,
    series_queryset,
)
from utils.coinapi import (
    MAX_LIMIT,
    CoinApiAuthError,
    CoinApiClient,
    CoinApiError,
    CoinApiRateLimited,
    OhlcvPage,
    default_symbol_id,
    exchange_id,
    exchange_name,
    period_id,
)
from utils.errors import CryptoOracleError
from utils.timeframes import timeframe_seconds

DEFAULT_EXCHANGE = "Gemini"  # where the shipped CSVs come from


class UpdateError(CryptoOracleError):
    """The update cannot start as asked; nothing has been changed. One line for a person."""


@dataclass(frozen=True)
class SeriesPlan:
    """What to fetch for one stored (symbol, bar length), decided before any request."""

    symbol: str
    bar_length: str
    symbol_id: str
    period: str
    start: datetime
    end: datetime  # exclusive: the start of the period still forming
    exchange: str  # stored on the new bars: the exchange they really come from
    previous: datetime | None = None  # last stored bar before `start`, to see a gap there

    @property
    def step(self) -> timedelta:
        return timedelta(seconds=timeframe_seconds(self.bar_length))

    @property
    def expected_bars(self) -> int:
        return max(int((self.end - self.start) / self.step), 0)


@dataclass(frozen=True)
class Gap:
    """Bars missing between two bars we have, `after` and `before`."""

    after: datetime
    before: datetime
    missing: int

    def __str__(self) -> str:
        return (
            f"no bars between {self.after:%Y-%m-%d %H:%M} and {self.before:%Y-%m-%d %H:%M} "
            f"UTC ({self.missing} missing)"
        )


@dataclass
class SeriesUpdate:
    """What updating one series did; `error` is set when it stopped early."""

    plan: SeriesPlan
    fetched: int = 0
    inserted: int = 0
    replaced: int = 0  # provisional bars whose values the fetched bars changed
    requests: int = 0  # every HTTP request, those of a failed page and retries included
    credits: int = 0  # CoinAPI credits the answers cost
    pages: int = 0
    dropped: int = 0
    gaps: list[Gap] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    last_time: datetime | None = None
    error: str | None = None
    stops_run: bool = False  # the next series would fail the same way (key, quota)

    @property
    def missing_at_end(self) -> int:
        """Periods after the last bar we have that the server had no bar for (yet).

        Not a gap: the next run asks for them again, and they become a reported gap once a
        later bar arrives.
        """
        last = self.last_time or self.plan.previous
        first = self.plan.start if last is None else max(last + self.plan.step, self.plan.start)
        return max(int((self.plan.end - first) / self.plan.step), 0)


PageCallback = Callable[[SeriesUpdate, OhlcvPage], None]


def client_from_settings() -> CoinApiClient:
    """A client configured from settings (COINAPI_* environment variables)."""
    if not settings.COINAPI_KEY:
        raise UpdateError(
            "no CoinAPI key: set the COINAPI_KEY environment variable "
            "(a free key comes from https://www.coinapi.io)"
        )
    return CoinApiClient(
        settings.COINAPI_KEY,
        settings.COINAPI_URL,
        timeout=settings.COINAPI_TIMEOUT,
        max_retries=settings.COINAPI_MAX_RETRIES,
        backoff=settings.COINAPI_BACKOFF,
        max_retry_after=settings.COINAPI_MAX_RETRY_AFTER,
    )


def plan_updates(
    symbols: Iterable[str] = (),
    bar_lengths: Iterable[str] = (),
    *,
    backfill_from: datetime | None = None,
    symbol_ids: dict[str, str] | None = None,
    allow_exchange_mix: bool = False,
    now: datetime | None = None,
) -> list[SeriesPlan]:
    """One plan per series to update; raises UpdateError for anything it cannot do."""
    now = now or datetime.now(UTC)
    ids = {**settings.COINAPI_SYMBOL_IDS, **(symbol_ids or {})}
    series = select_series([s.upper() for s in symbols], list(bar_lengths), backfill_from)
    return [
        plan_series(symbol, bar_length, backfill_from, ids, allow_exchange_mix, now)
        for symbol, bar_length in series
    ]


def select_series(
    symbols: list[str], bar_lengths: list[str], backfill_from: datetime | None
) -> list[tuple[str, str]]:
    """The stored series, narrowed by the flags; a series named but not stored needs --backfill.

    Without --symbol, only stored series are updated (-b 1h skips symbols with no 1h bars);
    with it, each symbol named gets the bar lengths named, or all of its stored ones.
    """
    stored = sorted(set(Stock.objects.values_list("symbol", "bar_length").distinct()))
    if not symbols:
        chosen = [(s, b) for s, b in stored if not bar_lengths or b in bar_lengths]
        if not chosen:
            which = f" of bar length {', '.join(bar_lengths)}" if bar_lengths else ""
            raise UpdateError(
                f"no bars{which} stored yet: run import_stocks first, or name --symbol, "
                "--bar-length and --backfill FROM"
            )
        return chosen
    chosen = []
    for symbol in symbols:
        lengths = bar_lengths or [b for s, b in stored if s == symbol]
        if not lengths:
            raise UpdateError(
                f"no stored {symbol} bars: name a bar length with --bar-length and a start "
                "with --backfill FROM"
            )
        chosen.extend((symbol, length) for length in lengths)
    missing = [f"{s} {b}" for s, b in chosen if (s, b) not in stored]
    if missing and backfill_from is None:
        raise UpdateError(
            f"no stored bars to continue from for {', '.join(missing)}: "
            "give --backfill FROM to say where to start"
        )
    return chosen


def plan_series(
    symbol: str,
    bar_length: str,
    backfill_from: datetime | None,
    symbol_ids: dict[str, str],
    allow_exchange_mix: bool,
    now: datetime,
) -> SeriesPlan:
    try:
        seconds = timeframe_seconds(bar_length)
        period = period_id(seconds)
    except ValueError as error:
        raise UpdateError(f"{symbol} {bar_length}: {error}") from error
    try:
        SeriesKey(symbol, bar_length).check()
    except SeriesKeyError as error:
        raise UpdateError(str(error)) from error
    series = series_queryset(symbol, bar_length)
    latest = series.order_by("-time").values("time", "exchange", "provisional").first()
    stored_exchange = (latest["exchange"] or DEFAULT_EXCHANGE) if latest else None
    symbol_id = resolve_symbol_id(symbol, stored_exchange or DEFAULT_EXCHANGE, symbol_ids)
    if stored_exchange and not allow_exchange_mix:
        try:
            check_same_exchange(
                symbol,
                bar_length,
                stored=stored_exchange,
                incoming=exchange_name(symbol_id),
                how_to_separate=f"map the symbol to a {exchange_id(stored_exchange)}_... id",
            )
        except SeriesKeyError as error:
            raise UpdateError(str(error)) from error
    last = latest["time"] if latest else None
    if latest and latest["provisional"]:  # ask for it again: it may have been forming
        last = series.filter(time__lt=latest["time"]).aggregate(last=Max("time"))["last"]
        resume = latest["time"]
    else:
        resume = last + timedelta(seconds=seconds) if last else None
    start = backfill_from if backfill_from is not None else resume
    return SeriesPlan(
        symbol=symbol,
        bar_length=bar_length,
        symbol_id=symbol_id,
        period=period,
        start=start.astimezone(UTC),
        end=pd.Timestamp(now).floor(f"{seconds}s").to_pydatetime(),
        exchange=exchange_name(symbol_id),
        previous=last if backfill_from is None else None,
    )


def resolve_symbol_id(symbol: str, exchange: str, symbol_ids: dict[str, str]) -> str:
    """The configured symbol id, else the spot market on the series' exchange."""
    if symbol in symbol_ids:
        return symbol_ids[symbol]
    try:
        return default_symbol_id(symbol, exchange)
    except ValueError as error:
        raise UpdateError(str(error)) from error


def update_stocks(
    plans: list[SeriesPlan],
    client: CoinApiClient,
    *,
    limit: int | None = None,
    on_page: PageCallback | None = None,
) -> list[SeriesUpdate]:
    """Update each planned series, in order. A rejected key or an exhausted quota stops the
    run (the series after it are not attempted, and not in the list); other errors end only
    their own series."""
    limit = settings.COINAPI_PAGE_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise UpdateError(f"--limit must be between 1 and {MAX_LIMIT}, not {limit}")
    results = []
    for plan in plans:
        result = update_series(plan, client, limit=limit, on_page=on_page)
        results.append(result)
        if result.stops_run:
            break
    return results


def update_series(
    plan: SeriesPlan,
    client: CoinApiClient,
    *,
    limit: int,
    on_page: PageCallback | None = None,
) -> SeriesUpdate:
    """Fetch the plan's range page by page, committing each page before asking for the next.

    Requests and credits are read off the client's counters around the whole series, so the
    requests of a page that failed (and its retries) count too: a page only reports itself
    when it succeeds.
    """
    result = SeriesUpdate(plan=plan)
    key = SeriesKey(plan.symbol, plan.bar_length, plan.exchange, f"CoinAPI {plan.symbol_id}")
    pages = client.iter_ohlcv(plan.symbol_id, plan.period, plan.start, plan.end, limit)
    newest_closed = plan.end - plan.step  # may still be forming on CoinAPI's clock
    requests_before, credits_before = client.requests_sent, client.credits_used
    try:
        for page in pages:
            record_page(result, page)
            stored = insert_bars(key, page.bars, provisional_time=newest_closed)
            result.inserted += stored.inserted
            result.replaced += stored.replaced
            if on_page:
                on_page(result, page)
    except CoinApiAuthError as error:
        result.error = str(error)
        result.stops_run = True
    except CoinApiError as error:
        result.error = f"{plan.symbol} {plan.bar_length} ({plan.symbol_id}): {error}"
        result.stops_run = isinstance(error, CoinApiRateLimited)
    finally:
        result.requests = client.requests_sent - requests_before
        result.credits = client.credits_used - credits_before
    return result


def record_page(result: SeriesUpdate, page: OhlcvPage) -> None:
    """Count the page and find the holes it leaves, including the one before its first bar."""
    result.pages += 1
    result.fetched += len(page.bars)
    result.dropped += page.dropped
    result.invalid.extend(
        f"item {item.position} of the page from {page.time_start:%Y-%m-%d %H:%M}: {item.reason}"
        for item in page.invalid
    )
    previous = result.last_time or result.plan.previous
    times = page.bars["time"].dt.to_pydatetime().tolist()
    result.gaps.extend(find_gaps(previous, times, result.plan.step))
    if times:
        result.last_time = times[-1]


def find_gaps(previous: datetime | None, times: list[datetime], step: timedelta) -> list[Gap]:
    """Every place where consecutive bars are more than one bar length apart."""
    gaps = []
    for time in times:
        if previous is not None and time - previous > step:
            gaps.append(Gap(previous, time, int((time - previous) / step) - 1))
        previous = time
    return gaps
