"""Reads for `audit_bars`: what is wrong with the stored series, worked out in the database.

A bar store of millions of minute bars cannot be audited by loading it into Python. Every
check here is a per-row SQL expression inside a few aggregate or window queries, so the
engine makes one pass per question and hands back a handful of rows per series; passes that
cannot find anything (no bad bars, one exchange, no bar missing by count) are skipped.

The rules are those of utils.bar_checks (the importer's), restated in SQL: a bar that breaks
one of them could not be stored by the current importer, only by an earlier version of the
app, and `audit_bars --fix` deletes it. A bad bar is counted once, under the first rule it
breaks in the order of REASONS. Gaps, the newest bar and provisional bars are judged among
the bars that can be right, so the report describes the series as `--fix` leaves it.

Engine-specific SQL (stored times as epoch seconds, NaN and infinity, the index probes) lives
in the `_Dialect` classes at the bottom of this module and nowhere else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from predictor.models import Stock
from utils.bar_checks import EARLIEST_BAR_TIME, MAX_PRICE, MAX_VOLUME
from utils.timeframes import timeframe_seconds

# Why a bar cannot be right, in the order the rules are tried: the first that fails names it.
REASONS: dict[str, str] = {
    "off_grid": "off the {bar_length} grid",
    "before_2009": "dated before 2009",
    "future": "dated in the future",
    "nan": "with a value that is not a number (NaN)",
    "infinite": "with an infinite value",
    "price_not_positive": "with a price of 0 or below",
    "price_too_high": f"with a price above {MAX_PRICE:.0e}",
    "high_below_low": "with high below low",
    "body_outside": "with open or close outside low..high",
    "volume_negative": "with a negative volume",
    "volume_too_high": f"with a volume above {MAX_VOLUME:.0e}",
}
_VALUES = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Scope:
    """Which series to audit: every stored one, or those of the given symbols/bar lengths."""

    symbols: tuple[str, ...] = ()
    bar_lengths: tuple[str, ...] = ()

    def where(self) -> tuple[str, list[str]]:
        """SQL condition and its parameters selecting the scope's bars."""
        parts: list[str] = ["1 = 1"]
        params: list[str] = []
        for column, values in (("symbol", self.symbols), ("bar_length", self.bar_lengths)):
            if values:
                parts.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
                params.extend(values)
        return " AND ".join(parts), params

    def admits(self, symbol: str, bar_length: str) -> bool:
        return (not self.symbols or symbol in self.symbols) and (
            not self.bar_lengths or bar_length in self.bar_lengths
        )


@dataclass(frozen=True)
class BadBars:
    """The bars of one series that break one rule: how many, the first, a few examples."""

    reason: str
    count: int
    first: datetime
    examples: tuple[datetime, ...] = ()


@dataclass(frozen=True)
class Gaps:
    """Runs of missing bars between stored good bars of a series, and the longest run."""

    count: int
    missing: int
    longest_missing: int
    longest_first_missing: datetime
    longest_last_missing: datetime


@dataclass
class SeriesAudit:
    """Everything the audit found in one (symbol, bar length) series."""

    symbol: str
    bar_length: str
    seconds: int | None  # None: the bar length is not a timeframe, so no grid or gaps
    bars: int = 0
    good: int = 0  # bars that can be right
    first_good: datetime | None = None
    newest_good: datetime | None = None
    bad: list[BadBars] = field(default_factory=list)
    exchanges: dict[str, int] = field(default_factory=dict)
    provisional_newest: datetime | None = None
    stale_provisional: list[datetime] = field(default_factory=list)
    gaps: Gaps | None = None

    @property
    def name(self) -> str:
        return f"{self.symbol} {self.bar_length}"

    @property
    def bad_count(self) -> int:
        return self.bars - self.good

    def missing_by_count(self) -> int:
        """Bars missing between the first and newest good bar: those on the grid between
        them, less those stored. Zero means no gaps without looking for them."""
        if not self.seconds or self.first_good is None or self.newest_good is None:
            return 0
        span = int((self.newest_good - self.first_good).total_seconds())
        return span // self.seconds + 1 - self.good


