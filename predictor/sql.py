"""Every piece of SQL that differs between SQLite and PostgreSQL, in one place.

The bar store runs on both engines (SQLite for a laptop, PostgreSQL for minute-scale
history), and the two disagree on the few things our queries need: how a time falls into a
bucket, how a time is stored (SQLite: text 'YYYY-MM-DD HH:MM:SS' in UTC; PostgreSQL:
timestamptz), how "insert unless present" is spelled, how a boolean aggregates, and which
planner settings a large aggregate needs. Callers build their queries from these pieces and
never test `connection.vendor` themselves, so supporting another engine means editing this
module only (the way Freqtrade keeps its storage behind one handler).

Engines other than SQLite and PostgreSQL get `supported() == False`; callers then take their
portable paths (the ORM, pandas), which are slower but correct.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from django.db import connection

EPOCH_ORIGIN = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"


def vendor() -> str:
    return connection.vendor


def supported() -> bool:
    """Whether the engine-specific fast paths (in-database aggregation, rollups) apply."""
    return connection.vendor in ("sqlite", "postgresql")


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def time_param(value: datetime) -> object:
    """A time as a raw-SQL parameter compares against stored times: SQLite stores naive UTC
    text, and sqlite3's own datetime adapter would append '+00:00' and compare wrongly."""
    return connection.ops.adapt_datetimefield_value(value)


def epoch_seconds(column: str) -> str:
    """Whole seconds since 1970 of a stored time (fractions dropped)."""
    if is_postgresql():
        return f"EXTRACT(EPOCH FROM {column})::bigint"
    if sqlite3.sqlite_version_info >= (3, 38):
        return f"unixepoch({column})"
    return f"CAST(strftime('%%s', {column}) AS INTEGER)"


def bucket(seconds: int, column: str) -> str:
    """The start of the `seconds`-long bucket holding `column`, origin 1970-01-01 UTC, in
    the engine's own terms (PostgreSQL: timestamptz; SQLite: epoch seconds).

    Both are cheap per-row arithmetic on the stored time: PostgreSQL's date_bin() (14+) and
    SQLite's unixepoch() avoid the text formatting of strftime and the numeric division of
    EXTRACT(EPOCH), which were the slow part of aggregating millions of bars.
    """
    if is_postgresql():
        return f"date_bin('{seconds} seconds', {column}, {EPOCH_ORIGIN})"
    return f"({epoch_seconds(column)} / {seconds}) * {seconds}"


def bucket_epoch(expression: str) -> str:
    """Epoch seconds of a value `bucket()` produced."""
    if is_postgresql():
        return f"EXTRACT(EPOCH FROM {expression})::bigint"
    return expression


def bucket_time(expression: str) -> str:
    """A value `bucket()` produced, as a time column stores it."""
    if is_postgresql():
        return expression
    return f"datetime({expression}, 'unixepoch')"


def bucket_sql(seconds: int, column: str) -> tuple[str, str]:
    """(bucket of `column`, the bucket's start in epoch seconds read from `g.bucket`), the
    pair the GROUP BY queries of the selectors use."""
    return bucket(seconds, column), bucket_epoch("g.bucket")


def epoch_microseconds(column: str) -> str | None:
    """Microseconds since 1970 of a stored time, for reading a time column straight into
    numpy; None where the engine hands over its stored text instead (SQLite)."""
    if is_postgresql():
        return f"(EXTRACT(EPOCH FROM {column}) * 1000000)::bigint"
    return None


def any_true(column: str) -> str:
    """Aggregate: whether any row's boolean `column` is true."""
    if is_postgresql():
        return f"bool_or({column})"
    return f"MAX({column})"


def false() -> str:
    return "FALSE" if is_postgresql() else "0"


def aggregate_settings() -> list[str]:
    """Statements to run (inside the transaction) before aggregating a large range.

    PostgreSQL's planner cannot estimate the number of buckets and guesses one per row; that
    guess would spill the aggregate to disk and pay for JIT compilation.
    """
    if is_postgresql():
        return ["SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off"]
    return []


