"""Shared fixtures: the hand-written CSV files, what each must become, and small helpers.

Expected bars are written out by hand from the fixture files, never computed by the code
under test, so a test fails when the importer and the file disagree.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

FIXTURES_DIR = Path(__file__).parent / "fixtures" / "csv"
REPO_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_DIR / "data"

Bar = tuple[datetime, float, float, float, float, float]  # time, open, high, low, close, volume


def utc(text: str) -> datetime:
    """'2020-01-01 04:00' as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class FixtureFile:
    """One hand-written CSV fixture and the bars it holds, oldest first."""

    name: str
    symbol: str
    bar_length: str
    exchange: str
    header_line: int
    volume_column: str
    bars: tuple[Bar, ...]

    @property
    def path(self) -> Path:
        return FIXTURES_DIR / self.name


def _bar(time: str, *values: float) -> Bar:
    open_, high, low, close, volume = map(float, values)
    return (utc(time), open_, high, low, close, volume)


def _bars(*rows: tuple) -> tuple[Bar, ...]:
    return tuple(_bar(*row) for row in rows)


FIXTURE_FILES: dict[str, FixtureFile] = {
    f.name: f
    for f in (
        FixtureFile(
            "Gemini_BTCUSD_1h.csv",
            "BTCUSD",
            "1h",
            "Gemini",
            2,
            "Volume",
            _bars(
                ("2020-01-01 00:00", 7150.0, 7165.0, 7140.0, 7160.0, 3.75),
                ("2020-01-01 01:00", 7160.0, 7180.0, 7150.0, 7175.5, 5.0),
                ("2020-01-01 02:00", 7175.5, 7190.0, 7160.0, 7180.0, 20.125),
                ("2020-01-01 03:00", 7180.0, 7205.0, 7170.0, 7200.0, 8.25),
                ("2020-01-01 04:00", 7200.0, 7230.5, 7190.25, 7215.75, 12.5),
            ),
        ),
        FixtureFile(
            "Binance_BTCUSDT_1h.csv",
            "BTCUSDT",
            "1h",
            "Binance",
            2,
            "Volume BTC",
            _bars(
                ("2021-03-01 00:00", 45134.11, 46571.16, 44950.0, 46285.48, 2710.6512),
                ("2021-03-01 01:00", 46285.49, 46734.0, 46088.13, 46516.98, 2112.4),
                ("2021-03-01 02:00", 46516.99, 46600.0, 46200.0, 46300.5, 1500.25),
                ("2021-03-01 03:00", 46300.51, 46800.0, 46250.0, 46750.0, 1800.5),
            ),
        ),
        FixtureFile(
            "Bitstamp_BTCUSD_1h.csv",
            "BTCUSD",
            "1h",
            "Bitstamp",
            2,
            "Volume BTC",
            _bars(
                ("2021-03-01 00:00", 45100.0, 46500.0, 44900.0, 46200.0, 250.75),
                ("2021-03-01 01:00", 46200.0, 46800.0, 46100.0, 46400.0, 180.25),
                ("2021-03-01 02:00", 46400.0, 46650.0, 46250.0, 46500.0, 150.5),
            ),
        ),
        FixtureFile(
            "Coinbase_BTCUSD_1h.csv",
            "BTCUSD",
            "1h",
            "Coinbase",
            2,
            "Volume BTC",
            _bars(
                ("2021-03-01 00:00", 45110.0, 46510.0, 44910.0, 46210.0, 530.75),
                ("2021-03-01 01:00", 46210.0, 46810.0, 46110.0, 46410.0, 420.25),
                ("2021-03-01 02:00", 46410.0, 46660.0, 46260.0, 46510.0, 310.5),
            ),
        ),
        FixtureFile(
            "Kraken_BTCUSD_1h.csv",
            "BTCUSD",
            "1h",
            "Kraken",
            2,
            "Volume BTC",
            _bars(
                ("2021-03-01 00:00", 45120.0, 46520.0, 44920.0, 46220.0, 93.0),
                ("2021-03-01 01:00", 46220.0, 46820.0, 46120.0, 46420.0, 72.25),
                ("2021-03-01 02:00", 46420.0, 46670.0, 46270.0, 46520.0, 61.5),
            ),
        ),
        FixtureFile(
            "Coinbase_ETHUSD_1h_old.csv",
            "ETHUSD",
            "1h",
            "Coinbase",
            2,
            "Volume From",
            _bars(
                ("2019-07-29 22:00", 211.0, 211.5, 209.7, 210.0, 700.75),
                ("2019-07-29 23:00", 210.0, 210.2, 208.9, 209.0, 1500.0),
                ("2019-07-30 00:00", 209.0, 210.75, 208.5, 210.5, 980.25),
                ("2019-07-30 01:00", 210.5, 211.0, 209.8, 210.9, 1200.5),
            ),
        ),
        FixtureFile(
            "Gemini_LTCUSD_1h.csv",
            "LTCUSD",
            "1h",
            "Gemini",
            1,
            "Volume",
            _bars(
                ("2020-01-01 00:00", 41.3, 41.4, 40.9, 41.1, 95.25),
                ("2020-01-01 01:00", 41.1, 41.6, 41.0, 41.5, 120.5),
                ("2020-01-01 02:00", 41.5, 41.9, 41.2, 41.8, 310.0),
            ),
        ),
        FixtureFile(
            "Gemini_BTCUSD_d.csv",
            "BTCUSD",
            "1d",
            "Gemini",
            2,
            "Volume",
            _bars(
                ("2020-12-27 00:00", 26500.0, 28400.0, 25850.0, 26280.0, 3100.75),
                ("2020-12-28 00:00", 26280.0, 27500.0, 26100.0, 27040.0, 1800.0),
                ("2020-12-30 00:00", 27370.0, 28990.0, 27320.0, 28875.0, 2210.25),
                ("2020-12-31 00:00", 28875.0, 29300.0, 28700.0, 29000.0, 1450.5),
            ),
        ),
        FixtureFile(
            "Gemini_ETHUSD_2020_1min.csv",
            "ETHUSD",
            "1m",
            "Gemini",
            2,
            "Volume",
            _bars(
                ("2020-06-01 00:00", 230.5, 230.8, 230.4, 230.7, 4.5),
                ("2020-06-01 00:01", 230.7, 231.0, 230.6, 230.9, 1.0),
                ("2020-06-01 00:02", 230.9, 231.3, 230.8, 231.2, 7.25),
                ("2020-06-01 00:04", 231.2, 231.6, 231.1, 231.5, 3.5),
                ("2020-06-01 00:05", 231.5, 231.9, 231.4, 231.8, 12.0),
            ),
        ),
        # The Date column is US Eastern time (5 h behind); the unix timestamps are right.
        FixtureFile(
            "Gemini_BTCUSD_skewed_1h.csv",
            "BTCUSD",
            "1h",
            "Gemini",
            2,
            "Volume",
            _bars(
                ("2020-03-08 00:00", 8850.0, 8860.0, 8820.0, 8830.0, 11.25),
                ("2020-03-08 01:00", 8830.0, 8850.0, 8800.0, 8810.0, 9.5),
                ("2020-03-08 02:00", 8810.0, 8840.0, 8790.0, 8820.0, 14.0),
            ),
        ),
    )
}