def audit_series(scope: Scope, *, now: datetime) -> list[SeriesAudit]:
    """Audit every series in `scope` as of `now` (bars opening later are in the future).

    One full pass counts bars, good bars and exchanges per series; the others are index
    probes or run only where the first pass says there is something to find: the reasons
    of the bad bars, the bars per exchange of a mixed series, the gaps of a series with
    fewer bars than its span holds, and the provisional bars (through their partial index).
    """
    audits = {
        (symbol, bar_length): SeriesAudit(symbol, bar_length, _seconds(bar_length))
        for symbol, bar_length in stored_series_keys(scope)
    }
    if not audits:
        return []
    rules = _Rules(audits.values(), now=now)
    with _tuned():
        _count_bars(audits, scope, rules)
        if any(audit.bad_count for audit in audits.values()):
            _classify_bad_bars(audits, scope, rules)
        for audit in audits.values():
            _find_good_ends(audit, rules)
            if len(audit.exchanges) > 1:
                _count_exchanges(audit)
            if audit.missing_by_count() > 0:
                _find_gaps(audit, rules)
        _find_provisional(audits, scope, rules)
    return list(audits.values())


def untrustworthy_bars(
    scope: Scope, *, now: datetime, examples: int = 3
) -> list[tuple[str, str, BadBars]]:
    """(symbol, bar length, bad bars) for each series and reason, with a few example times.

    What `--fix` is about to delete, read in the same transaction as the delete.
    """
    rules = _Rules(_audits_of(scope), now=now)
    where, params = scope.where()
    sql = (
        "SELECT symbol, bar_length, reason, time, n FROM ("
        "SELECT symbol, bar_length, reason, time, "
        "ROW_NUMBER() OVER (PARTITION BY symbol, bar_length, reason ORDER BY time) AS rank, "
        "COUNT(*) OVER (PARTITION BY symbol, bar_length, reason) AS n FROM ("
        f"SELECT symbol, bar_length, time, {rules.reason_sql} AS reason FROM {_table()} "
        f"WHERE {where} AND {rules.bad_sql}) bad"
        ") ranked WHERE rank <= %s ORDER BY symbol, bar_length, time"
    )
    groups: dict[tuple[str, str, str], list] = {}
    with _tuned():
        rows = _fetch(sql, [*rules.reason_params, *params, *rules.good_params, examples])
    for symbol, bar_length, reason, time, count in rows:
        groups.setdefault((symbol, bar_length, reason), [count, []])[1].append(_utc(time))
    return sorted(
        (
            (symbol, bar_length, BadBars(reason, count, times[0], tuple(times)))
            for (symbol, bar_length, reason), (count, times) in groups.items()
        ),
        key=lambda item: (item[0], item[1], _reason_order(item[2])),
    )


def untrustworthy_condition(scope: Scope, *, now: datetime) -> tuple[str, list]:
    """SQL condition (and parameters) true for exactly the bars `untrustworthy_bars` lists:
    the delete of `--fix` uses it, so what is reported and what is deleted cannot differ."""
    rules = _Rules(_audits_of(scope), now=now)
    where, params = scope.where()
    return f"{where} AND {rules.bad_sql}", [*params, *rules.good_params]


def stored_series_keys(scope: Scope) -> list[tuple[str, str]]:
    """The stored (symbol, bar length) pairs in scope, by a loose index scan.

    One probe of the unique index per series instead of a GROUP BY over millions of bars:
    the audit needs the bar lengths before its main pass, to write their grids into it.
    """
    table, after = _table(), _dialect().after_key("s", "keys")
    following = (
        f"(SELECT s.{{0}} FROM {table} s WHERE {after} ORDER BY s.symbol, s.bar_length LIMIT 1)"
    )
    sql = (
        "WITH RECURSIVE keys(symbol, bar_length) AS ("
        f"SELECT * FROM (SELECT symbol, bar_length FROM {table} "
        "ORDER BY symbol, bar_length LIMIT 1) first_key "
        f"UNION ALL SELECT {following.format('symbol')}, {following.format('bar_length')} "
        "FROM keys WHERE keys.symbol IS NOT NULL"
        ") SELECT symbol, bar_length FROM keys WHERE symbol IS NOT NULL"
    )
    return [(s, b) for s, b in _fetch(sql, []) if scope.admits(s, b)]


# --- the passes ------------------------------------------------------------------------------


