"""Sweeps: grid parsing and sampling (pure), and `manage.py sweep` on real workers (real
Redis, real worker processes): every combination and seed trained, forecast and evaluated,
and ranked on the sweep's leaderboard; bad grids and bad combinations queue nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from predictor.models import Job, TrainingSession
from predictor.selectors.evaluations import leaderboard
from predictor.services.sweeps import (
    SweepError,
    describe,
    expand_grid,
    parse_grid,
    sample_combinations,
    sweep_configs,
)
from predictor.services.training import TrainingConfig
from tests.checks import present
from tests.training_support import BTC_FILE, import_days

# Grid parsing and sampling -----------------------------------------------------------------


def test_a_grid_parses_each_value_to_its_fields_type():
    grid = parse_grid(["window=12,24", "dropout=0,0.25", "model=LSTM,linear", "batch-size=32"])
    assert grid == {
        "window": [12, 24],
        "dropout": [0.0, 0.25],
        "model_kind": ["lstm", "linear"],
        "batch_size": [32],
    }
    assert isinstance(grid["window"][0], int) and isinstance(grid["dropout"][1], float)


def test_expanding_gives_every_combination_the_first_name_slowest():
    combinations = expand_grid({"window": [12, 24], "units": [4, 8, 16]})
    assert combinations == [
        {"window": 12, "units": 4},
        {"window": 12, "units": 8},
        {"window": 12, "units": 16},
        {"window": 24, "units": 4},
        {"window": 24, "units": 8},
        {"window": 24, "units": 16},
    ]
    assert expand_grid({}) == [{}]
    assert describe({"window": 12, "model_kind": "lstm"}) == "window=12 model_kind=lstm"


@pytest.mark.parametrize(
    "entry, message",
    [
        ("colour=red", "--grid 'colour=red': 'colour' cannot be varied; choose one of window,"),
        ("window=12,x", "--grid 'window=12,x': 'x' is not a whole number"),
        ("dropout=0.1,abc", "--grid 'dropout=0.1,abc': 'abc' is not a number"),
        ("dropout=0.1,1", "--grid 'dropout=0.1,1': dropout must be in [0, 1), not 1.0"),
        ("window=0", "--grid 'window=0': window must be at least 1"),
        ("scaler=foo", "--grid 'scaler=foo': unknown scaler 'foo': choose one of"),
        ("model=nope", "--grid 'model=nope': unknown model 'nope'"),
        ("window", "--grid 'window': write name=value1,value2"),
        ("window=", "--grid 'window=': no values after '='"),
        ("window=12,,24", "--grid 'window=12,,24': an empty value"),
        ("units=4,4", "--grid 'units=4,4': 4 is given more than once"),
        ("symbol=ETHUSD", "--grid 'symbol=ETHUSD': 'symbol' cannot be varied"),
    ],
)
def test_a_bad_grid_entry_is_named_in_one_line(entry, message):
    with pytest.raises(SweepError) as raised:
        parse_grid([entry])
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_name_varied_twice_is_refused():
    with pytest.raises(SweepError, match="--grid 'window=48': window is already varied"):
        parse_grid(["window=12,24", "window=48"])


def test_sampling_draws_without_replacement_and_repeats_for_a_seed():
    combinations = expand_grid({"window": [6, 12, 24, 48], "units": [4, 8, 16]})
    first = sample_combinations(combinations, 5, seed=7)
    assert len(first) == 5
    assert len({describe(c) for c in first}) == 5  # no combination twice
    assert all(c in combinations for c in first)
    assert sample_combinations(combinations, 5, seed=7) == first
    # kept in the grid's order
    assert first == sorted(first, key=combinations.index)
    draws = {tuple(map(describe, sample_combinations(combinations, 5, seed=s))) for s in range(8)}
    assert len(draws) > 1  # the seed matters
    assert sample_combinations(combinations, 12, seed=1) == combinations


def test_sampling_more_than_the_grid_holds_is_refused():
    combinations = expand_grid({"window": [12, 24]})
    with pytest.raises(SweepError, match=r"--random 3: the grid has only 2 combinations"):
        sample_combinations(combinations, 3, seed=1)
    with pytest.raises(SweepError, match=r"--random 0: draw at least 1"):
        sample_combinations(combinations, 0, seed=1)


def test_each_combination_runs_once_per_seed_from_the_base_seed():
    base = TrainingConfig(symbol="BTCUSD", units=4, evaluation=False)
    configs = sweep_configs(base, expand_grid({"window": [12, 24]}), seeds=2, seed=40)
    assert [(c["window"], config.window, config.seed) for c, config in configs] == [
        (12, 12, 40),
        (12, 12, 41),
        (24, 24, 40),
        (24, 24, 41),
    ]
    assert all(config.units == 4 and config.evaluation for _, config in configs)


# The command on real workers ---------------------------------------------------------------


@pytest.fixture
def bars(tmp_path, transactional_db):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")


def sweep(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sweep", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


TINY = ("-N", "BTCUSD", "-P", "1", "-U", "4", "-B", "64")


@pytest.mark.django_db(transaction=True)
def test_a_sweep_trains_forecasts_and_ranks_every_combination_and_seed(bars, workers):
    workers.start()  # one process: SQLite takes one writer at a time
    out, err = sweep(
        *TINY, "--grid", "model=linear,lstm", "--grid", "window=12,24", "--seeds", "2",
        "--seed", "3", "--wait",
    )  # fmt: skip
    sweep_job = Job.objects.get(kind=Job.Kind.SWEEP)
    assert f"queued sweep job {sweep_job.id}" in out
    assert "sweep of 4 combination(s) x 2 seed(s) (seeds from 3): 8 evaluation sessions" in out
    assert sweep_job.status == "succeeded", sweep_job.error
    assert "8/8 ended" in err  # the progress bar's last line
    children = list(sweep_job.children.all())
    assert len(children) == 8 and {c.kind for c in children} == {"train"}
    sessions = TrainingSession.objects.filter(jobs__parent=sweep_job)
    assert sessions.count() == 8
    seen = {(s.model_kind, s.window, s.seed) for s in sessions}
    assert seen == {(k, w, s) for k in ("linear", "lstm") for w in (12, 24) for s in (3, 4)}
    rows = leaderboard(session_ids=[str(s.id) for s in sessions])
    assert len(rows) == 8 and all(row["test_rel_mae"] is not None for row in rows)
    for session in sessions:
        assert str(session.id) in out  # every session on the printed leaderboard
    ranked = [line for line in out.splitlines() if line.endswith("(Holm)")]
    assert [int(line.split()[0]) for line in ranked] == list(range(1, 9))


@pytest.mark.django_db(transaction=True)
def test_a_backtest_sweep_queues_one_backtest_per_combination(bars, workers):
    workers.start()
    out, _ = sweep(
        "-N", "BTCUSD", "-M", "linear", "--grid", "window=12,24", "--backtest", "--folds",
        "2", "--seeds", "1", "--seed", "5", "--wait",
    )  # fmt: skip
    sweep_job = Job.objects.get(kind=Job.Kind.SWEEP)
    assert sweep_job.status == "succeeded", sweep_job.error
    backtests = list(sweep_job.children.all())
    assert [job.kind for job in backtests] == ["backtest", "backtest"]
    assert all(job.children.count() == 2 for job in backtests)
    for job in backtests:
        backtest = present(job.backtest)
        assert backtest.status == "succeeded" and backtest.results["pooled"]
        assert str(job.backtest_id) in out


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "args, message",
    [
        (["--grid", "colour=red"], "--grid 'colour=red': 'colour' cannot be varied"),
        (["--grid", "window=12,x"], "--grid 'window=12,x': 'x' is not a whole number"),
        (
            ["-W", "12", "--grid", "window=12,24"],
            "--grid 'window=12,24': window is also given as -W; drop one",
        ),
        (
            ["-M", "lstm", "--grid", "model=linear,gru"],
            "--grid 'model=linear,gru': model_kind is also given as -M; drop one",
        ),
        (
            ["--grid", "window=12,200"],
            "combination 2 of 2 (window=200): too few bars: 120 bars between",
        ),
        (
            ["--target", "log_return", "--grid", "scaler=minmax,window"],
            "combination 2 of 2 (scaler=window): the window scaler divides",
        ),
        (
            ["--grid", "model=linear,prophet", "--features", "close_volume"],
            "combination 2 of 2 (model_kind=prophet): Prophet models the close alone",
        ),
        (
            ["--grid", "window=12,24", "--random", "3"],
            "--random 3: the grid has only 2 combinations",
        ),
        (
            ["--grid", "window=12,96", "--backtest", "--folds", "4"],
            "combination 2 of 2 (window=96):",
        ),
        (["--grid", "window=12", "--seeds", "0"], "--seeds 0: run each combination at least"),
    ],
)
def test_a_bad_sweep_names_its_fault_and_queues_nothing(bars, args, message):
    with pytest.raises(CommandError) as raised:
        model = [] if any(a.startswith("model=") for a in args) else ["-M", "linear"]
        sweep("-N", "BTCUSD", *model, *args)
    assert str(raised.value).startswith(message), str(raised.value)
    assert "\n" not in str(raised.value)
    assert Job.objects.count() == 0
    assert TrainingSession.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_without_wait_the_sweep_prints_its_job_and_queues_its_parts(bars, workers):
    # `workers` points the queue at this test's own Redis list (no worker is started).
    out, _ = sweep("-N", "BTCUSD", "-M", "linear", "--grid", "window=12,24", "--seed", "1")
    sweep_job = Job.objects.get(kind=Job.Kind.SWEEP)
    assert out.strip().endswith(f"follow it with ./manage.py jobs {sweep_job.id}")
    assert sweep_job.status == "running" and sweep_job.children.count() == 2
    assert all(job.status == "queued" for job in sweep_job.children.all())
    assert all(job.arguments["then_forecast"] for job in sweep_job.children.all())
