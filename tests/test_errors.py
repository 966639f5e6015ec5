"""One base class for expected errors: commands and the web answer any of them the same way."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from predictor.management.base import OracleCommand
from predictor.middleware import ExpectedErrorMiddleware
from predictor.services.auditing import BarsChangedError
from predictor.services.backtesting import BacktestInputError
from predictor.services.bars import SeriesKeyError
from predictor.services.evaluation import EvaluationError
from predictor.services.forecasting import ForecastError
from predictor.services.jobs import JobError
from predictor.services.sweeps import SweepError
from predictor.services.training import TrainingInputError
from predictor.services.updating import UpdateError
from utils.coinapi import CoinApiAuthError, CoinApiError
from utils.csv_formats import CsvFormatError
from utils.errors import CryptoOracleError
from utils.forecasters import ArtifactError

EXPECTED = [
    ArtifactError,
    BacktestInputError,
    BarsChangedError,
    CoinApiAuthError,
    CoinApiError,
    CsvFormatError,
    EvaluationError,
    ForecastError,
    JobError,
    SeriesKeyError,
    SweepError,
    TrainingInputError,
    UpdateError,
]


@pytest.mark.parametrize("error_class", EXPECTED, ids=lambda c: c.__name__)
def test_every_expected_error_shares_the_base(error_class):
    assert issubclass(error_class, CryptoOracleError)
    assert issubclass(error_class, ValueError)  # callers catching ValueError still catch it


def test_bars_changed_is_still_a_runtime_error():
    assert issubclass(BarsChangedError, RuntimeError)


class _Raises(OracleCommand):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def handle(self, *args, **options):
        raise self.error


def test_a_command_turns_an_expected_error_into_a_command_error():
    with pytest.raises(CommandError, match=r"^no job 42$") as caught:
        call_command(_Raises(JobError("no job 42")))
    assert caught.value.returncode == 1
    assert isinstance(caught.value.__cause__, JobError)


def test_a_command_keeps_other_exceptions():
    with pytest.raises(KeyError):
        call_command(_Raises(KeyError("bug")))


@pytest.mark.django_db
def test_an_unknown_session_ends_a_real_command_with_its_one_line_message():
    with pytest.raises(CommandError, match="session"):
        call_command("forecast", "-T", "not-a-session")


def _middleware() -> ExpectedErrorMiddleware:
    return ExpectedErrorMiddleware(lambda request: pytest.fail("not called"))


def test_the_web_answers_an_expected_error_with_a_json_400():
    request = RequestFactory().get("/evaluation/data", HTTP_ACCEPT="application/json")
    response = _middleware().process_exception(request, EvaluationError("no bars in range"))
    assert response is not None
    assert response.status_code == 400
    assert json.loads(response.content) == {"error": "no bars in range"}


@pytest.mark.django_db
def test_the_web_answers_an_expected_error_with_a_400_page():
    request = RequestFactory().get("/evaluation", HTTP_ACCEPT="text/html")
    response = _middleware().process_exception(request, TrainingInputError("no session x"))
    assert response is not None
    assert response.status_code == 400
    assert "no session x" in response.content.decode()


def test_the_web_leaves_other_exceptions_to_django():
    request = RequestFactory().get("/")
    assert _middleware().process_exception(request, KeyError("bug")) is None


def test_the_middleware_is_installed():
    from django.conf import settings

    assert "predictor.middleware.ExpectedErrorMiddleware" in settings.MIDDLEWARE