# Lines 3, 10 and 11 are good; line 9 is a good row of another pair, which the CSV reader
# keeps and the importer rejects. Line 8 is blank.
BAD_ROWS_FILE = FIXTURES_DIR / "Gemini_BTCUSD_bad_rows_1h.csv"
BAD_ROWS_READER_REJECTIONS = [
    (4, "a price is 0 or negative"),
    (5, "high is below low"),
    (6, "date cannot be parsed: 'not a date'"),
    (7, "expected 8 fields, saw 9"),
    (12, "open is missing or not a number"),
]
BAD_ROWS_OTHER_SYMBOL = (9, "symbol 'ETHUSD' is not the file's symbol 'BTCUSD'")
BAD_ROWS_STORED = _bars(
    ("2019-12-31 23:00", 7180.0, 7195.0, 7175.0, 7190.0, 9.0),
    ("2020-01-01 00:00", 7190.0, 7205.0, 7185.0, 7200.0, 8.0),
    ("2020-01-01 06:00", 7250.0, 7260.0, 7240.0, 7255.0, 4.5),
)

UNREADABLE_FILES = ("unreadable_empty.csv", "unreadable_html.csv", "unreadable_utf16.csv")


def run_import(*args) -> tuple[str, str]:
    """`import_stocks ARGS --no-progress`: (what it printed on stdout, on stderr)."""
    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    call_command("import_stocks", *map(str, args), "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write a CSV file from lines under tmp_path and return its path."""

    def write(name: str, lines: list[str], *, eol: str = "\n") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((eol.join(lines) + eol).encode("utf-8"))
        return path

    return write


def pytest_sessionstart(session: pytest.Session) -> None:
    """On CI, a run aimed at PostgreSQL must really use it, never fall back to SQLite.

    A settings mistake that ignored DATABASE_URL would otherwise leave the PostgreSQL job
    green while testing SQLite twice. An unreachable server is not skipped: pytest-django
    errors every database test when it cannot create the test database.
    """
    url = os.environ.get("DATABASE_URL", "")
    if os.environ.get("CI", "").lower() != "true" or not url.startswith("postgres"):
        return
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.exit(
            f"CI=true and DATABASE_URL points at PostgreSQL, but the tests would run on "
            f"{connection.vendor}: check the test settings",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


@pytest.fixture
def artifact_dirs(tmp_path):
    """model_weights/ and scalers/ pointed at a temporary folder for one test."""
    from tests.training_support import artifacts_under

    with artifacts_under(tmp_path) as folders:
        yield folders


@pytest.fixture
def workers(tmp_path, transactional_db, artifact_dirs, settings):
    """Real Celery workers on the real Redis, on this test's own queue (tests/workers.py).

    The test process sends to the same queue and broker, so jobs it queues reach them.
    """
    from cryptooracle.celery import app
    from tests.workers import REDIS_URL, Workers, new_queue

    queue = new_queue()
    previous = (app.conf.broker_url, app.conf.task_default_queue, app.conf.broker_transport_options)
    app.conf.broker_url = REDIS_URL  # type: ignore[misc]  # celery-types: read-only; Celery sets it
    app.conf.task_default_queue = queue
    app.conf.broker_transport_options = {}
    _drop_connections(app)
    running = Workers(tmp_path, queue)
    try:
        yield running
    finally:
        running.stop()
        (
            app.conf.broker_url,  # type: ignore[misc]  # celery-types: read-only; Celery sets it
            app.conf.task_default_queue,
            app.conf.broker_transport_options,
        ) = previous
        _drop_connections(app)


def _drop_connections(app) -> None:
    """Forget the app's broker connections, so the next send connects to the broker now set."""
    import kombu.pools

    app._pool = None
    app.amqp._producer_pool = None
    kombu.pools.reset()
