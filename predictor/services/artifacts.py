"""Model and scaler files through Django's storage API: the one module that talks to it.

A session's files are stored under names like "model_weights/<id>.keras" and
"scalers/<id>.json" (archived versions "<id>.v<N>.*") in the storage STORAGES["artifacts"]:
by default `ArtifactFileStorage`, the local model_weights/ and scalers/ folders as before
(settings.MODEL_WEIGHTS_DIR and SCALERS_DIR); in production an S3 bucket through
django-storages (cryptooracle/settings/base.py, `artifacts_storage`). So a worker on any
machine, in any working directory, saves a model that any other process can forecast from.

Forecasters stay framework-free and read and write local files: they save into a temporary
folder (`staging`) whose files are then stored whole under their final name, and they load
from local copies fetched from the storage (`fetched`). Rows written before the storage
existed hold absolute local paths: those are read from the disk as before.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.utils._os import safe_join

from utils.forecasters import ArtifactError

ALIAS = "artifacts"
MODEL_FOLDER = "model_weights"
SCALER_FOLDER = "scalers"


class ArtifactFileStorage(FileSystemStorage):
    """The local default: "model_weights/<file>" in MODEL_WEIGHTS_DIR, "scalers/<file>" in
    SCALERS_DIR (read on every call, so a test's override_settings is honoured).

    A save replaces the file whole: written to a hidden temporary file beside it, then
    renamed into place, so a reader never sees half a model and a crash leaves none.
    """

    def __init__(self, **options):
        super().__init__(**{"allow_overwrite": True, **options})

    def path(self, name: str) -> str:
        folder, _, rest = str(name).replace("\\", "/").partition("/")
        roots = {MODEL_FOLDER: settings.MODEL_WEIGHTS_DIR, SCALER_FOLDER: settings.SCALERS_DIR}
        if folder not in roots:
            raise SuspiciousFileOperation(
                f"{name!r} is not under {MODEL_FOLDER}/ or {SCALER_FOLDER}/"
            )
        root = os.path.abspath(roots[folder])
        return safe_join(root, rest) if rest else root

    def _save(self, name: str, content: File) -> str:
        final = Path(self.path(name))
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            with temporary.open("wb") as out:
                for chunk in content.chunks():
                    out.write(chunk if isinstance(chunk, bytes) else chunk.encode("utf-8"))
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return name


def storage() -> Storage:
    """The configured artifacts storage (STORAGES["artifacts"])."""
    return storages[ALIAS]


# Names -----------------------------------------------------------------------------------------


def model_name(session_id: uuid.UUID | str, suffix: str, version: int | None = None) -> str:
    """The storage name of a session's model, or of an archived version of it."""
    tag = f".v{version}" if version else ""
    return f"{MODEL_FOLDER}/{session_id}{tag}{suffix}"


def scaler_name(session_id: uuid.UUID | str, version: int | None = None) -> str:
    tag = f".v{version}" if version else ""
    return f"{SCALER_FOLDER}/{session_id}{tag}.json"


def is_local_path(name: str) -> bool:
    """A row from before the storage: an absolute path on the disk of the machine that
    trained it. Storage names are always relative."""
    return os.path.isabs(name)


def describe(name: str) -> str:
    """Where a stored file is, for messages: a local path, or s3://bucket/key."""
    if not name or is_local_path(name):
        return name
    store = storage()
    bucket = getattr(store, "bucket_name", None)
    if bucket:
        location = str(getattr(store, "location", "") or "").strip("/")
        return f"s3://{bucket}/{posixpath.join(location, name) if location else name}"
    try:
        return store.path(name)
    except NotImplementedError:
        return f"{ALIAS}:{name}"


# Reading ---------------------------------------------------------------------------------------


def exists(name: str) -> bool:
    if not name:
        return False
    if is_local_path(name):
        return Path(name).is_file()
    return storage().exists(name)


@contextlib.contextmanager
def fetched(*names: str) -> Iterator[list[Path | str]]:
    """Local copies of stored files, in a temporary folder removed afterwards.

    "" stays "" (no file recorded) and a local path stays itself. A file missing from the
    storage gets a local path that does not exist, so the forecaster reports it as usual.
    An ArtifactError raised inside the block names the stored file, not the local copy.
    """
    with staging() as folder:
        local: list[Path | str] = []
        copies: dict[str, str] = {}
        for index, name in enumerate(names):
            if not name or is_local_path(name):
                local.append(name)
                continue
            target = folder / str(index) / PurePosixPath(name).name
            target.parent.mkdir()
            _download(name, target)
            copies[str(target)] = name
            local.append(target)
        try:
            yield local
        except ArtifactError as error:
            raise _named_in_storage(error, copies) from error


def _download(name: str, target: Path) -> None:
    try:
        source = storage().open(name, "rb")
    except FileNotFoundError:
        return  # the forecaster says "file not found", naming the stored file
    except Exception as error:
        raise ArtifactError(describe(name), f"cannot be read ({_one_line(error)})") from error
    try:
        with source, target.open("wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
    except Exception as error:
        raise ArtifactError(describe(name), f"cannot be read ({_one_line(error)})") from error


def _named_in_storage(error: ArtifactError, copies: dict[str, str]) -> ArtifactError:
    reason = str(error).removeprefix(f"{error.path}: ")
    for local, name in copies.items():
        reason = reason.replace(local, describe(name))
    path = describe(copies[error.path]) if error.path in copies else error.path
    return ArtifactError(path, reason)


# Writing ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def staging() -> Iterator[Path]:
    """A temporary local folder for a forecaster to write into or read from."""
    with tempfile.TemporaryDirectory(prefix="cryptooracle-artifacts-") as folder:
        yield Path(folder)


def staged_path(folder: Path, name: str) -> Path:
    """The local file in a staging folder that will be stored under `name` (its folders
    kept: a linear model and its scaler are both '<id>.json')."""
    path = folder.joinpath(*PurePosixPath(name).parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save(name: str, local: Path) -> str:
    """Store a local file under `name`, replacing any file of that name whole."""
    store = storage()
    with Path(local).open("rb") as content:
        stored = store.save(name, File(content, name=PurePosixPath(name).name))
    if stored != name:
        store.delete(stored)
        raise RuntimeError(
            f"the {ALIAS} storage stored {name} as {stored}: configure it to overwrite "
            "(file_overwrite=True for S3)"
        )
    return name


def copy(source: str, target: str) -> str:
    """Store a copy of a stored file (or of a local path, for rows from before the storage)."""
    with fetched(source) as (local,):
        if not Path(local).is_file():
            raise ArtifactError(describe(source), "file not found")
        return save(target, Path(local))


def discard(*names: str) -> None:
    """Delete stored files, if there; never raises (called while another error is raised)."""
    for name in names:
        if name and not is_local_path(name):
            with contextlib.suppress(Exception):
                storage().delete(name)


def remove_temporaries(session_id: uuid.UUID | str) -> None:
    """The half-written temporary files of a lost run (only a local storage makes any)."""
    store = storage()
    for folder in (MODEL_FOLDER, SCALER_FOLDER):
        try:
            _, files = store.listdir(folder)
        except (FileNotFoundError, NotImplementedError):
            continue
        for file in files:
            if file.startswith(f".{session_id}"):
                store.delete(f"{folder}/{file}")


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return text.splitlines()[0] if text else type(error).__name__