def _count_bars(audits: dict, scope: Scope, rules: _Rules) -> None:
    """The one full pass: bars, good bars and the first and last exchange name per series.

    No GROUP BY on the reason or the exchange: SQLite sorts every row it groups, and nearly
    all rows are good and of one exchange, so those are counted apart, only where needed.
    """
    where, params = scope.where()
    sql = (
        f"SELECT symbol, bar_length, COUNT(*), SUM(CASE WHEN {rules.good_sql} THEN 1 ELSE 0 END), "
        f"MIN(exchange), MAX(exchange) FROM {_table()} WHERE {where} GROUP BY symbol, bar_length"
    )
    for symbol, bar_length, count, good, first, last in _fetch(sql, [*rules.good_params, *params]):
        audit = audits[symbol, bar_length]
        audit.bars, audit.good = count, int(good)
        audit.exchanges = {first: count} if first == last else {first: 0, last: 0}


def _classify_bad_bars(audits: dict, scope: Scope, rules: _Rules) -> None:
    """Count the bad bars per series and reason: the rules are tried on bad bars only."""
    where, params = scope.where()
    sql = (
        f"SELECT symbol, bar_length, {rules.reason_sql} AS reason, COUNT(*), MIN(time) "
        f"FROM {_table()} WHERE {where} AND {rules.bad_sql} GROUP BY 1, 2, 3"
    )
    rows = _fetch(sql, [*rules.reason_params, *params, *rules.good_params])
    for symbol, bar_length, reason, count, first in rows:
        audits[symbol, bar_length].bad.append(BadBars(reason, count, _utc(first)))
    for audit in audits.values():
        audit.bad.sort(key=_reason_order)


def _find_good_ends(audit: SeriesAudit, rules: _Rules) -> None:
    """The first and newest good bar: two probes of the unique index, each stepping over
    the bad bars at that end of the series (none, as a rule)."""
    if not audit.good:
        return
    condition, params = _good_in(audit, rules)
    sql = f"SELECT time FROM {_table()} WHERE {condition} ORDER BY time {{}} LIMIT 1"
    ((first,),) = _fetch(sql.format("ASC"), params)
    ((newest,),) = _fetch(sql.format("DESC"), params)
    audit.first_good, audit.newest_good = _utc(first), _utc(newest)


def _count_exchanges(audit: SeriesAudit) -> None:
    """Bars per exchange of a series that the full pass found mixed."""
    sql = (
        f"SELECT exchange, COUNT(*) FROM {_table()} "
        "WHERE symbol = %s AND bar_length = %s GROUP BY exchange"
    )
    audit.exchanges = dict(_fetch(sql, [audit.symbol, audit.bar_length]))


def _find_gaps(audit: SeriesAudit, rules: _Rules) -> None:
    """Steps longer than one bar between consecutive good bars (LAG over time, in the
    unique index's order), their count and total, and the longest: one row back."""
    seconds, dialect = audit.seconds, rules.dialect
    assert seconds is not None
    condition, params = _good_in(audit, rules)
    key = dialect.time_key("time")
    sql = (
        "SELECT prev, cur, missing, COUNT(*) OVER (), SUM(missing) OVER () FROM ("
        f"SELECT prev, cur, {dialect.missing_bars('prev', 'cur', seconds)} AS missing FROM ("
        f"SELECT {key} AS cur, LAG({key}) OVER (ORDER BY time) AS prev FROM {_table()} "
        f"WHERE {condition}) steps WHERE {dialect.longer_than('prev', 'cur', seconds)}"
        ") gaps ORDER BY missing DESC, cur LIMIT 1"
    )
    rows = _fetch(sql, params)
    if not rows:
        return
    ((prev, cur, missing, count, total),) = rows
    step = timedelta(seconds=seconds)
    audit.gaps = Gaps(
        count=int(count),
        missing=int(total),
        longest_missing=int(missing),
        longest_first_missing=_utc(prev) + step,
        longest_last_missing=_utc(cur) - step,
    )


def _find_provisional(audits: dict, scope: Scope, rules: _Rules) -> None:
    """Provisional bars that can be right: the series' newest (normal) or an older one (never
    confirmed). A bad provisional bar is reported, and deleted, as a bad bar. The bare
    `provisional` term is the partial index's own condition, which lets both engines use it."""
    where, params = scope.where()
    sql = (
        f"SELECT symbol, bar_length, time FROM {_table()} WHERE provisional AND {where} "
        f"AND {rules.good_sql} ORDER BY symbol, bar_length, time"
    )
    for symbol, bar_length, time in _fetch(sql, [*params, *rules.good_params]):
        audit, time = audits[symbol, bar_length], _utc(time)
        if time == audit.newest_good:
            audit.provisional_newest = time
        else:
            audit.stale_provisional.append(time)


# --- shared pieces ---------------------------------------------------------------------------


