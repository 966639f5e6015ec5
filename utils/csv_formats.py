"""Read the CryptoDataDownload family of OHLCV CSV layouts into one clean shape.

CryptoDataDownload has published the same data in several layouts over the years
(a "Created on ..." line or none, `Unix Timestamp`/`unix`/no unix column, seconds or
milliseconds, `Volume`/`Volume BTC`/`Volume From`, `2019-07-30 01-AM` dates, newest or
oldest bar first). Everything here turns any of them into chunks of bars with a
timezone-aware UTC opening time, and lists the rows it cannot trust instead of storing them.

Which time column to believe, the bar length and duplicates are decided for the whole file
in utils.bar_files, which is what the importer and the notebooks call.

No Django imports: notebooks and benchmarks read files with this module alone.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from utils.bar_checks import PRICE_FIELDS, untrusted_reasons
from utils.errors import CryptoOracleError
from utils.timeframes import timeframe_from_seconds

KNOWN_EXCHANGES = {
    "gemini": "Gemini",
    "binance": "Binance",
    "binanceus": "BinanceUS",
    "bitstamp": "Bitstamp",
    "coinbase": "Coinbase",
    "gdax": "Coinbase",
    "kraken": "Kraken",
    "bitfinex": "Bitfinex",
    "poloniex": "Poloniex",
    "kucoin": "KuCoin",
}

# File-name tokens CryptoDataDownload uses for the bar length.
_FILENAME_TIMEFRAMES = {
    "minute": "1m",
    "min": "1m",
    "1min": "1m",
    "1m": "1m",
    "hour": "1h",
    "hourly": "1h",
    "h": "1h",
    "1h": "1h",
    "1hr": "1h",
    "d": "1d",
    "day": "1d",
    "daily": "1d",
    "1d": "1d",
}

# Date layouts seen in these files, most common first; ISO 8601 catches the rest.
_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %I-%p",
    "%Y-%m-%d",
    "%m/%d/%Y %H:%M",
    "ISO8601",
)

_QUOTE_CURRENCIES = ("USDT", "USDC", "BUSD", "USD", "EUR", "GBP", "BTC", "ETH", "DAI", "JPY")
_BAD_LINE = re.compile(r"Skipping line (\d+): (.*)")


class CsvFormatError(CryptoOracleError):
    """The file cannot be read as an OHLCV CSV at all; the message says why."""


@dataclass(frozen=True)
class Rejection:
    """A row that was read but not stored, and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class CsvLayout:
    """Where each field lives in one file, found from its first lines and its name."""

    path: Path
    header_line: int  # 1-based line number of the column header
    columns: dict[str, str]  # our field name -> the file's column name
    exchange: str
    symbol_from_name: str | None
    timeframe_from_name: str | None

    @property
    def has_unix(self) -> bool:
        return "unix" in self.columns

    @property
    def has_date(self) -> bool:
        return "date" in self.columns


@dataclass
class BarChunk:
    """Up to `chunk_rows` rows of one file, parsed: trustworthy bars and rejected rows."""

    # One row per usable row of the file: a UTC time per time column the file has ("unix",
    # "date"; NaT where that column is blank or unreadable), the values, and its file line.
    bars: pd.DataFrame
    symbols: pd.Series  # the file's symbol column for `bars` (empty if it has none)
    rejected: list[Rejection] = field(default_factory=list)
    rows_read: int = 0
    first_data_line: int = 2  # file line of the row at index 0: bars keep file positions
    skipped_lines: tuple[int, ...] = ()  # malformed lines pandas dropped before this chunk's end


def file_lines(positions: np.ndarray, first_data_line: int, skipped: tuple[int, ...]) -> list[int]:
    """Row positions to file lines; lines pandas skipped (too many fields) shift the rest."""
    lines = np.asarray(positions, dtype="int64") + first_data_line
    for skipped_line in sorted(skipped):
        lines[lines >= skipped_line] += 1
    return lines.tolist()


def normalise_symbol(raw: str) -> str:
    """'BTC/USD', 'btc-usd' and 'BTCUSD' all name the same pair: BTCUSD."""
    return re.sub(r"[^A-Za-z0-9]", "", str(raw)).upper()


