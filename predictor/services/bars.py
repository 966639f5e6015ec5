"""Writing bars into the store: idempotent, fast, one transaction per batch.

Every writer of bars (CSV import, CoinAPI update) goes through `insert_bars`, so the rules
live in one place:

- a bar already stored is never changed or duplicated, enforced by the database (the unique
  constraint plus INSERT OR IGNORE / ON CONFLICT DO NOTHING), not by a read-then-write race;
- except a provisional bar: a series' newest bar, possibly still forming when it was stored.
  The next batch that holds its time replaces it with the complete bar;
- a series keeps to one exchange unless the user asks to mix them (`check_same_exchange`);
- the series' rollups (hourly and daily buckets, services.rollups) are refreshed for the
  buckets a batch touched, in the batch's transaction; deleting bars goes through
  `delete_bars_where` for the same reason.

Why not `bulk_create(ignore_conflicts=True)`: it builds a model instance per row and a
multi-row INSERT per batch, several times slower than the engines' own bulk paths, and it
cannot say how many rows were really inserted. We use the fastest path each engine has and
keep bulk_create as the fallback for other engines:

- the fast path, for a batch whose time range holds no stored bar of the series (every
  chunk of a first import, every page of an update past the newest bar): the rows go
  straight into the table (sqlite3 executemany of a plain INSERT; PostgreSQL a binary COPY
  into the bar table itself), and their rollups are aggregated from the batch in numpy;
- otherwise (a re-import, an overlap, provisional bars to replace): INSERT OR IGNORE on
  SQLite, and on PostgreSQL a binary COPY into a staging table moved on by INSERT ... ON
  CONFLICT DO NOTHING, with the rollups refreshed in SQL.

If another writer stores a bar of the range between the emptiness check and the insert
(only possible on PostgreSQL; SQLite's IMMEDIATE transactions hold the write lock), the fast
path's unique violation rolls back to a savepoint and the batch takes the other path. The
SQL that differs by engine lives in predictor.sql.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import IntegrityError, connection, models, transaction

from predictor import caching, sql
from predictor.models import Stock, StockRollup
from predictor.services.rollups import add_rollups_of_new_bars, refresh_rollups
from utils.errors import CryptoOracleError

BAR_VALUE_FIELDS = ("open", "high", "low", "close", "volume")


def column_width(name: str) -> int:
    """The most characters a text column of the bar store (symbol, bar_length, exchange) holds."""
    field = Stock._meta.get_field(name)
    assert isinstance(field, models.CharField) and field.max_length is not None, name
    return field.max_length


class SeriesKeyError(CryptoOracleError):
    """A symbol, bar length or exchange that the bar store cannot hold as given."""


@dataclass(frozen=True)
class SeriesKey:
    """What every bar of one batch shares."""

    symbol: str
    bar_length: str
    exchange: str = ""
    source: str = ""

    def check(self) -> None:
        """Refuse names longer than their columns (SQLite would store them whole and
        PostgreSQL raise a DataError half-way through an import) and names holding a NUL
        character (PostgreSQL cannot store it; SQLite would cut the name there, so bars
        could land in another series)."""
        for name in ("symbol", "bar_length", "exchange", "source"):
            if "\x00" in getattr(self, name):
                raise SeriesKeyError(
                    f"the {name.replace('_', ' ')} {getattr(self, name)[:40]!r} holds a NUL "
                    "character, which the bar store cannot hold: remove it"
                )
        for name in ("symbol", "bar_length", "exchange"):
            value = getattr(self, name)
            limit = column_width(name)
            if len(value) > limit:
                raise SeriesKeyError(
                    f"the {name.replace('_', ' ')} {value[:40]!r}... is {len(value)} characters; "
                    f"the bar store holds at most {limit}: give a shorter one"
                )


@dataclass(frozen=True)
class InsertResult:
    inserted: int  # bars that were not stored before
    replaced: int  # provisional bars whose values this batch changed (all are confirmed)


def insert_bars(
    key: SeriesKey, bars: pd.DataFrame, *, provisional_time: datetime | None = None
) -> InsertResult:
    """Store bars not yet stored, replace provisional ones, and say how many of each.

    `bars` has a timezone-aware `time` column and the BAR_VALUE_FIELDS. The bar at
    `provisional_time`, if the batch has it and it becomes the series' newest, is stored as
    provisional. The batch is one transaction: an interruption leaves all of it or none.
    """
    if bars.empty:
        return InsertResult(0, 0)
    key.check()
    with transaction.atomic():
        _lock_series(key)
        fast = _insert_into_empty_range(key, bars)
        if fast is None:
            confirmed, changed = _replace_provisional(key, bars)
            new = bars[~bars["time"].isin(confirmed)] if confirmed else bars
            inserted = _insert_rows(key, new, skip_stored=True) if len(new) else 0
        else:
            confirmed, changed, inserted = [], 0, fast
        marked = provisional_time is not None and _mark_provisional(
            key, pd.Timestamp(provisional_time), bars
        )
        if fast is not None:
            add_rollups_of_new_bars(
                key.symbol,
                key.bar_length,
                bars,
                provisional_time=provisional_time if marked else None,
            )
        elif inserted or confirmed or marked:
            refresh_rollups(key.symbol, key.bar_length, bars["time"])
        if inserted or confirmed or marked:
            caching.bump()
    return InsertResult(inserted, changed)


def _lock_series(key: SeriesKey) -> None:
    """Hold the series' write lock until the transaction ends: the fast path's rollups are
    aggregated from the batch alone, so no other writer may add a bar to its range (at a
    time the batch lacks, which no unique violation would reveal) between the emptiness
    check and the commit. SQLite's IMMEDIATE transactions already hold the database's."""
    statement = sql.series_write_lock()
    if statement:
        with connection.cursor() as cursor:
            cursor.execute(statement, [f"bars:{key.symbol}:{key.bar_length}"])


def _range_is_empty(key: SeriesKey, times: pd.Series) -> bool:
    """Whether the series holds no bar from the first to the last of `times` (one probe of
    the unique index)."""
    stored = series_queryset(key.symbol, key.bar_length)
    return not stored.filter(time__gte=times.min(), time__lte=times.max()).exists()


def _insert_into_empty_range(key: SeriesKey, bars: pd.DataFrame) -> int | None:
    """The fast path: insert the batch straight in if the series holds no bar between its
    first and last time; the rows inserted, or None where the batch must take the path that
    skips stored bars and replaces provisional ones."""
    if not sql.supported() or bars["time"].duplicated().any():
        return None
    if not _range_is_empty(key, bars["time"]):
        return None
    try:
        with transaction.atomic():  # a savepoint: a clash rolls back this insert alone
            return _insert_rows(key, bars, skip_stored=False)
    except IntegrityError:  # another writer stored one of these bars since the check
        return None


def delete_bars_where(condition: str, params: list) -> int:
    """DELETE the bars matching a raw SQL condition on the bar table, refresh the rollup
    buckets they were in, and return how many were deleted; one transaction.

    The times are read first, so only the buckets that lose a bar are aggregated again.
    """
    table = sql.quote(Stock._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT symbol, bar_length, time FROM {table} WHERE {condition}", params)
        doomed = pd.DataFrame(cursor.fetchall(), columns=["symbol", "bar_length", "time"])
        cursor.execute(f"DELETE FROM {table} WHERE {condition}", params)
        deleted = cursor.rowcount
        for (symbol, bar_length), rows in doomed.groupby(["symbol", "bar_length"]):
            refresh_rollups(symbol, bar_length, rows["time"].tolist())
        if deleted:
            caching.bump()
    return deleted


def series_queryset(symbol: str, bar_length: str):
    return Stock.objects.filter(symbol=symbol, bar_length=bar_length)


def _insert_rows(key: SeriesKey, bars: pd.DataFrame, *, skip_stored: bool) -> int:
    """Insert the bars by the engine's bulk path; the rows inserted. With `skip_stored`
    a bar already stored is skipped; without, it raises IntegrityError (the fast path)."""
    if sql.vendor() == "sqlite":
        return _insert_sqlite(key, bars, skip_stored=skip_stored)
    if sql.vendor() == "postgresql":
        if skip_stored:
            return _insert_postgresql(key, bars)
        return _copy_into_bar_table(key, bars)
    return _insert_generic(key, bars)


def _replace_provisional(key: SeriesKey, bars: pd.DataFrame) -> tuple[list[pd.Timestamp], int]:
    """Overwrite the series' provisional bars that this batch holds: (their times, how many
    of them the batch changed)."""
    times = bars["time"]
    stored = series_queryset(key.symbol, key.bar_length).filter(
        provisional=True, time__gte=times.min(), time__lte=times.max()
    )
    by_time = bars.set_index("time")
    confirmed, changed = [], 0
    for bar_id, time, *old in stored.values_list("id", "time", *BAR_VALUE_FIELDS):
        stamp = pd.Timestamp(time)
        if stamp not in by_time.index:
            continue
        new = [float(by_time.at[stamp, name]) for name in BAR_VALUE_FIELDS]
        Stock.objects.filter(id=bar_id).update(
            **dict(zip(BAR_VALUE_FIELDS, new, strict=True)),
            exchange=key.exchange,
            source=key.source,
            provisional=False,
        )
        confirmed.append(stamp)
        changed += new != old
    return confirmed, changed


def _mark_provisional(key: SeriesKey, time: pd.Timestamp, bars: pd.DataFrame) -> bool:
    """The batch's bar at `time` is provisional while nothing newer is stored; says whether
    a bar was marked."""
    series = series_queryset(key.symbol, key.bar_length)
    if (bars["time"] == time).any() and not series.filter(time__gt=time).exists():
        return series.filter(time=time).update(provisional=True) > 0
    return False


def series_exchange(symbol: str, bar_length: str) -> str | None:
    """The exchange a stored series continues from (its newest bar's); None if not stored."""
    newest = series_queryset(symbol, bar_length).order_by("-time").values("exchange").first()
    return None if newest is None else newest["exchange"]


def check_same_exchange(
    symbol: str, bar_length: str, *, stored: str, incoming: str, how_to_separate: str
) -> None:
    """Refuse bars from another exchange than the stored series': a series that silently
    switches exchange shows jumps that are not in any market. Names compare case-blind;
    a series or file with no exchange recorded counts as its own, unknown, exchange."""
    if stored.casefold() == incoming.casefold():
        return
    raise SeriesKeyError(
        f"{symbol} {bar_length}: the stored bars come from {stored or 'an unknown exchange'} "
        f"but these come from {incoming or 'an unknown exchange'}; mixing exchanges in one "
        f"series is refused ({how_to_separate}, or pass --allow-exchange-mix to mix them)"
    )


def refresh_planner_statistics() -> None:
    """Let the query planner see a bulk load at once instead of after autovacuum's delay
    (see sql.analyze): the bars and their rollups."""
    with connection.cursor() as cursor:
        for statement in sql.analyze([Stock._meta.db_table, StockRollup._meta.db_table]):
            cursor.execute(statement)


def sqlite_datetime_text(times: pd.Series) -> np.ndarray:
    """UTC times as Django's SQLite backend stores them: 'YYYY-MM-DD HH:MM:SS', with
    '.ffffff' only on a time that has a fraction of a second (as str(datetime) writes it);
    the same instant must always be the same text, or the unique index would not see it.

    Formatting millions of datetimes one by one takes seconds; numpy does it in one pass.
    """
    values = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    whole = values.astype("datetime64[s]")
    text = _iso_with_space(np.datetime_as_string(whole, unit="s"))
    fractional = values != whole
    if fractional.any():
        text = text.astype(object)
        text[fractional] = _iso_with_space(np.datetime_as_string(values[fractional], unit="us"))
    return text


def _iso_with_space(text: np.ndarray) -> np.ndarray:
    chars = text.astype(f"U{text.dtype.itemsize // 4}").view("U1").reshape(len(text), -1)
    chars[:, 10] = " "  # ISO 'T' separator -> Django's space
    return chars.view(text.dtype).ravel()


def _value_columns(bars: pd.DataFrame) -> list[list[float]]:
    return [bars[name].to_numpy(dtype="float64").tolist() for name in BAR_VALUE_FIELDS]


def _insert_sqlite(key: SeriesKey, bars: pd.DataFrame, *, skip_stored: bool) -> int:
    """executemany of one prepared INSERT; `skip_stored` makes it INSERT OR IGNORE.

    The batch's symbol, bar length, exchange and source are written into the statement as
    literals (quoted by SQLite itself) rather than bound again for every row: measured on
    2M minute rows, binding six parameters a row instead of ten saves 8-9 % of the insert.
    """
    table = Stock._meta.db_table
    rows = zip(sqlite_datetime_text(bars["time"]).tolist(), *_value_columns(bars), strict=True)
    symbol, bar_length, exchange, source = sql.literals(
        [key.symbol, key.bar_length, key.exchange, key.source]
    )
    values = (
        f"VALUES ({symbol}, {bar_length}, %s, %s, %s, %s, %s, %s, {exchange}, {source}, "
        f"{sql.false()})"
    )
    if skip_stored:
        statement = sql.insert_ignoring_conflicts(
            table, _STOCK_COLUMNS, values, conflict=_STOCK_KEY
        )
    else:
        statement = sql.insert(table, _STOCK_COLUMNS, values)
    with connection.cursor() as cursor:
        cursor.executemany(statement, list(rows))
        return cursor.rowcount


_STOCK_COLUMNS = (
    "symbol",
    "bar_length",
    "time",
    *BAR_VALUE_FIELDS,
    "exchange",
    "source",
    "provisional",
)
_STOCK_KEY = ("symbol", "bar_length", "time")
_STAGING = "stock_import_staging"

_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")
_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + np.array([0, 0], dtype=">i4").tobytes()
_PG_COPY_TRAILER = np.array([-1], dtype=">i2").tobytes()


def postgresql_binary_copy(
    bars: pd.DataFrame,
    *,
    leading: tuple[str, ...] = (),
    trailing: tuple[str | bool, ...] = (),
) -> io.BytesIO:
    """The bars as PostgreSQL's binary COPY stream: per row the `leading` constants, then
    (time timestamptz, 5 x float8), then the `trailing` constants (text or boolean).

    Formatting millions of floats as text costs more than the database spends storing them;
    the binary format is a fixed-width record numpy lays out in one pass, and it keeps every
    bit of each double. A constant is the same bytes in every record, so it costs nothing
    to repeat.
    """
    constants = {
        f"{place}{index}": bytes([value]) if isinstance(value, bool) else value.encode()
        for place, values in (("leading", leading), ("trailing", trailing))
        for index, value in enumerate(values)
    }

    def constant_fields(place: str) -> list[tuple[str, str]]:
        # numpy has no zero-width bytes field: an empty text is its length alone
        return [
            field
            for name, data in constants.items()
            if name.startswith(place)
            for field in [(f"{name}_len", ">i4")] + ([(name, f"S{len(data)}")] if data else [])
        ]

    fields = [("count", ">i2"), *constant_fields("leading"), ("time_len", ">i4"), ("time", ">i8")]
    for name in BAR_VALUE_FIELDS:
        fields += [(f"{name}_len", ">i4"), (name, ">f8")]
    fields += constant_fields("trailing")
    records = np.empty(len(bars), dtype=fields)
    records["count"] = len(constants) + 1 + len(BAR_VALUE_FIELDS)
    for name, data in constants.items():
        records[f"{name}_len"] = len(data)
        if data:
            records[name] = data
    records["time_len"] = 8
    utc = bars["time"].dt.tz_convert("UTC").to_numpy(dtype="datetime64[us]")
    records["time"] = (utc - _PG_EPOCH).astype("int64")
    for name in BAR_VALUE_FIELDS:
        records[f"{name}_len"] = 8
        records[name] = bars[name].to_numpy(dtype="float64")
    return io.BytesIO(_PG_COPY_HEADER + records.tobytes() + _PG_COPY_TRAILER)


def _copy_into_bar_table(key: SeriesKey, bars: pd.DataFrame) -> int:
    """PostgreSQL's fastest path: one binary COPY of whole rows into the bar table."""
    names = ", ".join(sql.quote(column) for column in _STOCK_COLUMNS)
    stream = postgresql_binary_copy(
        bars,
        leading=(key.symbol, key.bar_length),
        trailing=(key.exchange, key.source, False),
    )
    # wrap_database_errors: the driver's own cursor raises the driver's exceptions, and the
    # fast path's caller catches Django's IntegrityError.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.cursor.copy_expert(
            f"COPY {sql.quote(Stock._meta.db_table)} ({names}) FROM STDIN WITH (FORMAT binary)",
            stream,
        )
        return cursor.rowcount


