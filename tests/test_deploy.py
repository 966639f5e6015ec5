"""Deployment: /healthz, `check --deploy`, the app served as the Procfile starts it, .ebextensions.

The served test runs the Procfile's `release:` and `web:` commands through bash, as Heroku
does, with production settings and a scratch PostgreSQL database (deploytest_<random> on
127.0.0.1:5432, created and dropped here). Without a PostgreSQL server it skips on a
developer's machine and fails when CI=true, where a skip would hide a broken deployment.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import requests
import yaml
from django.db import OperationalError
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SERVER = os.environ.get("DEPLOYTEST_POSTGRES_SERVER", "postgres://postgres@127.0.0.1:5432")
HOST = "oracle.example.com"
HSTS = "max-age=31536000; includeSubDomains; preload"


def _production_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any Django setting, plus production's variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "RDS_", "ALLOWED_HOSTS", "CSRF_"))
    }
    env.update(
        {
            "DJANGO_RUNTIME_ENVIRONMENT": "production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": HOST,
            "CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
            # The Procfile calls `gunicorn` and `python`: this virtualenv's, as on the dyno.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            **extra,
        }
    )
    return env


# /healthz, in process ------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_reports_a_reachable_database(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_answers_503_when_the_database_fails(client):
    with mock.patch(
        "django.db.backends.utils.CursorWrapper.execute",
        side_effect=OperationalError("connection refused"),
    ):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert "OperationalError" in body["detail"] and "connection refused" in body["detail"]


def _production_settings(*names: str) -> dict:
    """Settings as production computes them, read in a subprocess (they need the env)."""
    script = (
        "import json, django; django.setup(); from django.conf import settings;"
        f" print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_production_environment(DJANGO_SETTINGS_MODULE="cryptooracle.settings"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_ssl_redirect_exemption_matches_the_healthz_route_only():
    """SecurityMiddleware matches the exemptions against the path without its leading slash."""
    exempt = _production_settings("SECURE_REDIRECT_EXEMPT")["SECURE_REDIRECT_EXEMPT"]
    path = reverse("healthz").lstrip("/")
    assert any(re.search(pattern, path) for pattern in exempt)
    for other in ("", "forecast/", "healthz/x", "admin/healthz"):
        assert not any(re.search(pattern, other) for pattern in exempt), other


# check --deploy --------------------------------------------------------------------------------


def test_production_passes_check_deploy_without_warnings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_production_logs_to_stdout():
    logging = _production_settings("LOGGING")["LOGGING"]
    assert logging["handlers"]["console"]["stream"] == "ext://sys.stdout"


# The app as the Procfile starts it ---------------------------------------------------------


def _procfile() -> dict[str, str]:
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.startswith("#"):
            processes[name.strip()] = command.strip()
    return processes


def test_procfile_has_web_release_worker_and_beat_processes():
    processes = _procfile()
    assert processes["web"].startswith("gunicorn cryptooracle.wsgi ")
    assert "$PORT" in processes["web"]
    assert processes["release"] == "bin/release"
    assert processes["worker"].startswith("celery -A cryptooracle worker ")
    assert processes["beat"].startswith("celery -A cryptooracle beat")


def test_release_migrates_off_elastic_beanstalk_and_waits_on_it():
    script = (ROOT / "bin" / "release").read_text()
    assert "exec python manage.py migrate --no-input" in script
    assert "/opt/elasticbeanstalk" in script and "sleep infinity" in script


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def scratch_postgres_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import psycopg2

    try:
        admin = psycopg2.connect(f"{POSTGRES_SERVER}/postgres", connect_timeout=5)
    except psycopg2.OperationalError as error:
        message = f"no PostgreSQL server at {POSTGRES_SERVER}: {error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    admin.autocommit = True
    name = f"deploytest_{secrets.token_hex(6)}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _wait_until_serving(base: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            requests.get(f"{base}/healthz", headers={"Host": HOST}, timeout=30)
            return
        except requests.ConnectionError:
            time.sleep(0.3)
    pytest.fail(f"gunicorn did not answer within 90 s:\n{log.read_text()[-4000:]}")


def _secure_headers_checked(response: requests.Response) -> None:
    assert response.headers.get("Strict-Transport-Security") == HSTS, response.url
    assert response.headers.get("X-Content-Type-Options") == "nosniff", response.url
    for cookie in response.raw.headers.getlist("Set-Cookie"):
        flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert "secure" in flags, f"{response.url} sets an insecure cookie: {cookie}"


@pytest.mark.postgres
def test_the_procfile_app_serves_pages_static_files_and_secure_headers(
    scratch_postgres_url, tmp_path
):
    processes = _procfile()
    port = _free_port()
    env = _production_environment(
        DATABASE_URL=scratch_postgres_url,
        PORT=str(port),
        WEB_CONCURRENCY="1",
        DJANGO_LOG_LEVEL="WARNING",
    )

    def run(command: str) -> None:
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"

    run(processes["release"])
    # STATIC_ROOT is the project's staticfiles/ (gitignored); the settings give no override.
    run("python manage.py collectstatic --no-input -v 0")

    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            ["bash", "-c", processes["web"]],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    https = {"Host": HOST, "X-Forwarded-Proto": "https"}
    try:
        _wait_until_serving(base, server, log)
        with requests.Session() as client:

            def get(path: str, headers=https) -> requests.Response:
                return client.get(f"{base}{path}", headers=headers, allow_redirects=False)

            for path in ("/", "/forecast/", "/evaluation/", "/healthz"):
                response = get(path)
                assert response.status_code == 200, f"{path}: {response.text[:2000]}"
                _secure_headers_checked(response)
            assert get("/healthz").json() == {"status": "ok"}

            manifest = json.loads((ROOT / "staticfiles" / "staticfiles.json").read_text())
            css = manifest["paths"]["predictor/site.css"]
            assert re.fullmatch(r"predictor/site\.[0-9a-f]{12}\.css", css)
            response = get(f"/static/{css}")
            assert response.status_code == 200 and "text/css" in response.headers["Content-Type"]
            assert "max-age=315360000" in response.headers["Cache-Control"]  # hashed: forever
            compressed = get(f"/static/{css}", {**https, "Accept-Encoding": "gzip"})
            assert compressed.headers.get("Content-Encoding") == "gzip"

            login = get("/admin/login/")
            assert login.status_code == 200
            cookies = login.raw.headers.getlist("Set-Cookie")
            assert any(c.startswith("csrftoken=") for c in cookies), cookies
            _secure_headers_checked(login)

            missing = get("/no-such-page/")
            assert missing.status_code == 404
            assert "Traceback" not in missing.text and "DEBUG = True" not in missing.text

            plain = get("/", {"Host": HOST})
            assert plain.status_code == 301
            assert plain.headers["Location"] == f"https://{HOST}/"
            # Load balancers probe over plain HTTP: /healthz is exempt from the redirect.
            assert get("/healthz", {"Host": HOST}).status_code == 200

            wrong_host = get("/", {"Host": "evil.example", "X-Forwarded-Proto": "https"})
            assert wrong_host.status_code == 400
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    # The wrong Host is logged with its traceback (django.security); nothing else may fail.
    assert "Internal Server Error" not in log.read_text(), log.read_text()[-4000:]


# .ebextensions -----------------------------------------------------------------------------


def _ebextensions() -> dict[str, dict]:
    files = sorted((ROOT / ".ebextensions").glob("*.config"))
    assert files, "no .ebextensions/*.config"
    configs = {}
    for path in files:
        config = yaml.safe_load(path.read_text())
        assert isinstance(config, dict), f"{path.name} is not a YAML mapping"
        configs[path.name] = config
    return configs


def _merged(section: str) -> dict:
    """One section across every file; EB merges `packages: yum:` and the like per key."""
    merged: dict = {}
    for config in _ebextensions().values():
        for key, value in (config.get(section) or {}).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def test_ebextensions_parse_and_use_only_known_sections():
    known = {
        "packages",
        "groups",
        "users",
        "sources",
        "files",
        "commands",
        "services",
        "container_commands",
        "option_settings",
        "Resources",
        "Outputs",
    }
    for name, config in _ebextensions().items():
        assert set(config) <= known, f"{name}: unknown keys {set(config) - known}"


def test_ebextensions_install_the_postgresql_client_libraries():
    yum = _merged("packages").get("yum") or {}
    assert any(re.match(r"(libpq|postgresql\d*)(-devel)?$", package) for package in yum), yum


def test_ebextensions_python_options():
    options = _merged("option_settings")
    python = options["aws:elasticbeanstalk:container:python"]
    assert python["WSGIPath"] == "cryptooracle.wsgi:application"
    environment = options["aws:elasticbeanstalk:application:environment"]
    assert environment["DJANGO_RUNTIME_ENVIRONMENT"] == "production"
    static = options["aws:elasticbeanstalk:environment:proxy:staticfiles"]
    assert static == {"/static": "staticfiles"}  # STATIC_URL -> STATIC_ROOT


def test_ebextensions_migrate_on_the_leader_and_collect_static_files():
    commands = _merged("container_commands")
    migrate = [c for c in commands.values() if "manage.py migrate" in c["command"]]
    assert len(migrate) == 1 and migrate[0].get("leader_only") is True
    assert any("manage.py collectstatic --no-input" in c["command"] for c in commands.values())


def test_ebextensions_leave_the_schedule_to_beat_not_cron():
    files = _merged("files")
    assert not any("cron" in name for name in files), files
    assert "cronie" not in (_merged("packages").get("yum") or {})
    environment = _merged("option_settings")["aws:elasticbeanstalk:application:environment"]
    assert int(environment["WORKER_CONCURRENCY"]) >= 1


# Heroku ------------------------------------------------------------------------------------


def test_heroku_sees_only_requirements_txt_as_the_package_manager_file():
    """poetry.lock stays in git; .slugignore hides it from the Python buildpack's detection."""
    ignored = {
        line.strip()
        for line in (ROOT / ".slugignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert "poetry.lock" in ignored
    assert (ROOT / "poetry.lock").exists() and (ROOT / "requirements.txt").exists()
    kept = {"requirements.txt", "Pipfile", "Pipfile.lock", "uv.lock", "poetry.lock"} - ignored
    assert {name for name in kept if (ROOT / name).exists()} == {"requirements.txt"}
    for needed in ("requirements.txt", ".python-version", "Procfile", "manage.py"):
        assert not any(Path(needed).match(pattern.lstrip("/")) for pattern in ignored), needed


def test_python_version_is_pinned_for_heroku():
    assert (ROOT / ".python-version").read_text().strip() == "3.11"  # Heroku reads .python-version
