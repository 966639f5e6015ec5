"""A real HTTP server speaking CoinAPI's OHLCV history protocol, for the update_stocks tests.

It serves known bar series over real sockets (no mocking of HTTP), so the client's timeouts,
retries and body handling meet the same failures they would meet on the internet. It can be
told to misbehave: once per request through `faults` (consumed in order), or for every
request through its attributes (page_cap, overlap, invalid_times, ignore_time_end).

It has a clock of its own (`clock`), which may lag ours: a bar whose period has not begun
on its clock is not served, and the bar of the period its clock is in is served as it
looks while still forming (`still_forming`), as CoinAPI serves the current period.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pandas as pd

# What a fault in `faults` makes the server do for one request.
FAULTS = (
    "429",  # Too Many Requests, Retry-After: retry_after seconds
    "500",  # Internal Server Error
    "503",  # Service Unavailable (no Retry-After)
    "503_wait",  # Service Unavailable, Retry-After: retry_after seconds (maintenance)
    "hang",  # say nothing for hang_seconds (past the client's read timeout)
    "hang_body",  # send the headers and half the body, then say nothing
    "cut",  # send the headers and half the body, then close the connection
    "drop",  # close the connection without answering
    "garbage",  # 200 with a body that is not JSON
    "object",  # 200 with a JSON object instead of a list
    "short",  # a page of half the bars it should hold, though more follow
    "overlap",  # the page starts two bars before time_start
)


def make_series(start: str, count: int, freq: str = "1h") -> pd.DataFrame:
    """Deterministic, valid bars: time (UTC) and open, high, low, close, volume."""
    times = pd.date_range(start, periods=count, freq=freq, tz="UTC")
    opens = [100.0 + i for i in range(count)]
    return pd.DataFrame(
        {
            "time": times,
            "open": opens,
            "high": [o + 2.0 for o in opens],
            "low": [o - 1.0 for o in opens],
            "close": [o + 0.5 for o in opens],
            "volume": [1.0 + i / 8 for i in range(count)],
        }
    )


def still_forming(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars as they look part-way through their period: a tenth of the volume, and the
    price still where it opened (a valid bar, just not the complete one)."""
    partial = bars.copy()
    partial["close"] = partial["open"]
    partial["high"] = partial["open"] + 1.0
    partial["low"] = partial["open"] - 0.5
    partial["volume"] = partial["volume"] / 10
    return partial


def coinapi_time(moment: datetime) -> str:
    """CoinAPI's time format: 2021-01-01T00:00:00.0000000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + ".0000000Z"


class CoinApiServer:
    """Serves {symbol_id: bars} for one period on 127.0.0.1 and a free port."""

    def __init__(
        self,
        series: dict[str, pd.DataFrame],
        *,
        key: str = "test-key",
        period_id: str = "1HRS",
        bar: timedelta = timedelta(hours=1),
    ) -> None:
        self.series = {
            sid: bars.sort_values("time").reset_index(drop=True) for sid, bars in series.items()
        }
        self.key = key
        self.period_id = period_id
        self.bar = bar
        self.faults: list[str | None] = []
        self.page_cap: int | None = None
        self.overlap = False
        self.invalid_times: set[pd.Timestamp] = set()
        self.ignore_time_end = False
        self.clock: datetime | None = None  # the server's now; None: every bar is complete
        self.retry_after = 1
        self.hang_seconds = 2.0
        self.requests: list[dict] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address
        return f"http://{host}:{port}"

    def __enter__(self) -> CoinApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def page(self, symbol_id: str, start: datetime, end: datetime, limit: int, fault) -> list:
        bars = self.series[symbol_id]
        if fault == "overlap" or self.overlap:
            start = start - 2 * self.bar
        chosen = bars[bars["time"] >= start]
        if not self.ignore_time_end:
            chosen = chosen[chosen["time"] < end]
        if self.clock is not None:
            chosen = self.as_of_clock(chosen)
        chosen = chosen.head(limit)
        if self.page_cap is not None:
            chosen = chosen.head(self.page_cap)
        if fault == "short":
            chosen = chosen.head(max(len(chosen) // 2, 1))
        return [self.item(row) for row in chosen.itertuples(index=False)]

    def as_of_clock(self, bars: pd.DataFrame) -> pd.DataFrame:
        """The bars begun by the server's clock, the one still forming on it partial."""
        forming = pd.Timestamp(self.clock).floor(pd.Timedelta(self.bar))
        begun = bars[bars["time"] <= forming].copy()
        now_forming = begun["time"] == forming
        begun[now_forming] = still_forming(begun[now_forming])
        return begun

    def item(self, row) -> dict:
        start = row.time.to_pydatetime()
        item = {
            "time_period_start": coinapi_time(start),
            "time_period_end": coinapi_time(start + self.bar),
            "time_open": coinapi_time(start + timedelta(seconds=1)),
            "time_close": coinapi_time(start + self.bar - timedelta(seconds=1)),
            "price_open": row.open,
            "price_high": row.high,
            "price_low": row.low,
            "price_close": row.close,
            "volume_traded": row.volume,
            "trades_count": 7,
        }
        if row.time in self.invalid_times:
            item["price_high"] = "n/a"
        return item