def base_currency(symbol: str) -> str | None:
    """The traded asset of a pair (BTC for BTCUSD), used to pick the right volume column."""
    for quote in _QUOTE_CURRENCIES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return None


def _normalise_header(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def _hints_from_filename(path: Path) -> tuple[str, str | None, str | None]:
    """Exchange, symbol and bar length from names like Gemini_BTCUSD_1h.csv."""
    tokens = [t for t in re.split(r"[_\-\s.]+", path.stem) if t]
    exchange = ""
    symbol = None
    timeframe = None
    for token in tokens:
        lower = token.lower()
        if not exchange and lower in KNOWN_EXCHANGES:
            exchange = KNOWN_EXCHANGES[lower]
        elif lower in _FILENAME_TIMEFRAMES:
            timeframe = _FILENAME_TIMEFRAMES[lower]
        elif symbol is None and re.fullmatch(r"[A-Za-z]{5,12}", token) and token.isupper():
            symbol = token
    return exchange, symbol, timeframe


def _pick_volume_column(headers: dict[str, str], symbol_hint: str | None) -> str | None:
    """The base-currency volume: `Volume`, `Volume BTC` for BTCUSD, `Volume From`, ..."""
    volume_columns = {norm: raw for norm, raw in headers.items() if norm.startswith("volume")}
    if not volume_columns:
        return None
    for preferred in ("volume", "volume from"):
        if preferred in volume_columns:
            return volume_columns[preferred]
    base = base_currency(symbol_hint) if symbol_hint else None
    if base and f"volume {base.lower()}" in volume_columns:
        return volume_columns[f"volume {base.lower()}"]
    quote_names = {f"volume {q.lower()}" for q in _QUOTE_CURRENCIES} | {"volume to"}
    for norm, raw in volume_columns.items():
        if norm not in quote_names:
            return raw
    return next(iter(volume_columns.values()))


def _read_head(path: Path, lines: int = 3) -> list[str]:
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            return [handle.readline() for _ in range(lines)]
    except UnicodeDecodeError as error:
        raise CsvFormatError(f"{path}: not a UTF-8 text file ({error.reason})") from error
    except OSError as error:
        raise CsvFormatError(f"{path}: cannot open ({error.strerror})") from error


def _first_data_symbol(path: Path, header_line: int, column: str) -> str | None:
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        for _ in range(header_line - 1):
            handle.readline()
        reader = csv.DictReader(handle)
        for row in reader:
            value = (row.get(column) or "").strip()
            if value:
                return normalise_symbol(value)
    return None


def _time_and_symbol_columns(headers: dict[str, str]) -> dict[str, str]:
    """The file's unix-time, date and symbol columns, by their normalised header names."""
    columns: dict[str, str] = {}
    unix = next((headers[n] for n in ("unix timestamp", "unix", "timestamp") if n in headers), None)
    if unix is not None:
        columns["unix"] = unix
    date = next((headers[n] for n in ("date", "datetime", "time") if n in headers), None)
    if date is not None:
        columns["date"] = date
    if "symbol" in headers:
        columns["symbol"] = headers["symbol"]
    return columns


def detect_layout(path: Path) -> CsvLayout:
    """Find the header line and map the file's columns onto ours."""
    head = _read_head(path)
    if not head[0]:
        raise CsvFormatError(f"{path}: the file is empty")
    header_index = 0
    if "cryptodatadownload" in head[0].lower() or head[0].lower().startswith("created on"):
        header_index = 1
    header_text = head[header_index].strip("\r\n")
    if not header_text:
        raise CsvFormatError(f"{path}: no column header on line {header_index + 1}")
    raw_headers = next(csv.reader([header_text]))
    headers = {_normalise_header(h): h for h in raw_headers if h.strip()}
    columns = _time_and_symbol_columns(headers)
    missing = [f for f in PRICE_FIELDS if f not in headers]
    if missing or not ({"unix", "date"} & columns.keys()):
        need = ", ".join(missing) if missing else "a Unix Timestamp or Date column"
        raise CsvFormatError(
            f"{path}: line {header_index + 1} is not an OHLCV header (missing {need}); "
            f"found columns: {', '.join(raw_headers)}"
        )
    for price in PRICE_FIELDS:
        columns[price] = headers[price]

    exchange, symbol_hint, timeframe_hint = _hints_from_filename(path)
    if "symbol" in columns:
        symbol_hint = _first_data_symbol(path, header_index + 1, columns["symbol"]) or symbol_hint
    volume = _pick_volume_column(headers, symbol_hint)
    if volume is None:
        raise CsvFormatError(f"{path}: no volume column (expected Volume, Volume BTC, ...)")
    columns["volume"] = volume
    return CsvLayout(
        path=path,
        header_line=header_index + 1,
        columns=columns,
        exchange=exchange,
        symbol_from_name=symbol_hint,
        timeframe_from_name=timeframe_hint,
    )


def unix_to_datetime(values: pd.Series) -> pd.Series:
    """Seconds, milliseconds or microseconds since the epoch, even mixed, to UTC times.

    CryptoDataDownload switched units part-way through some files, so the unit is decided
    per value by its magnitude: no bar of real data is older than 1973 (1e11 ms) or later
    than 5138 (1e11 s). Microsecond resolution, so a year-3000 typo is a time to reject, not
    an overflow that stops the file.
    """
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    scale = np.where(numbers >= 1e14, 1.0, np.where(numbers >= 1e11, 1e3, 1e6))
    micros = np.round(numbers * scale)
    valid = np.isfinite(micros) & (np.abs(micros) < 9.2e18)
    result = np.full(len(numbers), np.datetime64("NaT"), dtype="datetime64[us]")
    result[valid] = micros[valid].astype("int64").view("datetime64[us]")
    return pd.Series(result, index=values.index).dt.tz_localize("UTC")


def parse_dates(values: pd.Series) -> pd.Series:
    """Parse the Date column in any of the layouts above, as UTC; unparseable gives NaT.

    The common layout is tried on the text as it is; only what it cannot read is stripped
    of spaces and tried in every layout (stripping millions of dates costs more than parsing).
    """
    text = values.astype("string")
    parsed = pd.to_datetime(text, format=_DATE_FORMATS[0], errors="coerce", utc=True)
    parsed = parsed.dt.as_unit("us")
    todo = parsed.isna() & text.notna()
    if not todo.any():
        return parsed
    text = text.str.strip()
    for fmt in _DATE_FORMATS:
        if not todo.any():
            break
        attempt = pd.to_datetime(text[todo], format=fmt, errors="coerce", utc=True)
        parsed.loc[attempt.index] = attempt.dt.as_unit("us")
        todo = todo & parsed.isna()
    return parsed


def _candidate_times(raw: pd.DataFrame, layout: CsvLayout) -> pd.DataFrame:
    """Each time column the file has, parsed on its own: which one to believe is decided
    for the whole file (utils.bar_files), not row by row."""
    times = pd.DataFrame(index=raw.index)
    if layout.has_unix:
        times["unix"] = unix_to_datetime(raw["unix"])
    if layout.has_date:
        times["date"] = parse_dates(raw["date"])
    return times


def _rejection_reasons(bars: pd.DataFrame, raw: pd.DataFrame, times: pd.DataFrame) -> pd.Series:
    """One reason per row whose values, or every time column, cannot be used."""
    reasons = untrusted_reasons(bars)
    unparsed = times.isna().all(axis=1)
    if unparsed.any():
        source = raw["date"] if "date" in raw else raw["unix"]
        shown = source[unparsed].astype("string").fillna("")
        reasons[unparsed] = "date cannot be parsed: " + shown.map(repr)
    return reasons


def iter_bar_chunks(layout: CsvLayout, chunk_rows: int = 100_000) -> Iterator[BarChunk]:
    """Stream the file in chunks of bounded size; memory does not grow with the file.

    Every column is parsed, not just ours: with `usecols` pandas silently drops the extra
    fields of a malformed line instead of skipping it, and a line with a stray comma has
    its values shifted, so it must be rejected, never read.
    """
    ours = list(dict.fromkeys(layout.columns.values()))
    rename = {raw: name for name, raw in layout.columns.items()}
    first_data_line = layout.header_line + 1
    leading = _leading_long_lines(layout)
    skipped: list[int] = [r.line for r in leading]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        reader = pd.read_csv(
            layout.path,
            skiprows=[*range(layout.header_line - 1), *(line - 1 for line in skipped)],
            index_col=False,
            chunksize=chunk_rows,
            encoding="utf-8-sig",
            skip_blank_lines=False,
            on_bad_lines="warn",
            dtype={layout.columns[c]: "string" for c in ("date", "symbol") if c in layout.columns},
            skipinitialspace=True,
        )
        try:
            for raw in reader:
                raw = raw[ours].rename(columns=rename)
                bad_lines = _bad_line_rejections(caught)
                skipped.extend(r.line for r in bad_lines)
                rejected, leading = leading + bad_lines, []
                yield _parse_chunk(raw, layout, first_data_line, rejected, tuple(skipped))
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
            raise CsvFormatError(f"{layout.path}: cannot be parsed as CSV ({error})") from error


def _leading_long_lines(layout: CsvLayout) -> list[Rejection]:
    """Lines right below the header with more fields than it, which pandas cannot skip.

    pandas takes extra fields on the first data line for an unnamed index column and shifts
    every column of every row by one; with index_col=False it truncates them instead. So
    those lines are found here and left out of the read, like any other malformed line.
    """
    rejections = []
    with layout.path.open("r", encoding="utf-8-sig", newline="") as handle:
        for _ in range(layout.header_line - 1):
            handle.readline()
        rows = csv.reader(handle)
        expected = len(next(rows, []))
        for line, fields in enumerate(rows, start=layout.header_line + 1):
            if len(fields) <= expected:
                break
            rejections.append(Rejection(line, f"expected {expected} fields, saw {len(fields)}"))
    return rejections


def _bad_line_rejections(caught: list) -> list[Rejection]:
    """pandas skips rows with too many fields and warns; turn those warnings into rejections."""
    rejections = []
    for warning in caught:
        for number, reason in _BAD_LINE.findall(str(warning.message)):
            # pandas numbers lines from the top of the file, skipped rows included.
            rejections.append(Rejection(int(number), reason.strip()))
    caught.clear()
    return rejections


def _parse_chunk(
    raw: pd.DataFrame,
    layout: CsvLayout,
    first_data_line: int,
    rejected: list[Rejection],
    skipped: tuple[int, ...],
) -> BarChunk:
    raw = raw.dropna(how="all")  # blank lines: not rows, but they keep line numbers true
    times = _candidate_times(raw, layout)
    bars = pd.DataFrame(index=raw.index)
    for name in (*PRICE_FIELDS, "volume"):
        bars[name] = pd.to_numeric(raw[name], errors="coerce").astype("float64")
    reasons = _rejection_reasons(bars, raw, times)
    bad = reasons != ""
    lines = file_lines(raw.index[bad.to_numpy()], first_data_line, skipped)
    rows_read = len(raw) + len(rejected)  # pandas dropped the malformed lines from `raw`
    rejected = rejected + [Rejection(line, r) for line, r in zip(lines, reasons[bad], strict=True)]
    good = ~bad.to_numpy()
    bars = pd.concat([times, bars], axis=1)[good]
    bars["line"] = file_lines(bars.index.to_numpy(), first_data_line, skipped)
    symbols = raw["symbol"][good] if "symbol" in raw else pd.Series(dtype="string")
    return BarChunk(
        bars=bars,
        symbols=symbols,
        rejected=sorted(rejected, key=lambda r: r.line),
        rows_read=rows_read,
        first_data_line=first_data_line,
        skipped_lines=skipped,
    )


def infer_timeframe(times: pd.Series) -> str | None:
    """The bar length, as the most common spacing between consecutive distinct bars (the
    shortest of equally common ones). A sort and a hash count: numpy's unique on millions of
    times costs seconds."""
    seconds = np.sort(times.dropna().to_numpy(dtype="datetime64[s]").astype("int64"))
    steps = np.diff(seconds)
    steps = steps[steps > 0]
    if not len(steps):
        return None
    counts = pd.Series(steps).value_counts(sort=False)
    return timeframe_from_seconds(int(counts.index[counts == counts.max()].min()))


def count_data_lines(path: Path) -> int:
    """Lines in the file, counted in binary blocks: cheap enough to size a progress bar."""
    count = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")
