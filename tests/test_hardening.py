"""Login throttling (django-axes) and the Content-Security-Policy header.

The test settings switch axes off (Django's test client logs in without a request, which
axes refuses); these tests switch it on and post real login forms.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from cryptooracle.security import policy_header

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parent.parent / "predictor" / "templates"
PASSWORD = "right-horse-battery-staple"


@pytest.fixture
def axes(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 5
    return settings


@pytest.fixture
def admin_user():
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


def login(client, url: str, password: str, **extra):
    return client.post(url, {"username": "root", "password": password}, **extra)


def logged_in(client) -> bool:
    return client.get(reverse("admin:index")).status_code == 200


@pytest.mark.parametrize("url_name", ["admin:login", "login"])
def test_a_locked_out_login_refuses_even_the_right_password(client, axes, admin_user, url_name):
    url = reverse(url_name)
    for attempt in range(1, 5):
        response = login(client, url, f"wrong-{attempt}")
        assert response.status_code == 200  # the form again, with its error
    assert login(client, url, "wrong-5").status_code == 429  # the fifth failure locks

    refused = login(client, url, PASSWORD)
    assert refused.status_code == 429 and not logged_in(client)

    # The lock is on this username from this address: another address still logs in.
    other = login(client, url, PASSWORD, REMOTE_ADDR="198.51.100.7")
    assert other.status_code == 302 and logged_in(client)


def test_failures_below_the_limit_are_forgotten_after_a_success(client, axes, admin_user):
    url = reverse("admin:login")
    for attempt in range(4):
        login(client, url, f"wrong-{attempt}")
    assert login(client, url, PASSWORD).status_code == 302
    client.logout()
    for attempt in range(4):
        assert login(client, url, f"again-{attempt}").status_code == 200
    assert login(client, url, PASSWORD).status_code == 302


def test_a_forged_forwarded_address_does_not_dodge_the_lock(client, axes, admin_user):
    """Behind one proxy the client is X-Forwarded-For's last entry, the one the proxy wrote;
    what the client put before it changes nothing."""
    axes.TRUSTED_PROXY_COUNT = 1
    url = reverse("admin:login")
    for attempt in range(5):
        forged = f"10.0.0.{attempt}, 203.0.113.9"
        login(client, url, f"wrong-{attempt}", HTTP_X_FORWARDED_FOR=forged)
    refused = login(client, url, PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.9")
    assert refused.status_code == 429
    accepted = login(client, url, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.10")
    assert accepted.status_code == 302


def directives(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


@pytest.mark.parametrize(
    ("url", "staff"),
    [
        ("/", False),
        ("/forecast/", False),
        ("/evaluation/", False),
        ("/api/prices/", False),
        ("/accounts/login/", False),
        ("/admin/login/", False),
        ("/jobs/", True),
        ("/jobs/new/", True),
        ("/admin/", True),
    ],
)
def test_every_page_sends_the_policy(client, admin_user, url, staff):
    if staff:
        client.force_login(admin_user)
    response = client.get(url)
    assert response.status_code == 200
    policy = directives(response)
    assert policy["script-src"] == "'self'"  # no inline scripts, no eval
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'self'"
    assert policy["form-action"] == "'self'"


def test_policy_header_joins_directives():
    assert policy_header({"default-src": "'self'", "upgrade-insecure-requests": ""}) == (
        "default-src 'self'; upgrade-insecure-requests"
    )


def test_templates_have_no_inline_scripts_or_handlers():
    """What script-src 'self' would block: inline <script> code and on* attributes."""
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (template.name, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert "javascript:" not in text, template.name
