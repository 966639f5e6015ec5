"""Real Celery worker processes for the job tests, on the real Redis at 127.0.0.1:6379.

Each test gets its own queue name, so workers of other test runs on the same Redis never
take its jobs. Workers open the test database (a file on SQLite, see settings/test.py; the
test_ database on PostgreSQL), so tests using them need `transactional_db`: rows a worker
must see are committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

REPO_DIR = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def test_database_url() -> str:
    """The test database as a DATABASE_URL for another process."""
    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database['NAME']}"
    user = database.get("USER") or "postgres"
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{database['NAME']}"


def celery_worker_command(*, concurrency: int, hostname: str, queue: str) -> list[str]:
    """A `celery worker` on one queue, quiet towards other workers (no gossip or mingle, so
    it starts in about a second): the tests' workers and bench/sweep_benchmark.py's."""
    return [
        *(sys.executable, "-m", "celery", "-A", "cryptooracle", "worker"),
        *("--concurrency", str(concurrency), "--loglevel", "INFO", "--hostname", hostname),
        *("--without-gossip", "--without-mingle", "--queues", queue),
    ]


class Workers:
    """Starts worker processes for one test and stops (or kills) them at its end."""

    def __init__(self, tmp_path: Path, queue: str):
        self.tmp_path = tmp_path
        self.queue = queue
        self.processes: list[subprocess.Popen] = []

    def environment(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_RUNTIME_ENVIRONMENT": "test",
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": REDIS_URL,
            "CELERY_QUEUE": self.queue,
            "CRYPTOORACLE_MODEL_WEIGHTS_DIR": str(settings.MODEL_WEIGHTS_DIR),
            "CRYPTOORACLE_SCALERS_DIR": str(settings.SCALERS_DIR),
            "JOB_HEARTBEAT_SECONDS": "0.5",
            "JOB_LOST_AFTER_SECONDS": "4",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            **extra,
        }

    def start(
        self, *, concurrency: int = 1, cwd: Path | None = None, name: str = "", **extra: str
    ) -> subprocess.Popen:
        """A worker with `concurrency` processes; returns once it is ready for jobs."""
        name = name or f"w{len(self.processes) + 1}"
        log = self.tmp_path / f"worker-{name}.log"
        process = subprocess.Popen(
            celery_worker_command(
                concurrency=concurrency, hostname=f"{name}-{self.queue}@%h", queue=self.queue
            ),
            cwd=cwd or REPO_DIR,
            env=self.environment(PYTHONPATH=str(REPO_DIR), **extra),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        wait_for(lambda: "ready." in log.read_text(), 180, f"worker {name} to start ({log})")
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL the worker and every process it forked, as a lost machine would."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        _purge(self.queue)


def _purge(queue: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(queue)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


def new_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"