def _insert_postgresql(key: SeriesKey, bars: pd.DataFrame) -> int:
    table = Stock._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(sql.postgresql_staging_table(_STAGING))
        # ON COMMIT only empties the table when the outermost transaction ends; inside a
        # caller's atomic() block the previous batch would still be there.
        cursor.execute(f"TRUNCATE {_STAGING}")
        cursor.cursor.copy_expert(
            f"COPY {_STAGING} FROM STDIN WITH (FORMAT binary)", postgresql_binary_copy(bars)
        )
        cursor.execute(
            sql.insert_ignoring_conflicts(
                table,
                _STOCK_COLUMNS,
                "SELECT %s, %s, time, open, high, low, close, volume, %s, %s, "
                f"{sql.false()} FROM {_STAGING}",
                conflict=_STOCK_KEY,
            ),
            [key.symbol, key.bar_length, key.exchange, key.source],
        )
        return cursor.rowcount


def _insert_generic(key: SeriesKey, bars: pd.DataFrame) -> int:
    series = Stock.objects.filter(symbol=key.symbol, bar_length=key.bar_length)
    times = bars["time"]
    window = series.filter(time__gte=times.min(), time__lte=times.max())
    before = window.count()
    Stock.objects.bulk_create(
        (
            Stock(
                symbol=key.symbol,
                bar_length=key.bar_length,
                time=time,
                exchange=key.exchange,
                source=key.source,
                **dict(zip(BAR_VALUE_FIELDS, values, strict=True)),
            )
            for time, *values in zip(times.dt.to_pydatetime(), *_value_columns(bars), strict=True)
        ),
        batch_size=5000,
        ignore_conflicts=True,
    )
    return window.count() - before
