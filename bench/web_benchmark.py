"""Web benchmark: every page and JSON endpoint under gunicorn, 8 concurrent clients,
with the response cache filled and with it empty, each beside /healthz in the same run.

    .venv/bin/python bench/web_benchmark.py              # build the store, then measure
    .venv/bin/python bench/web_benchmark.py --reuse      # measure an already built store
    .venv/bin/python bench/web_benchmark.py --reuse --cache local   # per-process memory

The store lives in a scratch PostgreSQL database (cryptooracle_webbench on 127.0.0.1:5432;
SQLite aggregates minute bars too slowly, see the README's benchmarks): 2 million generated
minute bars imported by import_stocks' service, and 50 sessions (25 production, 25
evaluation) with 10,000 hourly one-step predictions each, bulk-created, the evaluation ones
with a stored Evaluation of the shape predictor.services.evaluation writes. The app runs under
gunicorn (production settings, static files collected) on 127.0.0.1 at a free port; a thread
pool of clients sends a bounded number of requests (bounded in time too), spread over every
page and endpoint and over random sessions, and the run prints requests/s, p50/p95 latency
and response sizes per endpoint.

Two phases measure the same requests (predictor/caching.py): "cache filled", after one
request of every distinct URL (per gunicorn worker with --cache local) filled the response
cache; and "cache empty", where each client replaces the data version (caching.bump(), as a
write would) just before each request, so every request builds its response. /healthz
requests are mixed into both phases (one in eight), so each endpoint's p95 is set beside
/healthz's under the same load. The responses' X-Cache headers are counted, so the table
shows that the filled phase hit and the empty one missed. The cache is Redis
(CACHE_URL=redis://127.0.0.1:6379/13, as deployments with REDIS_URL run) unless --cache local.

Targets: p95 < 150 ms per endpoint with 8 clients and the cache filled; with it empty, p95
within 5x /healthz's p95 of the same phase; every chart response < 300 KB; no errors.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.import_benchmark import OUT, POSTGRES_SERVER, generate_minute_csv  # noqa: E402

DATABASE = "cryptooracle_webbench"
DATABASE_URL = f"{POSTGRES_SERVER}/{DATABASE}"
SESSIONS = 50
PREDICTIONS = 10_000
PAGE_P95_MS = 150
COLD_HEALTHZ_RATIO = 5
CHART_BYTES = 300_000
REDIS_CACHE_URL = "redis://127.0.0.1:6379/13"
CACHE_URL = REDIS_CACHE_URL  # "" for local memory (--cache local)


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_RUNTIME_ENVIRONMENT": "production",
        "DJANGO_SECRET_KEY": "web-benchmark-only-not-secret-" + "x" * 30,
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_LOG_LEVEL": "WARNING",
        "CACHE_URL": CACHE_URL,
    }


def _setup_django() -> None:
    os.environ.update(_environment())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cryptooracle.settings")
    import django

    django.setup()


# Building the store ---------------------------------------------------------------------------


def build_store(rows: int) -> None:
    for statement in (f"DROP DATABASE IF EXISTS {DATABASE}", f"CREATE DATABASE {DATABASE}"):
        subprocess.run(
            ["psql", f"{POSTGRES_SERVER}/postgres", "-qc", statement],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    manage = [sys.executable, "manage.py"]
    subprocess.run(
        [*manage, "migrate", "-v0", "--no-input"], cwd=ROOT, env=_environment(), check=True
    )
    csv_path = generate_minute_csv(rows, OUT / f"gemini_BTCUSD_{rows}_1min.csv")
    started = time.perf_counter()
    subprocess.run(
        [*manage, "import_stocks", str(csv_path), "--no-progress", "-v", "0"],
        cwd=ROOT,
        env=_environment(),
        check=True,
    )
    print(f"imported {rows:,} minute bars in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    create_sessions()
    print(
        f"created {SESSIONS} sessions x {PREDICTIONS:,} predictions in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )


def _scores(rng, n: int) -> dict:
    mae = float(rng.uniform(20, 60))
    return {
        "mae": mae,
        "rmse": mae * 1.3,
        "mape": mae / 200,
        "directional_accuracy": float(rng.uniform(0.45, 0.55)),
        "rel_mae": float(rng.uniform(0.8, 1.3)),
        "mase": float(rng.uniform(0.8, 1.3)),
        "n": n,
    }


def _part(times, predicted, actual, rng) -> dict:
    """One part of Evaluation.results, equity thinned to 2,000 points as the service does."""
    last = np.r_[actual[0], actual[:-1]]
    held = np.sign(predicted - last)
    returns = held * (actual / last - 1)
    equity = np.r_[1.0, np.cumprod(1 + returns)]
    hold = np.r_[1.0, actual / actual[0]]
    keep = np.unique(np.r_[np.linspace(0, len(equity) - 1, 2000).astype(int), len(equity) - 1])
    stamps = [times[0], *(t + timedelta(hours=1) for t in times)]
    hits = (np.sign(predicted - last) == np.sign(actual - last)).mean()
    performance = {"sharpe": 0.5, "max_drawdown": 0.2, "position_changes": 100, "fees": 0.0}
    return {
        "first": times[0].isoformat(),
        "last": times[-1].isoformat(),
        "bars": len(times),
        "scores": _scores(rng, len(times)),
        "strategy": {"total_return": float(equity[-1] - 1), **performance},
        "buy_and_hold": {"total_return": float(hold[-1] - 1), **performance},
        "equity": {
            "times": [stamps[i].isoformat() for i in keep],
            "strategy": equity[keep].tolist(),
            "buy_and_hold": hold[keep].tolist(),
        },
        "direction_test": {
            "bars": len(times),
            "hits": int(hits * len(times)),
            "mean": float(hits),
            "t_score": float((hits - 0.5) * 200),
            "t_p_value": 0.4,
            "binomial_p_value": 0.41,
            "alpha": 0.05,
            "rejected": False,
        },
        "diebold_mariano": {"statistic": 0.3, "p_value": 0.7},
        "verdict": "no better than a coin",
    }


def create_sessions() -> None:
    _setup_django()
    from predictor.models import Evaluation, StockPrediction, TrainingSession
    from predictor.selectors import get_bars

    bars = get_bars("BTCUSD", "1h").iloc[-(PREDICTIONS + 24) :]
    times = list(bars.index.to_pydatetime())
    closes = bars["close"].to_numpy()
    rng = np.random.default_rng(1)
    flags = {
        "symbol": "BTCUSD",
        "interval": "H",
        "features": "close",
        "target": "price",
        "window": 24,
        "output_size": 1,
        "shuffle_buffer": 1000,
        "units": 50,
        "epochs": 3,
        "batch_size": 64,
        "dropout": 0.2,
        "optimizer": "adam",
        "loss": "mse",
        "activation": "tanh",
        "scaler": "minmax",
        "status": TrainingSession.Status.SUCCEEDED,
        "data_start": times[0],
        "data_end": times[-1],
        "bars": len(times),
        "train_start": times[0],
        "loss_history": [{"version": 1, "epochs": 3, "loss": [0.02, 0.01, 0.008]}],
    }
    split = 24 + int(PREDICTIONS * 0.8)
    for number in range(SESSIONS):
        evaluation = number % 2 == 0
        test = {"test_start": times[split], "test_end": times[-1]} if evaluation else {}
        session = TrainingSession.objects.create(
            kind="evaluation" if evaluation else "production",
            train_split=0.8 if evaluation else 1.0,
            seed=number,
            train_end=times[split - 1] if evaluation else times[-1],
            metrics={
                part: {
                    name: _scores(rng, 1000)
                    for name in ("model", "persistence", "linear_regression")
                }
                for part in (("train", "test") if evaluation else ("train",))
            },
            **test,
            **flags,
        )
        predicted = closes[24:] * (1 + rng.normal(0, 0.003, PREDICTIONS))
        StockPrediction.objects.bulk_create(
            (
                StockPrediction(
                    session=session,
                    time=t,
                    steps_ahead=1,
                    predicted_close=float(p),
                    actual_close=float(a),
                )
                for t, p, a in zip(times[24:], predicted, closes[24:], strict=True)
            ),
            batch_size=5000,
        )
        if evaluation:
            part_times = times[24:]
            cut = split - 24
            Evaluation.objects.create(
                session=session,
                test_rel_mae=float(rng.uniform(0.8, 1.3)),
                results={
                    "train": _part(part_times[:cut], predicted[:cut], closes[24:split], rng),
                    "test": _part(part_times[cut:], predicted[cut:], closes[split:], rng),
                },
            )
        else:
            StockPrediction.objects.bulk_create(
                StockPrediction(
                    session=session,
                    time=times[-1] + timedelta(hours=ahead),
                    steps_ahead=ahead,
                    predicted_close=float(closes[-1]),
                )
                for ahead in (1, 2, 3)
            )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# Serving and measuring ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(port: int, workers: int) -> subprocess.Popen:
    env = _environment()
    for command in (["migrate", "-v0", "--no-input"], ["collectstatic", "--no-input", "-v", "0"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "cryptooracle.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=60)
            return server
        except requests.ConnectionError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("gunicorn did not start within 60 s")


def targets(base: str) -> list[tuple[str, str, bool]]:
    """(name, url, is a chart response) for every page and JSON endpoint.

    Sessions are drawn at random per request from the stored ones, so the caches of one
    session do not flatter the figures.
    """
    _setup_django()
    from predictor.models import TrainingSession

    production = [
        str(s)
        for s in TrainingSession.objects.filter(kind="production").values_list("id", flat=True)
    ]
    evaluation = [
        str(s)
        for s in TrainingSession.objects.filter(kind="evaluation").values_list("id", flat=True)
    ]
    rng = random.Random(3)
    plans = []
    for _ in range(40):
        p, e = rng.choice(production), rng.choice(evaluation)
        plans += [
            ("index page", f"{base}/", False),
            ("prices JSON (default week)", f"{base}/api/prices/", True),
            (
                "prices JSON (30 days, candles)",
                f"{base}/api/prices/?start=2020-11-29&end=2020-12-29&style=candles",
                True,
            ),
            ("forecast page", f"{base}/forecast/?session={p}", False),
            ("forecast JSON", f"{base}/api/forecast/?session={p}", True),
            ("evaluation page", f"{base}/evaluation/?session={e}", False),
            ("evaluation JSON", f"{base}/api/evaluation/?session={e}", True),
        ]
    for _ in range(5):  # rare and heavy: a whole year of minute bars
        plans.append(
            ("prices JSON (1 year)", f"{base}/api/prices/?start=2020-01-01&end=2020-12-31", True)
        )
    rng.shuffle(plans)
    # /healthz beside them, one request in eight, under the same load.
    for at in range(len(plans), 0, -7):
        plans.insert(at, ("/healthz", f"{base}/healthz", False))
    return plans


def measure(
    plans, clients: int, time_limit: float, *, cold: bool = False
) -> tuple[list[dict], float]:
    """Send the plans from `clients` threads; `cold`: replace the data version before each
    request, so no response can come from the cache."""
    local = threading.local()
    deadline = time.monotonic() + time_limit
    bump: Callable[[], None] | None = None
    if cold:
        _setup_django()
        from predictor import caching

        bump = caching.bump

    def fetch(plan):
        name, url, chart = plan
        if time.monotonic() > deadline:
            return None
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        if bump is not None and name != "/healthz":
            bump()
        started = time.perf_counter()
        try:
            response = session.get(url, timeout=60)
            status, size = response.status_code, len(response.content)
            cache = response.headers.get("X-Cache", "")
        except requests.RequestException as error:
            status, size, cache = repr(error), 0, ""
        return {
            "name": name,
            "chart": chart,
            "ms": (time.perf_counter() - started) * 1000,
            "status": status,
            "bytes": size,
            "cache": cache,
        }

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for r in pool.map(fetch, plans) if r is not None]
    return results, time.perf_counter() - started


def _p95(ms: list[float]) -> float:
    ms = sorted(ms)
    return ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]


def report(results: list[dict], seconds: float, clients: int, *, cold: bool) -> bool:
    errors = [r for r in results if r["status"] != 200]
    phase = "cache empty (version bumped before each request)" if cold else "cache filled"
    print(
        f"\n{phase}: {len(results)} requests from {clients} concurrent clients in "
        f"{seconds:.1f} s: {len(results) / seconds:.1f} requests/s, {len(errors)} errors"
    )
    healthz = _p95([r["ms"] for r in results if r["name"] == "/healthz"] or [float("nan")])
    print(
        f"{'endpoint':34} {'n':>4} {'hits':>5} {'p50 ms':>8} {'p95 ms':>8} {'/healthz':>8} "
        f"{'max KB':>8}  target"
    )
    ok = not errors
    for name in dict.fromkeys(r["name"] for r in results):
        rows = [r for r in results if r["name"] == name]
        ms = [r["ms"] for r in rows]
        p50, p95 = statistics.median(ms), _p95(ms)
        hits = sum(r["cache"] == "hit" for r in rows) / len(rows)
        size = max(r["bytes"] for r in rows)
        chart = rows[0]["chart"]
        if name == "/healthz":
            checks = []
        elif cold:
            met = p95 <= COLD_HEALTHZ_RATIO * healthz
            checks = [f"p95 <= {COLD_HEALTHZ_RATIO}x /healthz: {'ok' if met else 'MISSED'}"]
            ok &= met
        else:
            met = p95 < PAGE_P95_MS
            checks = [f"p95 < {PAGE_P95_MS} ms: {'ok' if met else 'MISSED'}"]
            ok &= met
        if chart:
            checks.append(f"< 300 KB: {'ok' if size < CHART_BYTES else 'MISSED'}")
            ok &= size < CHART_BYTES
        figures = (
            f"{name:34} {len(rows):>4} {hits:>5.0%} {p50:>8.1f} {p95:>8.1f} "
            f"{p95 / healthz:>7.1f}x {size / 1000:>8.1f}"
        )
        print(f"{figures}  {', '.join(checks)}")
    all_ms = sorted(r["ms"] for r in results)
    print(
        f"all requests: p50 {statistics.median(all_ms):.1f} ms, "
        f"p95 {all_ms[round(0.95 * (len(all_ms) - 1))]:.1f} ms"
    )
    for error in errors[:5]:
        print(f"error: {error['name']}: {error['status']}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--reuse", action="store_true", help="measure the store already built")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    parser.add_argument("--time-limit", type=float, default=180, help="seconds of load, at most")
    parser.add_argument(
        "--cache",
        choices=("redis", "local"),
        default="redis",
        help=f"responses in Redis ({REDIS_CACHE_URL}) or in each worker's memory",
    )
    options = parser.parse_args()
    global CACHE_URL
    CACHE_URL = REDIS_CACHE_URL if options.cache == "redis" else ""
    if not options.reuse:
        build_store(options.rows)
    port = free_port()
    server = start_gunicorn(port, options.workers)
    try:
        base = f"http://127.0.0.1:{port}"
        plans = targets(base)
        measure(plans[:30], options.clients, 60)  # warm the workers' imports
        # Fill: every distinct URL once (with local memory, once per worker: the requests
        # land on workers as they come, so a few rounds).
        distinct = list({url: (name, url, chart) for name, url, chart in plans}.values())
        rounds = 1 if options.cache == "redis" else 2 * options.workers
        measure(distinct * rounds, options.clients, options.time_limit)
        print(
            f"gunicorn: {options.workers} sync workers on {os.cpu_count()} CPUs, "
            f"cache: {options.cache}, load average before: {os.getloadavg()[0]:.1f}"
        )
        results, seconds = measure(plans, options.clients, options.time_limit)
        ok = report(results, seconds, options.clients, cold=False)
        results, seconds = measure(plans, options.clients, options.time_limit, cold=True)
        ok &= report(results, seconds, options.clients, cold=True)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