def _query_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class _Handler(BaseHTTPRequestHandler):
    coinapi: CoinApiServer  # set per server by _handler_for (self.server is the HTTP server)
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        key = self.headers.get("X-CoinAPI-Key")
        fault = self.coinapi.next_fault()
        self.coinapi.requests.append({"path": url.path, "query": query, "key": key, "fault": fault})
        if key != self.coinapi.key:
            return self.send_json(401, {"error": "Invalid API key"})
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v1", "ohlcv"] or parts[3] != "history":
            return self.send_json(404, {"error": "Not found"})
        if parts[2] not in self.coinapi.series:
            return self.send_json(400, {"error": f"Unknown symbol {parts[2]}"})
        if query.get("period_id") != self.coinapi.period_id:
            return self.send_json(400, {"error": "Wrong period_id"})
        if self.misbehave_before_body(fault):
            return None
        items = self.coinapi.page(
            parts[2],
            _query_time(query["time_start"]),
            _query_time(query["time_end"]),
            int(query.get("limit", 100)),
            fault,
        )
        return self.send_items(items, fault)

    def misbehave_before_body(self, fault: str | None) -> bool:
        if fault == "429":
            self.send_json(
                429, {"error": "Too many requests"}, {"Retry-After": str(self.coinapi.retry_after)}
            )
        elif fault == "503_wait":
            self.send_json(
                503,
                {"error": "Down for maintenance"},
                {"Retry-After": str(self.coinapi.retry_after)},
            )
        elif fault in ("500", "503"):
            self.send_json(int(fault), {"error": "Server error"})
        elif fault == "hang":
            self.coinapi.stopping.wait(self.coinapi.hang_seconds)
            self.close_connection = True
        elif fault == "drop":
            self.hang_up()
            self.close_connection = True
        elif fault == "garbage":
            self.send_body(200, b"<html>502 Bad Gateway</html>")
        elif fault == "object":
            self.send_json(200, {"data": []})
        else:
            return False
        return True

    def send_items(self, items: list, fault: str | None) -> None:
        body = json.dumps(items).encode()
        if fault not in ("cut", "hang_body"):
            return self.send_body(200, body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        if fault == "hang_body":
            self.coinapi.stopping.wait(self.coinapi.hang_seconds)
        self.hang_up()
        self.close_connection = True
        return None

    def hang_up(self) -> None:
        with contextlib.suppress(OSError):  # the client may have given up first
            self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def send_json(self, status: int, payload, headers: dict | None = None) -> None:
        self.send_body(status, json.dumps(payload).encode(), headers)

    def send_body(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _handler_for(server: CoinApiServer) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"coinapi": server})
