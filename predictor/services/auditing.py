"""The audit of stored bars put into words, and `--fix`: deleting the bars that cannot be right.

Databases filled by earlier versions of the app can hold bars the importer now refuses (off
their series' grid, infinite or absurd values, dates before 2009 or in the future). Such a bar
cannot be repaired, because its source is not at hand, but it can be removed: every reader
then sees a gap, which they already handle, instead of a wrong value. Gaps, provisional bars
and mixed exchanges are only reported: they are facts about the data, not errors in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from predictor.selectors.audit import (
    REASONS,
    BadBars,
    Scope,
    SeriesAudit,
    untrustworthy_bars,
    untrustworthy_condition,
)
from predictor.services.bars import delete_bars_where
from utils.errors import CryptoOracleError

EXAMPLES_SHOWN = 3


class BarsChangedError(CryptoOracleError, RuntimeError):
    """Bars were written while --fix ran: the delete was rolled back and can be run again."""


@dataclass(frozen=True)
class Deleted:
    """The bars of one series deleted for one reason."""

    symbol: str
    bar_length: str
    bars: BadBars


def delete_untrustworthy_bars(scope: Scope, *, now: datetime) -> list[Deleted]:
    """Delete the bars in scope that cannot be right, in one transaction, and say which.

    The delete uses the very condition the audit reports with, and checks that it removed
    as many bars as were listed: if a writer changed the series in between, everything is
    rolled back rather than deleting bars nobody was shown. Only bars are touched; forecasts
    (StockPrediction) refer to times, not to bar rows, and stay as they are.
    """
    with transaction.atomic():
        listed = [Deleted(*group) for group in untrustworthy_bars(scope, now=now)]
        if not listed:
            return []
        condition, params = untrustworthy_condition(scope, now=now)
        deleted = delete_bars_where(condition, params)  # rollups of those buckets refreshed
        expected = sum(item.bars.count for item in listed)
        if deleted != expected:
            raise BarsChangedError(
                f"the audit listed {expected} bars to delete but {deleted} matched when "
                "deleting: bars were written meanwhile; nothing was deleted, run it again"
            )
    return listed


# --- words ----------------------------------------------------------------------------------


def problem_lines(audit: SeriesAudit) -> list[str]:
    """One line per problem found in the series (and one for a provisional newest bar,
    which is normal and said as information), each starting with the series' name."""
    lines = []
    if audit.seconds is None:
        lines.append(
            f"bar length {audit.bar_length!r} is not a timeframe like 1m, 1h or 1d: "
            "its grid and gaps are not checked"
        )
    lines += [
        f"{_count(g.count, 'bar')} {_reason(g.reason, audit)} ({_first(g)})" for g in audit.bad
    ]
    if len(audit.exchanges) > 1:
        lines.append(f"exchanges mixed in one series: {_exchanges(audit.exchanges)}")
    if audit.stale_provisional:
        lines.append(_stale_provisional(audit.stale_provisional))
    if audit.provisional_newest is not None:
        lines.append(
            f"the newest bar ({_time(audit.provisional_newest)}) is provisional, as is "
            "normal: the next update_stocks or import replaces it with the complete bar"
        )
    if audit.gaps is not None:
        lines.append(_gaps(audit))
    return [f"{audit.name}: {line}" for line in lines]


def deleted_lines(deleted: list[Deleted], audits: list[SeriesAudit]) -> list[str]:
    """One line per series and reason: how many bars were deleted, with example times."""
    by_key = {(a.symbol, a.bar_length): a for a in audits}
    lines = []
    for item in deleted:
        audit = by_key[item.symbol, item.bar_length]
        shown = ", ".join(_time(t) for t in item.bars.examples[:EXAMPLES_SHOWN])
        more = ", ..." if item.bars.count > EXAMPLES_SHOWN else ""
        lines.append(
            f"{audit.name}: deleted {_count(item.bars.count, 'bar')} "
            f"{_reason(item.bars.reason, audit)} ({shown}{more})"
        )
    return lines


def summary_line(audits: list[SeriesAudit], *, deleted: int | None = None) -> str:
    """The audit in one line: what was checked, then each kind of problem counted. With
    `deleted`, the bad bars are reported as deleted (the rest is as the audit found it)."""
    bars = sum(a.bars for a in audits)
    bad = sum(a.bad_count for a in audits)
    parts = []
    if deleted is not None:
        parts.append(f"deleted {_count(deleted, 'bar')} that could not be right")
    elif bad:
        parts.append(f"{_count(bad, 'bar')} cannot be right")
    mixed = sum(len(a.exchanges) > 1 for a in audits)
    if mixed:
        parts.append(f"{_count(mixed, 'series', 'series')} mixing exchanges")
    stale = sum(len(a.stale_provisional) for a in audits)
    if stale:
        parts.append(f"{_count(stale, 'stale provisional bar')}")
    gaps = [a.gaps for a in audits if a.gaps is not None]
    if gaps:
        missing = sum(g.missing for g in gaps)
        parts.append(
            f"{_count(sum(g.count for g in gaps), 'gap')} ({_count(missing, 'bar')} missing)"
        )
    line = f"audited {_count(len(audits), 'series', 'series')}, {_count(bars, 'bar')}: " + (
        ", ".join(parts) or "no problems found"
    )
    newest = sum(a.provisional_newest is not None for a in audits)
    if newest:
        line += f"; the newest bar is provisional in {_count(newest, 'series', 'series')}"
    return line


def _reason(reason: str, audit: SeriesAudit) -> str:
    return REASONS[reason].format(bar_length=audit.bar_length)


def _first(group: BadBars) -> str:
    return _time(group.first) if group.count == 1 else f"first {_time(group.first)}"


def _exchanges(counts: dict[str, int]) -> str:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(
        f"{name or '(no exchange recorded)'} {_count(n, 'bar')}" for name, n in ordered
    )


def _stale_provisional(times: list[datetime]) -> str:
    shown = ", ".join(_time(t) for t in times[:EXAMPLES_SHOWN])
    more = ", ..." if len(times) > EXAMPLES_SHOWN else ""
    if len(times) == 1:
        return (
            f"1 provisional bar is not the newest: it was never confirmed by its source ({shown})"
        )
    return (
        f"{len(times)} provisional bars are not the newest: they were never confirmed by "
        f"their source ({shown}{more})"
    )


def _gaps(audit: SeriesAudit) -> str:
    gaps = audit.gaps
    assert gaps is not None
    first, last = _time(gaps.longest_first_missing), _time(gaps.longest_last_missing)
    where = f"at {first}" if gaps.longest_missing == 1 else f"from {first} to {last}"
    return (
        f"{_count(gaps.count, 'gap')}, {_count(gaps.missing, 'bar')} missing; longest "
        f"{_count(gaps.longest_missing, 'bar')} missing {where}"
    )


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def _time(value: datetime) -> str:
    """As bar_checks shows times: seconds always, microseconds only when there are some."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f").removesuffix(".000000") + " UTC"
