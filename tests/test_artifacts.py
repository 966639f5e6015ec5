"""Model and scaler files through the storage (predictor/services/artifacts.py).

No code path assumes the training machine's disk: a session trained with the S3 storage
(moto's server mode, a real HTTP server on 127.0.0.1) leaves nothing on the local disk and
is forecast by another process in another folder; a worker started in another folder stores
its model where another process forecasts from it; bad objects give the same one-line
ArtifactError as bad files; rows from before the storage (absolute paths) keep working.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.management import CommandError
from django.db import transaction

from cryptooracle.settings.base import artifacts_storage
from predictor.models import Job, Stock, StockPrediction
from predictor.services import artifacts, jobs
from predictor.services.training import TrainingConfig, remove_session_files
from tests.checks import present
from tests.s3_server import S3Server
from tests.training_support import (
    BTC_FILE,
    files_in,
    import_days,
    run_command,
    stored_path,
    train_model,
)
from tests.workers import REPO_DIR, wait_for
from tests.workers import test_database_url as database_url  # not collected as a test

TINY = ["-P", "1", "-U", "4", "-W", "12", "-B", "64", "--seed", "3"]
PREFIX = "cryptooracle"

database = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto_server.log")
    yield server
    server.stop()


@pytest.fixture
def s3_storage(s3, settings, monkeypatch) -> tuple[str, dict[str, str]]:
    """This test's own bucket as STORAGES["artifacts"], configured as a deployment would
    be: through the environment, read by the settings' artifacts_storage."""
    bucket = s3.new_bucket()
    environment = s3.environment(bucket, prefix=PREFIX)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)  # boto3's keys, and inherited by subprocesses
    settings.STORAGES = {**settings.STORAGES, "artifacts": artifacts_storage(environment)}
    return bucket, environment


@pytest.fixture
def bars(tmp_path, transactional_db):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")


def forecast_elsewhere(session_id, cwd: Path, **environment: str) -> subprocess.CompletedProcess:
    """`manage.py forecast -T <id>` as another process, started in another folder."""
    from django.conf import settings

    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(REPO_DIR / "manage.py"), "forecast", "-T", str(session_id)],
        cwd=cwd,
        env={
            **os.environ,
            "DJANGO_RUNTIME_ENVIRONMENT": "test",
            "DATABASE_URL": database_url(),
            "CRYPTOORACLE_MODEL_WEIGHTS_DIR": str(settings.MODEL_WEIGHTS_DIR),
            "CRYPTOORACLE_SCALERS_DIR": str(settings.SCALERS_DIR),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            **environment,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )


def command_error(result: subprocess.CompletedProcess) -> str:
    """The one line a failed command printed for its CommandError."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("CommandError")]
    assert result.returncode != 0 and len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def no_local_disk(tmp_path: Path) -> dict[str, str]:
    """Artifact folders that do not exist: a process using them for anything would fail."""
    return {
        "CRYPTOORACLE_MODEL_WEIGHTS_DIR": str(tmp_path / "no-such-disk" / "model_weights"),
        "CRYPTOORACLE_SCALERS_DIR": str(tmp_path / "no-such-disk" / "scalers"),
    }


# S3 (moto's server mode) ------------------------------------------------------------------------


@database
def test_an_s3_session_is_forecast_by_another_process_and_bad_objects_are_one_line(
    bars, artifact_dirs, s3, s3_storage, tmp_path
):
    bucket, _ = s3_storage
    session, _ = train_model("-N", "BTCUSD", *TINY)
    model_key = f"{PREFIX}/model_weights/{session.id}.keras"
    scaler_key = f"{PREFIX}/scalers/{session.id}.json"

    assert session.status == "succeeded", session.error
    assert (session.model_path, session.scaler_path) == (
        f"model_weights/{session.id}.keras",
        f"scalers/{session.id}.json",
    )
    assert s3.keys(bucket) == [model_key, scaler_key]
    assert files_in(*artifact_dirs) == []  # nothing on this machine's disk
    scaler = json.loads(s3.client().get_object(Bucket=bucket, Key=scaler_key)["Body"].read())
    assert scaler["name"] == "minmax"

    result = forecast_elsewhere(session.id, tmp_path / "elsewhere", **no_local_disk(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    expected = Stock.objects.filter(symbol="BTCUSD").count() - 12
    assert f"{expected} new predictions" in result.stdout
    assert StockPrediction.objects.filter(session=session).count() == expected

    client = s3.client()
    client.put_object(Bucket=bucket, Key=model_key, Body=b"\x00junk" * 40)
    line = command_error(
        forecast_elsewhere(session.id, tmp_path / "elsewhere", **no_local_disk(tmp_path))
    )
    assert f"s3://{bucket}/{model_key}: not a valid Keras model" in line
    assert line.endswith("(ValueError: not a .keras zip archive)")

    state = scaler | {"scale_": [0.0] * len(scaler["scale_"])}
    client.put_object(Bucket=bucket, Key=scaler_key, Body=json.dumps(state).encode())
    with pytest.raises(CommandError, match="scale_ holds a value that is not pos") as caught:
        run_command("forecast", "-T", str(session.id))
    assert f"s3://{bucket}/{scaler_key}: not a valid scaler" in str(caught.value)
    assert "\n" not in str(caught.value) and "cryptooracle-artifacts-" not in str(caught.value)

    client.delete_object(Bucket=bucket, Key=model_key)
    with pytest.raises(CommandError, match=rf"s3://{bucket}/{model_key}: file not found$"):
        run_command("forecast", "-T", str(session.id))


@database
def test_an_s3_update_archives_through_the_bucket_and_lost_run_cleanup_deletes_there(
    bars, artifact_dirs, s3, s3_storage
):
    bucket, _ = s3_storage
    client = s3.client()
    session, _ = train_model("-N", "BTCUSD", "-V", "false", "-E", "2020-07-04", *TINY)
    model_key = f"{PREFIX}/model_weights/{session.id}.keras"
    old_model = client.get_object(Bucket=bucket, Key=model_key)["Body"].read()

    updated, printed = train_model("-X", str(session.id), "-P", "1")
    assert updated.version == 2 and updated.status == "succeeded" and "update_v2" in printed
    assert s3.keys(bucket) == sorted(
        [
            model_key,
            f"{PREFIX}/model_weights/{session.id}.v1.keras",
            f"{PREFIX}/scalers/{session.id}.json",
            f"{PREFIX}/scalers/{session.id}.v1.json",
        ]
    )
    archived = updated.archived_artifacts[0]
    assert archived["model_path"] == f"model_weights/{session.id}.v1.keras"
    archived_key = f"{PREFIX}/{archived['model_path']}"
    assert client.get_object(Bucket=bucket, Key=archived_key)["Body"].read() == old_model
    assert client.get_object(Bucket=bucket, Key=model_key)["Body"].read() != old_model
    assert "beyond the last bar" in run_command("forecast", "-T", str(session.id))
    assert files_in(*artifact_dirs) == []

    # What the lost-work reaper does for a first fit whose worker died: its files go.
    lost, _ = train_model("-N", "BTCUSD", "-M", "linear", *TINY)
    assert len([key for key in s3.keys(bucket) if str(lost.id) in key]) == 2
    remove_session_files(lost)
    assert not [key for key in s3.keys(bucket) if str(lost.id) in key]
    assert len(s3.keys(bucket)) == 4  # the production session's files are not touched


# Workers in other folders -------------------------------------------------------------------


@database
@pytest.mark.parametrize("where", ["files", "s3"])
def test_a_worker_in_another_folder_stores_a_model_another_process_forecasts_from(
    bars, workers, artifact_dirs, tmp_path, request, where
):
    worker_folder = tmp_path / "worker-cwd"
    worker_folder.mkdir()
    environment: dict[str, str] = {}
    if where == "s3":
        bucket, environment = request.getfixturevalue("s3_storage")
        environment = {**environment, **no_local_disk(tmp_path)}
    workers.start(cwd=worker_folder, **environment)
    config = TrainingConfig(
        symbol="BTCUSD", window=12, units=4, batch_size=64, epochs=1, seed=1, model_kind="lstm"
    )
    with transaction.atomic():
        job = jobs.enqueue(Job.Kind.TRAIN, {"config": jobs.training_arguments(config)}, label="t")

    def ended() -> bool:
        job.refresh_from_db()
        return job.status in jobs.FINISHED

    wait_for(ended, 180, "the training job")
    assert job.status == "succeeded", job.error
    session = present(job.session)
    assert session.model_path == f"model_weights/{session.id}.keras"
    assert not list(worker_folder.rglob("*.keras")) and not list(worker_folder.rglob("*.json"))
    if where == "s3":
        assert files_in(*artifact_dirs) == []
        assert len([key for key in request.getfixturevalue("s3").keys(bucket)]) == 2
    else:
        assert stored_path(session.model_path).is_file()
        assert files_in(*artifact_dirs) == [f"{session.id}.json", f"{session.id}.keras"]

    result = forecast_elsewhere(session.id, tmp_path / "forecast-cwd", **environment)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = Stock.objects.filter(symbol="BTCUSD").count() - 12
    assert f"{expected} new predictions" in result.stdout
    assert StockPrediction.objects.filter(session=session).count() == expected


# Rows from before the storage -----------------------------------------------------------------


@pytest.mark.django_db
def test_rows_holding_absolute_paths_are_read_from_disk_and_move_into_the_storage_on_update(
    tmp_path, artifact_dirs
):
    import_days(tmp_path, BTC_FILE, "2020-07-01", "2020-07-05")
    session, _ = train_model("-N", "BTCUSD", "-V", "false", "-E", "2020-07-04", *TINY)
    old_disk = tmp_path / "old-disk"
    old_disk.mkdir()
    old_model = Path(shutil.move(stored_path(session.model_path), old_disk))
    old_scaler = Path(shutil.move(stored_path(session.scaler_path), old_disk))
    assert files_in(*artifact_dirs) == []
    type(session).objects.filter(pk=session.pk).update(
        model_path=str(old_model), scaler_path=str(old_scaler)
    )

    assert "beyond the last bar" in run_command("forecast", "-T", str(session.id))

    updated, _ = train_model("-X", str(session.id), "-P", "1")
    assert updated.version == 2 and updated.status == "succeeded"
    assert updated.model_path == f"model_weights/{session.id}.keras"
    assert updated.scaler_path == f"scalers/{session.id}.json"
    archived = updated.archived_artifacts[0]
    assert stored_path(archived["model_path"]).read_bytes() == old_model.read_bytes()
    assert stored_path(archived["scaler_path"]).read_bytes() == old_scaler.read_bytes()
    assert stored_path(updated.scaler_path).read_bytes() == old_scaler.read_bytes()
    assert old_model.is_file() and old_scaler.is_file()  # the old files are left as they were

    old_model.unlink()
    type(session).objects.filter(pk=session.pk).update(model_path=str(old_model))
    with pytest.raises(CommandError, match=rf"{old_model}: file not found$"):
        run_command("forecast", "-T", str(session.id))


# The local file storage --------------------------------------------------------------------------


def test_the_file_storage_replaces_files_whole_under_the_two_folders(artifact_dirs):
    models, scalers = artifact_dirs
    storage = artifacts.storage()
    assert isinstance(storage, artifacts.ArtifactFileStorage)
    name = "model_weights/abc.json"
    assert storage.save(name, ContentFile(b"first")) == name
    assert storage.save(name, ContentFile(b"second")) == name  # replaced, never renamed
    assert (models / "abc.json").read_bytes() == b"second"
    assert storage.save("scalers/abc.json", ContentFile(b"{}")) == "scalers/abc.json"
    assert files_in(models, scalers) == ["abc.json", "abc.json"]  # no temporary file left
    assert artifacts.describe(name) == str(models / "abc.json")
    for bad in ("abc.json", "static/abc.json", "model_weights/../../abc.json"):
        with pytest.raises(SuspiciousFileOperation):
            storage.path(bad)


def test_the_settings_pick_s3_only_when_a_bucket_is_named():
    assert artifacts_storage({}) == {"BACKEND": "predictor.services.artifacts.ArtifactFileStorage"}
    s3 = artifacts_storage(
        {
            "ARTIFACTS_S3_BUCKET": "models",
            "ARTIFACTS_S3_PREFIX": "/prod/",
            "AWS_S3_REGION_NAME": "eu-west-1",
        }
    )
    assert s3["BACKEND"] == "storages.backends.s3.S3Storage"
    assert s3["OPTIONS"]["bucket_name"] == "models" and s3["OPTIONS"]["location"] == "prod"
    assert s3["OPTIONS"]["region_name"] == "eu-west-1" and s3["OPTIONS"]["endpoint_url"] is None
    assert s3["OPTIONS"]["file_overwrite"] is True
    assert "access_key" not in s3["OPTIONS"] and "secret_key" not in s3["OPTIONS"]
