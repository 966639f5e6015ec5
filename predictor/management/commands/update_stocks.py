"""./manage.py update_stocks: fetch the bars missing since the last stored one from CoinAPI."""

import sys
from argparse import ArgumentTypeError
from datetime import UTC, datetime

from django.core.management.base import CommandError
from tqdm import tqdm

from predictor.management.base import OracleCommand
from predictor.management.series_flags import add_series_flags
from predictor.services.updating import (
    SeriesPlan,
    SeriesUpdate,
    client_from_settings,
    plan_updates,
    update_stocks,
)
from utils.coinapi import OhlcvPage


def symbol_id_flag(text: str) -> tuple[str, str]:
    """--symbol-id BTCUSD=BITSTAMP_SPOT_BTC_USD -> ('BTCUSD', 'BITSTAMP_SPOT_BTC_USD')."""
    symbol, sep, symbol_id = text.partition("=")
    if not sep or not symbol.strip() or not symbol_id.strip():
        raise ArgumentTypeError(f"{text!r} is not SYMBOL=COINAPI_SYMBOL_ID")
    return symbol.strip().upper(), symbol_id.strip().upper()


def utc_moment(text: str) -> datetime:
    """--backfill 2021-01-01 or 2021-01-01T12:00: a date or time, UTC unless it says otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ArgumentTypeError(f"{text!r} is not a date like 2021-01-01") from error
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Command(OracleCommand):
    help = (
        "Fetch from CoinAPI every bar missing since the last stored bar of each series (or of "
        "the series named). Needs COINAPI_KEY. Safe to run again or after a crash: it resumes "
        "from what is stored. The newest stored bar is provisional (it may have been forming): "
        "it is asked for again and replaced by the complete bar; no other stored bar changes."
    )

    def add_arguments(self, parser):
        add_series_flags(parser)
        parser.add_argument(
            "--backfill",
            type=utc_moment,
            metavar="FROM",
            help="fetch from this UTC date/time, even before the last stored bar (fills holes)",
        )
        parser.add_argument("--limit", type=int, help="bars per request (default 10000)")
        parser.add_argument(
            "--symbol-id",
            type=symbol_id_flag,
            action="append",
            default=[],
            metavar="SYMBOL=ID",
            help="CoinAPI symbol id for a symbol, e.g. BTCUSD=GEMINI_SPOT_BTC_USD (repeatable)",
        )
        parser.add_argument(
            "--allow-exchange-mix",
            action="store_true",
            help="continue a series with bars from another exchange than its stored ones",
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def handle(self, *args, **options):
        client = client_from_settings()
        plans = plan_updates(
            options["symbol"],
            options["bar_length"],
            backfill_from=options["backfill"],
            symbol_ids=dict(options["symbol_id"]),
            allow_exchange_mix=options["allow_exchange_mix"],
        )
        hide = options["no_progress"] or options["verbosity"] == 0
        with Progress(hide) as progress:
            results = update_stocks(plans, client, limit=options["limit"], on_page=progress.page)
        for result in results:
            self._report(result)
        failed = [r.error for r in results if r.error]
        skipped = [f"{plan.symbol} {plan.bar_length}" for plan in plans[len(results) :]]
        if skipped:
            failed.append(f"not attempted: {', '.join(skipped)}")
        if failed:
            raise CommandError("; ".join(failed) + " (every bar fetched before is kept)")

    def _report(self, result: SeriesUpdate) -> None:
        plan = result.plan
        self.stdout.write(
            f"{plan.symbol} {plan.bar_length} from {plan.symbol_id} "
            f"[{plan.start:%Y-%m-%d %H:%M} .. {plan.end:%Y-%m-%d %H:%M} UTC): "
            f"bars fetched {result.fetched}, inserted {result.inserted}, "
            + (f"replaced {result.replaced}, " if result.replaced else "")
            + f"requests {result.requests}, credits {result.credits}, gaps {len(result.gaps)}"
            + (f", invalid items {len(result.invalid)}" if result.invalid else "")
        )
        for gap in result.gaps:
            self.stderr.write(self.style.WARNING(f"{plan.symbol} {plan.bar_length}: {gap}"))
        for problem in result.invalid:
            self.stderr.write(
                self.style.WARNING(f"{plan.symbol} {plan.bar_length}: not stored: {problem}")
            )
        if result.missing_at_end and not result.error:
            self.stdout.write(
                f"{plan.symbol} {plan.bar_length}: no bars yet for the last "
                f"{result.missing_at_end} periods before {plan.end:%Y-%m-%d %H:%M} UTC; "
                "the next run asks again"
            )
        if result.error:
            self.stderr.write(self.style.ERROR(f"FAILED {result.error}"))


class Progress:
    """One tqdm bar per series, sized by the bars its range can hold."""

    def __init__(self, hide: bool) -> None:
        self.hide = hide
        self.plan: SeriesPlan | None = None
        self.bar: tqdm | None = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def page(self, result: SeriesUpdate, page: OhlcvPage) -> None:
        if result.plan is not self.plan:
            self.close()
            self.plan = result.plan
            self.bar = tqdm(
                total=result.plan.expected_bars,
                unit=" bars",
                desc=f"{result.plan.symbol} {result.plan.bar_length}",
                disable=self.hide,
                file=sys.stderr,
            )
        if self.bar is not None:
            self.bar.update(len(page.bars))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
