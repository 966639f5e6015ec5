"""Sweep benchmark: the same 8 evaluation sessions on 1 worker process, then on 2.

    .venv/bin/python bench/sweep_benchmark.py
    .venv/bin/python bench/sweep_benchmark.py --epochs 5 --units 16 --probes 10

Imports data/gemini_BTCUSD_1hr.csv into a fresh PostgreSQL database (crypto_bench_sweep on
127.0.0.1:5432; SQLite takes one writer at a time, which two worker processes are not) and
queues, on Redis (redis://127.0.0.1:6379/14, a queue of its own), a sweep of 8 LSTM
evaluation sessions on daily bars (-I D): --grid window=14,28 x 4 seeds, -P 5 -U 16, each
trained, forecast and evaluated by a worker. It runs the sweep with one worker process
(`celery worker --concurrency 1`), then the same sweep with two (`--concurrency 2`), each
worker started fresh, and prints the wall time of each (from queueing to the sweep's end),
the speed-up, and how fast an idle worker picks a job up: the median of Job.started_at -
Job.created_at over --probes single persistence jobs queued one at a time (a job queued
behind others waits for them, so the sweeps' own waits measure the queue, not the pickup).
Writes bench/out/sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.import_benchmark import OUT, POSTGRES_SERVER  # noqa: E402
from tests.workers import celery_worker_command  # noqa: E402

DATABASE = "crypto_bench_sweep"
REDIS_URL = "redis://127.0.0.1:6379/14"


def _seconds(start: datetime | None, end: datetime | None) -> float:
    assert start is not None and end is not None, "a job that ran has both times"
    return (end - start).total_seconds()


def fresh_database() -> str:
    for statement in (f"DROP DATABASE IF EXISTS {DATABASE}", f"CREATE DATABASE {DATABASE}"):
        subprocess.run(
            ["psql", f"{POSTGRES_SERVER}/postgres", "-qc", statement],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    url = f"{POSTGRES_SERVER}/{DATABASE}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0", "--no-input"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
    )
    return url


def start_worker(concurrency: int, log: Path) -> subprocess.Popen:
    """A fresh worker process (and its pool) on the benchmark's queue; waits until ready."""
    process = subprocess.Popen(
        celery_worker_command(
            concurrency=concurrency,
            hostname=f"bench-{concurrency}-{uuid.uuid4().hex[:6]}@%h",
            queue=os.environ["CELERY_QUEUE"],
        ),
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while "ready." not in log.read_text():
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"the worker did not start: see {log}")
        time.sleep(0.2)
    return process


def stop_worker(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def run_sweep(args: argparse.Namespace) -> dict:
    """Queue the sweep, wait for its end; its wall time and its parts' times."""
    from predictor.models import Job
    from predictor.services.sweeps import check_sweep, expand_grid, queue_sweep
    from predictor.services.training import TrainingConfig

    base = TrainingConfig(
        symbol="BTCUSD", interval="D", model_kind="lstm", epochs=args.epochs, units=args.units
    )
    grid = {"window": [14, 28]}
    children = check_sweep(base, expand_grid(grid), seeds=4, seed=7)
    started = time.perf_counter()
    job = queue_sweep(children, base=base, grid=grid, seeds=4, seed=7, created_by="bench")
    while True:
        job.refresh_from_db()
        if job.status not in (Job.Status.QUEUED, Job.Status.RUNNING):
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"sweep {job.id} {job.status}: {job.error}")
    parts = list(job.children.order_by("started_at"))
    return {
        "job": str(job.id),
        "seconds": seconds,
        "sessions": len(parts),
        "part_seconds": [_seconds(p.started_at, p.finished_at) for p in parts],
        "waits_ms": [_seconds(p.created_at, p.started_at) * 1000 for p in parts],
    }


def pickup_latency(probes: int) -> list[float]:
    """started_at - created_at of single tiny jobs queued one at a time on an idle worker."""
    from predictor.models import Job
    from predictor.services.jobs import enqueue_now, training_arguments
    from predictor.services.training import TrainingConfig

    config = TrainingConfig(symbol="BTCUSD", interval="D", model_kind="persistence", seed=1)
    waits = []
    for _ in range(probes):
        job = enqueue_now(Job.Kind.TRAIN, {"config": training_arguments(config)}, label="probe")
        while job.status in (Job.Status.QUEUED, Job.Status.RUNNING):
            time.sleep(0.05)
            job.refresh_from_db()
        waits.append(_seconds(job.created_at, job.started_at) * 1000)
        time.sleep(0.5)  # the worker idles again
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="-P of each session (5)")
    parser.add_argument("--units", type=int, default=16, help="-U of each session (16)")
    parser.add_argument("--probes", type=int, default=10, help="pickup-latency jobs (10)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    artifacts = OUT / "sweep_artifacts"
    os.environ |= {
        "DJANGO_SETTINGS_MODULE": "cryptooracle.settings",
        "DJANGO_RUNTIME_ENVIRONMENT": "development",
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_QUEUE": f"bench-sweep-{uuid.uuid4().hex[:8]}",
        "CRYPTOORACLE_MODEL_WEIGHTS_DIR": str(artifacts / "model_weights"),
        "CRYPTOORACLE_SCALERS_DIR": str(artifacts / "scalers"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    os.environ["DATABASE_URL"] = fresh_database()
    import django

    django.setup()
    from predictor.services.importing import import_csv_files

    import_csv_files([ROOT / "data" / "gemini_BTCUSD_1hr.csv"])
    results: dict = {"epochs": args.epochs, "units": args.units, "load": os.getloadavg()}
    for concurrency in (1, 2):
        worker = start_worker(concurrency, OUT / f"sweep_worker_{concurrency}.log")
        try:
            if concurrency == 1:
                results["pickup_ms"] = pickup_latency(args.probes)
            results[f"workers_{concurrency}"] = run_sweep(args)
        finally:
            stop_worker(worker)
        seconds = results[f"workers_{concurrency}"]["seconds"]
        print(f"{concurrency} worker process(es): {seconds:.1f} s", file=sys.stderr, flush=True)
    one, two = results["workers_1"]["seconds"], results["workers_2"]["seconds"]
    results["speedup"] = one / two
    results["pickup_median_ms"] = statistics.median(results["pickup_ms"])
    results["load_after"] = os.getloadavg()
    print(
        f"8 LSTM evaluation sessions (-I D -P {args.epochs} -U {args.units}, window 14 and 28 "
        f"x 4 seeds), each trained, forecast and evaluated by a worker:\n"
        f"  1 worker process:  {one:.1f} s\n  2 worker processes: {two:.1f} s\n"
        f"  speed-up: {results['speedup']:.2f}\n"
        f"  enqueue to start on an idle worker: median {results['pickup_median_ms']:.0f} ms "
        f"over {args.probes} jobs (max {max(results['pickup_ms']):.0f} ms)\n"
        f"  load average before {results['load'][0]:.2f}, after {results['load_after'][0]:.2f}"
    )
    (OUT / "sweep.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