class _Rules:
    """The per-bar judgement as SQL, for the series being audited.

    `good_sql` is the cheap test every row takes: on its grid, dated 2009..now, and
    0 < low <= open, close <= high <= MAX_PRICE, 0 <= volume <= MAX_VOLUME, which no NaN
    or infinity passes. Only a row that fails it (or yields NULL) meets `reason_sql`, the
    rules one by one. Each bar length's grid is written into the SQL (CASE bar_length WHEN
    '1h' THEN 3600 ...), so one pass checks every series on its own grid.
    """

    def __init__(self, audits: Iterable[SeriesAudit], *, now: datetime) -> None:
        self.dialect = dialect = _dialect()
        lengths = sorted({a.bar_length: a.seconds for a in audits if a.seconds}.items())
        on_grid = dialect.on_grid("time", lengths)
        self.good_sql = (
            f"({on_grid} AND time >= %s AND time <= %s AND low > 0 "
            f"AND high <= {MAX_PRICE!r} AND open BETWEEN low AND high "
            f"AND close BETWEEN low AND high AND volume BETWEEN 0 AND {MAX_VOLUME!r})"
        )
        self.bad_sql = f"NOT COALESCE({self.good_sql}, FALSE)"
        times = [dialect.time_param(EARLIEST_BAR_TIME.to_pydatetime()), dialect.time_param(now)]
        self.good_params = times
        rules = {
            "off_grid": f"NOT COALESCE({on_grid}, FALSE)",
            "before_2009": "time < %s",
            "future": "time > %s",
            "nan": dialect.any_nan(_VALUES),
            "infinite": dialect.any_infinite(_VALUES),
            "price_not_positive": "(open <= 0 OR high <= 0 OR low <= 0 OR close <= 0)",
            "price_too_high": _any(
                f"{c} > {MAX_PRICE!r}" for c in ("open", "high", "low", "close")
            ),
            "high_below_low": "high < low",
            "body_outside": "(open > high OR open < low OR close > high OR close < low)",
            "volume_negative": "volume < 0",
            "volume_too_high": f"volume > {MAX_VOLUME!r}",
        }
        whens = " ".join(f"WHEN {rules[name]} THEN '{name}'" for name in REASONS)
        self.reason_sql = f"CASE WHEN {self.good_sql} THEN NULL {whens} END"
        self.reason_params = [*times, *times]


def _good_in(audit: SeriesAudit, rules: _Rules) -> tuple[str, list]:
    """The series' good bars; a series without bad bars needs no test, which lets SQLite
    read it from the unique index alone."""
    condition, params = "symbol = %s AND bar_length = %s", [audit.symbol, audit.bar_length]
    if audit.bad_count:
        return f"{condition} AND {rules.good_sql}", [*params, *rules.good_params]
    return condition, params


def _any(conditions: Iterable[str]) -> str:
    return "(" + " OR ".join(conditions) + ")"


def _case_bar_length(lengths: Sequence[tuple[str, int]], render: Callable[[int], str]) -> str:
    """CASE bar_length WHEN '1h' THEN <render(3600)> ... END. A length that is no timeframe
    gets a 1-second grid: its times are only checked for whole seconds."""
    whens = " ".join(f"WHEN '{name}' THEN {render(seconds)}" for name, seconds in lengths)
    return f"(CASE bar_length {whens} ELSE {render(1)} END)"


def _reason_order(group: BadBars) -> int:
    return list(REASONS).index(group.reason)


def _audits_of(scope: Scope) -> list[SeriesAudit]:
    return [SeriesAudit(s, b, _seconds(b)) for s, b in stored_series_keys(scope)]


def _seconds(bar_length: str) -> int | None:
    try:
        return timeframe_seconds(bar_length)
    except ValueError:
        return None


@contextmanager
def _tuned() -> Iterator[None]:
    """A transaction with the engine's settings for whole-table passes (see the dialects)."""
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in _dialect().pass_settings():
            cursor.execute(statement)
        yield


def _table() -> str:
    return connection.ops.quote_name(Stock._meta.db_table)


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _utc(value: datetime | str | int) -> datetime:
    """A time as a cursor returns it (SQLite: text, epoch seconds or a naive datetime)."""
    if isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- engine-specific SQL ---------------------------------------------------------------------


def _dialect() -> _Dialect:
    if connection.vendor == "postgresql":
        return _PostgreSQL()
    if connection.vendor == "sqlite":
        return _SQLite()
    raise NotImplementedError(f"audit_bars supports SQLite and PostgreSQL, not {connection.vendor}")


