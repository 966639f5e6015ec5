"""The notebooks run top to bottom in fast mode, and are committed without outputs.

Each notebook is executed with nbclient in a kernel on this virtualenv's Python, with
CRYPTOORACLE_NOTEBOOK_FAST=1; a cell that raises fails the test with the cell's traceback.
Display_Results reads the database from a kernel process, which cannot see pytest's test
transaction, so its tests build a real SQLite file (migrate, then populate through the ORM in
a subprocess) and point DATABASE_URL at it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO_DIR = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
DISPLAY_RESULTS = NOTEBOOKS_DIR / "Display_Results.ipynb"
STUDY_NOTEBOOKS = [
    NOTEBOOKS_DIR / "1-Exploring-BTC-data.ipynb",
    NOTEBOOKS_DIR / "2-LSTM-model-studies.ipynb",
    NOTEBOOKS_DIR / "3-ETH-from-BTC-cross-asset.ipynb",
]
PLOTLY = "application/vnd.plotly.v1+json"


@pytest.fixture
def notebook_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The kernel inherits this process's environment: fast mode, project settings."""
    monkeypatch.setenv("CRYPTOORACLE_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "cryptooracle.settings")
    monkeypatch.setenv("DJANGO_RUNTIME_ENVIRONMENT", "development")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return monkeypatch


def execute(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run every cell in a fresh python3 kernel started in notebooks/, as Jupyter would."""
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()
    return notebook


def text_outputs(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def plotly_figures(notebook: nbformat.NotebookNode) -> int:
    return sum(
        PLOTLY in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


def test_every_notebook_is_tested() -> None:
    assert sorted(NOTEBOOKS_DIR.glob("*.ipynb")) == sorted([*STUDY_NOTEBOOKS, DISPLAY_RESULTS])


@pytest.mark.parametrize("path", [*STUDY_NOTEBOOKS, DISPLAY_RESULTS], ids=lambda p: p.name)
def test_committed_notebooks_have_no_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} hold outputs or execution counts; "
        "run .venv/bin/python notebooks/strip_outputs.py"
    )
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
def test_kernel_runs_on_this_virtualenv(notebook_env: pytest.MonkeyPatch) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    output = text_outputs(execute(notebook)).strip()
    assert output == sys.prefix


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDY_NOTEBOOKS, ids=lambda p: p.name)
def test_study_notebook_runs(path: Path, notebook_env: pytest.MonkeyPatch) -> None:
    notebook = execute(nbformat.read(path, as_version=4))
    output = text_outputs(notebook)
    assert "fast mode: True" in output
    assert plotly_figures(notebook) >= 3


def manage(*arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO_DIR / "manage.py"), *arguments],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


POPULATE = textwrap.dedent(
    """
    from datetime import UTC, datetime, timedelta

    from predictor.models import StockPrediction, TrainingSession

    start = datetime(2020, 11, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    scores = {"mae": 10.0, "rmse": 12.0, "mape": 0.1, "directional_accuracy": 0.5,
              "rel_mae": 1.0, "mase": 1.1, "n": 10}
    session = TrainingSession.objects.create(
        kind="evaluation", status="succeeded", symbol="BTCUSD", interval="H",
        features="close", target="price", window=24, output_size=1, shuffle_buffer=1000,
        train_split=0.8, units=8, epochs=3, batch_size=64, dropout=0.2, optimizer="adam",
        loss="mse", activation="tanh", scaler="minmax", seed=7, bars=74,
        data_start=start, data_end=start + 73 * hour, train_start=start,
        train_end=start + 58 * hour, test_start=start + 59 * hour, test_end=start + 73 * hour,
        train_samples=35, test_samples=15,
        loss_history=[{"version": 1, "epochs": 3, "loss": [0.3, 0.2, 0.1]}],
        metrics={
            "train": {"model": scores, "persistence": scores, "linear_regression": scores},
            "test": {"model": {**scores, "rel_mae": 0.9}, "persistence": scores,
                     "linear_regression": scores},
        },
    )
    StockPrediction.objects.bulk_create(
        StockPrediction(session=session, time=start + (24 + i) * hour, steps_ahead=1,
                        predicted_close=18000.0 + 5 * i, actual_close=18002.0 + 5 * i)
        for i in range(50)
    )
    print(session.id)
    """
)


@pytest.fixture
def sqlite_database(tmp_path: Path, notebook_env: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite file that the notebook's kernel (a separate process) will use."""
    path = tmp_path / "results.sqlite3"
    notebook_env.setenv("DATABASE_URL", f"sqlite:///{path}")
    manage("migrate", "--no-input", "-v", "0")
    return path


@pytest.mark.slow
def test_display_results_draws_stored_sessions(sqlite_database: Path) -> None:
    session_id = manage("shell", "-c", POPULATE).strip().splitlines()[-1]  # after shell notes
    notebook = execute(nbformat.read(DISPLAY_RESULTS, as_version=4))
    output = text_outputs(notebook)
    assert str(sqlite_database) in output
    assert "1 succeeded sessions" in output
    assert f"Session {session_id}" in output
    assert plotly_figures(notebook) == 2  # actual vs predicted, and the loss curve
    assert "scores, test part" in output
    assert "Linear regr." in output  # the scores table, as the evaluation page labels it
    assert "No evaluated sessions yet" in output  # the leaderboard, empty without evaluate


@pytest.mark.slow
def test_display_results_says_when_there_are_no_sessions(sqlite_database: Path) -> None:
    notebook = execute(nbformat.read(DISPLAY_RESULTS, as_version=4))
    output = text_outputs(notebook)
    assert "No training sessions in this database yet" in output
    assert plotly_figures(notebook) == 0
