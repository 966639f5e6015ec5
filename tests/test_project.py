"""The project's set-up: locked dependencies, settings per environment, the index page."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from django.urls import reverse

from cryptooracle.settings.base import database_from_environment
from predictor.models import Stock

ROOT = Path(__file__).resolve().parent.parent


def _lock_pins(group: str) -> dict[str, str]:
    lock = tomllib.loads((ROOT / "poetry.lock").read_text())
    return {
        p["name"].lower(): p["version"] for p in lock["package"] if group in p.get("groups", [])
    }


def _requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_requirements_txt_matches_the_main_group_of_poetry_lock():
    """Elastic Beanstalk installs requirements.txt: it must pin exactly what poetry.lock does."""
    assert _requirement_pins() == _lock_pins("main"), "run `make requirements` and commit"


def test_dev_only_packages_stay_out_of_requirements_txt():
    dev_only = set(_lock_pins("dev")) - set(_lock_pins("main"))
    assert {"pytest", "ruff", "django-debug-toolbar"} <= dev_only
    assert not dev_only & set(_requirement_pins())


def test_pyproject_declares_the_stack_the_brief_names():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\s(<>=]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    assert {"django", "tensorflow", "pandas", "plotly", "whitenoise", "gunicorn"} <= names


def test_database_url_wins(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example:5433/crypto")
    monkeypatch.setenv("RDS_HOSTNAME", "ignored.example")
    config = database_from_environment(Path("/tmp/x.sqlite3"))
    assert (config["ENGINE"], config["HOST"], config["PORT"], config["NAME"]) == (
        "django.db.backends.postgresql",
        "db.example",
        5433,
        "crypto",
    )


def test_rds_variables_are_read_when_there_is_no_database_url(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for name, value in {
        "RDS_HOSTNAME": "rds.example",
        "RDS_PORT": "5432",
        "RDS_DB_NAME": "ebdb",
        "RDS_USERNAME": "oracle",
        "RDS_PASSWORD": "s3cret",
    }.items():
        monkeypatch.setenv(name, value)
    config = database_from_environment(Path("/tmp/x.sqlite3"))
    assert config["HOST"] == "rds.example" and config["USER"] == "oracle"
    assert config["NAME"] == "ebdb" and config["ENGINE"].endswith("postgresql")


def test_sqlite_in_the_project_folder_by_default(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("RDS_HOSTNAME", raising=False)
    config = database_from_environment(Path("/somewhere/db.sqlite3"))
    assert config == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": Path("/somewhere/db.sqlite3"),
        # several processes write (web, workers, heartbeats): take the lock when a
        # transaction begins, and wait for it
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
    }


def test_a_sqlite_database_url_gets_the_same_options(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/elsewhere.sqlite3")
    config = database_from_environment(Path("/somewhere/db.sqlite3"))
    assert config["NAME"] == "/tmp/elsewhere.sqlite3"
    assert config["OPTIONS"] == {"transaction_mode": "IMMEDIATE", "timeout": 30}


def _settings_subprocess(environment: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    env.update(environment)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            " print(settings.SETTINGS_MODULE, settings.DEBUG)",
        ],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "cryptooracle.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_development_is_the_default_environment():
    result = _settings_subprocess({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cryptooracle.settings", "True"]


def test_production_refuses_to_start_without_a_secret_key():
    result = _settings_subprocess({"DJANGO_RUNTIME_ENVIRONMENT": "production"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_production_runs_with_debug_off_when_given_a_key():
    result = _settings_subprocess(
        {"DJANGO_RUNTIME_ENVIRONMENT": "production", "DJANGO_SECRET_KEY": "x" * 50}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"


def test_an_unknown_environment_is_named_in_the_error():
    result = _settings_subprocess({"DJANGO_RUNTIME_ENVIRONMENT": "staging"})
    assert result.returncode != 0
    assert "DJANGO_RUNTIME_ENVIRONMENT='staging'" in result.stderr


@pytest.mark.django_db
def test_index_lists_the_stored_series(client):
    Stock.objects.create(
        symbol="BTCUSD",
        bar_length="1h",
        time="2020-01-01T00:00Z",
        open=1,
        high=2,
        low=0.5,
        close=1.5,
        volume=3,
    )
    response = client.get(reverse("predictor:index"))
    assert response.status_code == 200
    assert b"BTCUSD" in response.content and b"2020-01-01 00:00" in response.content


@pytest.mark.django_db
def test_index_says_how_to_load_data_when_empty(client):
    response = client.get(reverse("predictor:index"))
    assert response.status_code == 200
    assert b"import_stocks" in response.content


def run_development_site(tmp_path: Path, prepare: list[str], script: str, **extra: str) -> str:
    """What `make run` serves: development settings on a fresh SQLite database in tmp_path.
    Runs `manage.py <prepare>`, then the script (after django.setup()); returns its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "cryptooracle.settings",
        **extra,
    }
    subprocess.run(
        [sys.executable, "manage.py", *prepare], cwd=ROOT, env=env, check=True, timeout=300
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize(("toolbar", "shown"), [("", "False"), ("1", "True")])
def test_the_development_site_shows_the_debug_toolbar_only_when_asked(tmp_path, toolbar, shown):
    """The toolbar with DEBUG_TOOLBAR=1 only, and then collapsed."""
    script = (
        "from django.conf import settings\n"
        "from django.test import Client\n"
        "response = Client().get('/', REMOTE_ADDR='127.0.0.1', HTTP_HOST='127.0.0.1')\n"
        "collapsed = getattr(settings, 'DEBUG_TOOLBAR_CONFIG', {}).get('SHOW_COLLAPSED')\n"
        "print(response.status_code, b'djDebug' in response.content, collapsed)\n"
    )
    printed = run_development_site(tmp_path, ["migrate", "-v0"], script, DEBUG_TOOLBAR=toolbar)
    assert printed.split() == ["200", shown, "True" if shown == "True" else "None"]


def test_the_development_site_serves_collected_static_files_compressed_and_cacheable(tmp_path):
    """After `make run`'s collectstatic: Plotly gzipped, cacheable for an hour."""
    script = (
        "from django.test import Client\n"
        "response = Client().get('/static/predictor/vendor/plotly-4.1.1.min.js',"
        " HTTP_ACCEPT_ENCODING='gzip', HTTP_HOST='127.0.0.1')\n"
        "print(response.status_code, response['Content-Encoding'],"
        " response['Cache-Control'].replace(' ', ''), response['Content-Length'])\n"
    )
    printed = run_development_site(
        tmp_path,
        ["collectstatic", "--no-input", "-v0"],
        script,
        CRYPTOORACLE_STATIC_ROOT=str(tmp_path / "static"),
    )
    status, encoding, cache, length = printed.split()
    assert (status, encoding, cache) == ("200", "gzip", "max-age=3600,public")
    assert int(length) < 2_000_000  # 4.8 MB uncompressed