class _Dialect:
    def pass_settings(self) -> list[str]:
        return []

    def time_param(self, value: datetime) -> object:
        return value

    def on_grid(self, column: str, lengths: Sequence[tuple[str, int]]) -> str:
        raise NotImplementedError

    def any_nan(self, columns: Sequence[str]) -> str:
        raise NotImplementedError

    def any_infinite(self, columns: Sequence[str]) -> str:
        raise NotImplementedError

    def time_key(self, column: str) -> str:
        """What LAG carries from bar to bar to measure a step."""
        raise NotImplementedError

    def longer_than(self, earlier: str, later: str, seconds: int) -> str:
        raise NotImplementedError

    def missing_bars(self, earlier: str, later: str, seconds: int) -> str:
        raise NotImplementedError

    def after_key(self, row: str, key: str) -> str:
        """Index condition: `row`'s (symbol, bar_length) comes after `key`'s."""
        return f"({row}.symbol, {row}.bar_length) > ({key}.symbol, {key}.bar_length)"


class _SQLite(_Dialect):
    """Times are text 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC. unixepoch() drops the fraction,
    so the grid test also reads the digits after the seconds. NaN cannot be stored (it turns
    into NULL, which NOT NULL refuses); +/-inf can, and 9e999 is SQLite's inf literal."""

    def time_param(self, value: datetime) -> object:
        return connection.ops.adapt_datetimefield_value(value)

    def epoch(self, column: str) -> str:
        if sqlite3.sqlite_version_info >= (3, 38):
            return f"unixepoch({column})"
        return f"CAST(strftime('%%s', {column}) AS INTEGER)"

    def on_grid(self, column: str, lengths: Sequence[tuple[str, int]]) -> str:
        seconds = _case_bar_length(lengths, str)
        fraction = f"CAST(substr({column}, 21) AS INTEGER)"
        return f"({self.epoch(column)} %% {seconds} = 0 AND {fraction} = 0)"

    def any_nan(self, columns: Sequence[str]) -> str:
        return _any(f"{c} IS NULL" for c in columns)

    def any_infinite(self, columns: Sequence[str]) -> str:
        return _any(f"abs({c}) = 9e999" for c in columns)

    def time_key(self, column: str) -> str:
        return self.epoch(column)

    def longer_than(self, earlier: str, later: str, seconds: int) -> str:
        return f"{later} - {earlier} > {seconds}"

    def missing_bars(self, earlier: str, later: str, seconds: int) -> str:
        return f"({later} - {earlier}) / {seconds} - 1"

    def after_key(self, row: str, key: str) -> str:
        # A row-value '>' makes SQLite step through every bar of the current series;
        # '>=' the smallest longer string seeks straight past them.
        return f"({row}.symbol, {row}.bar_length) >= ({key}.symbol, {key}.bar_length || char(1))"


class _PostgreSQL(_Dialect):
    """timestamptz and float8. date_bin() finds a bar's grid point without epoch numerics;
    'NaN' and 'Infinity' can be stored (NaN equals itself and sorts above every number)."""

    def pass_settings(self) -> list[str]:
        # The planner cannot estimate how many bars pass the rules (it multiplies the
        # selectivities of a dozen conditions and guesses a handful), and on a
        # 2-million-row table that guess pays a third of a second of JIT compilation.
        return ["SET LOCAL jit = off"]

    def on_grid(self, column: str, lengths: Sequence[tuple[str, int]]) -> str:
        stride = _case_bar_length(lengths, lambda seconds: f"INTERVAL '{seconds} seconds'")
        return f"{column} = date_bin({stride}, {column}, TIMESTAMPTZ '1970-01-01 00:00:00+00')"

    def any_nan(self, columns: Sequence[str]) -> str:
        return _any(f"{c} = 'NaN'::float8" for c in columns)

    def any_infinite(self, columns: Sequence[str]) -> str:
        return _any(f"abs({c}) = 'Infinity'::float8" for c in columns)

    def time_key(self, column: str) -> str:
        return column

    def longer_than(self, earlier: str, later: str, seconds: int) -> str:
        return f"{later} - {earlier} > INTERVAL '{seconds} seconds'"

    def missing_bars(self, earlier: str, later: str, seconds: int) -> str:
        return f"EXTRACT(EPOCH FROM {later} - {earlier})::bigint / {seconds} - 1"
