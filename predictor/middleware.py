"""The web's side of utils.errors: an expected error a view lets through is a 400.

A view may leave any CryptoOracleError (a bad id, a range with no bars, a job that cannot be
retried) to this middleware instead of catching it: the answer is a 400 carrying the error's
own one-line message, as JSON for requests that ask for JSON (the pages' fetches) and as a
page otherwise. Views that answer such an error in their own way (a form shown again with
the message beside the field) still catch it first; other exceptions keep Django's 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from utils.errors import CryptoOracleError


def wants_json(request: HttpRequest) -> bool:
    """Fetches from the pages' scripts ask for JSON; a browser's navigation asks for HTML."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


class ExpectedErrorMiddleware:
    """CryptoOracleError -> 400 with its message; everything else passes untouched."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, CryptoOracleError):
            return None
        message = str(exception)
        if wants_json(request):
            body = json.dumps({"error": message})
            return HttpResponse(body, content_type="application/json", status=400)
        return render(request, "predictor/bad_request.html", {"message": message}, status=400)