def literals(values: Sequence[str]) -> list[str]:
    """Text values as SQL literals to write into a statement, quoted by the engine itself
    (SQLite's quote(), PostgreSQL's quote_literal()) and with '%' doubled for the
    %s-placeholder statements Django's cursors take."""
    function = "quote_literal" if is_postgresql() else "quote"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join(f"{function}(CAST(%s AS TEXT))" for _ in values), list(values)
        )
        quoted = cursor.fetchone()
    return [literal.replace("%", "%%") for literal in quoted]


def insert(table: str, columns: Sequence[str], rows: str) -> str:
    """Plain INSERT of `rows` (a VALUES or SELECT clause): a stored key is an IntegrityError."""
    names = ", ".join(quote(c) for c in columns)
    return f"INSERT INTO {quote(table)} ({names}) {rows}"


def insert_ignoring_conflicts(
    table: str, columns: Sequence[str], rows: str, *, conflict: Sequence[str]
) -> str:
    """INSERT of `rows` (a VALUES or SELECT clause) that skips rows whose `conflict` key is
    already stored, enforced by the database rather than by a read-then-write race."""
    names = ", ".join(quote(c) for c in columns)
    if is_postgresql():
        keys = ", ".join(quote(c) for c in conflict)
        return f"INSERT INTO {quote(table)} ({names}) {rows} ON CONFLICT ({keys}) DO NOTHING"
    # INSERT OR IGNORE also ignores a NOT NULL violation, so callers name every column.
    return f"INSERT OR IGNORE INTO {quote(table)} ({names}) {rows}"


def series_write_lock() -> str | None:
    """A statement taking a lock named by its one parameter until the transaction ends,
    where writers of one series must queue on more than the unique index; None on SQLite,
    whose IMMEDIATE transactions already let one writer at a time in."""
    if is_postgresql():
        return "SELECT pg_advisory_xact_lock(hashtext(%s))"
    return None


def postgresql_staging_table(name: str) -> str:
    """A session-local table that a binary COPY fills before INSERT ... SELECT moves its rows
    on; PostgreSQL only."""
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {name} ("
        "time timestamptz, open double precision, high double precision, "
        "low double precision, close double precision, volume double precision"
        ") ON COMMIT DELETE ROWS"
    )


def analyze(tables: Sequence[str]) -> list[str]:
    """Statements that refresh the planner's statistics after a bulk load.

    Without them PostgreSQL plans the aggregate for a nearly empty table and picks sorts that
    spill to disk; ANALYZE samples the table and takes well under a second. SQLite's planner
    needs no statistics for these queries.
    """
    if is_postgresql():
        return [f"ANALYZE {quote(table)}" for table in tables]
    return []


def first_bar_values_over(
    *,
    source: str,
    key: Sequence[str],
    seconds: int,
    count: str,
    provisional: str,
    where: str,
) -> str:
    """SELECT of one row per `seconds` bucket of `source`'s rows matching `where`:
    (bucket as a stored time, open, high, low, close, volume, bar count, provisional).

    High, low, volume, count and provisional are plain aggregates; open and close are looked
    up by the bucket's first and last opening time through the unique index (one probe per
    bucket), which keeps this to one scan of the range on every engine. `key` names the
    columns (besides time) that pick one series out of `source`; `where` filters on them
    first, in the same order, so the probes take the same parameters.
    """
    table = quote(source)
    time = f"{table}.{quote('time')}"
    match = " AND ".join(f"s.{quote(column)} = %s" for column in key)
    lookup = f"SELECT s.{{}} FROM {table} s WHERE {match} AND s.{quote('time')} = g.{{}}"
    inner = (
        f"SELECT {bucket(seconds, time)} AS bucket, MAX(high) AS max_high, "
        f"MIN(low) AS min_low, SUM(volume) AS total_volume, {count} AS bar_count, "
        f"{provisional} AS any_provisional, MIN({time}) AS first_time, "
        f"MAX({time}) AS last_time FROM {table} WHERE {where} GROUP BY 1"
    )
    return (
        f"SELECT {bucket_time('g.bucket')}, ({lookup.format('open', 'first_time')}), "
        f"g.max_high, g.min_low, ({lookup.format('close', 'last_time')}), "
        f"g.total_volume, g.bar_count, g.any_provisional FROM ({inner}) g"
    )
