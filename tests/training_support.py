"""Helpers for the train_model and forecast tests: slices of the real shipped hourly files."""

from __future__ import annotations

from contextlib import contextmanager
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.test import override_settings

from predictor.models import TrainingSession
from tests.checks import present

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BTC_FILE = DATA_DIR / "gemini_BTCUSD_1hr.csv"
ETH_FILE = DATA_DIR / "gemini_ETHUSD_1hr.csv"


def import_days(tmp_path: Path, source: Path, first: str, last: str) -> None:
    """Import the real file's bars whose date (YYYY-MM-DD) is within [first, last]."""
    lines = source.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines[2:] if first <= line.split(",")[1][:10] <= last]
    path = tmp_path / f"{source.stem}_{first}_{last}.csv"
    path.write_text("\n".join(lines[:2] + kept) + "\n", encoding="utf-8")
    call_command("import_stocks", str(path), "--no-progress", stdout=StringIO(), stderr=StringIO())


def run_command(command: str, *args: str) -> str:
    """Run a management command; return what it printed on stdout."""
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def train_model(*args: str) -> tuple[TrainingSession, str]:
    """Run the command; return the newest session and what it printed."""
    out = StringIO()
    call_command("train_model", *args, stdout=out, stderr=StringIO())
    return present(TrainingSession.objects.order_by("-created_at").first()), out.getvalue()


@contextmanager
def artifacts_under(tmp_path: Path):
    """Models and scalers under tmp_path, never in the project's folders."""
    models, scalers = tmp_path / "model_weights", tmp_path / "scalers"
    with override_settings(MODEL_WEIGHTS_DIR=models, SCALERS_DIR=scalers):
        yield models, scalers


def stored_path(name: str) -> Path:
    """The local file behind a stored artifact's name (the default file storage)."""
    from predictor.services import artifacts

    return Path(artifacts.storage().path(name))


def files_in(*folders: Path) -> list[str]:
    return sorted(p.name for folder in folders if folder.exists() for p in folder.iterdir())
