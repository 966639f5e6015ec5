"""Content-Security-Policy on every response, and the client address login throttling counts.

The policy (settings.CONTENT_SECURITY_POLICY, one directive per key) allows scripts only
from this site's own files: the pages' data travels in <script type="application/json">
blocks, which browsers never execute, and no template has inline JavaScript or event
handler attributes. A response that already set the header (a view with its own policy)
keeps it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


def policy_header(policy: dict[str, str]) -> str:
    """'directive sources; ...' from {directive: sources}; an empty value is a bare directive."""
    return "; ".join(f"{name} {value}".strip() for name, value in policy.items())


class ContentSecurityPolicyMiddleware:
    """Adds settings.CONTENT_SECURITY_POLICY to every response that has none."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.header = policy_header(settings.CONTENT_SECURITY_POLICY)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.header and HEADER not in response:
            response[HEADER] = self.header
        return response


def client_ip(request: HttpRequest) -> str | None:
    """The address django-axes counts failed logins by (AXES_CLIENT_IP_CALLABLE).

    Behind TRUSTED_PROXY_COUNT proxies (Heroku's router, an Elastic Beanstalk load balancer:
    1) the client is the entry that many places from the right of X-Forwarded-For, which
    each proxy appends to; entries further left are the client's own say and could be forged
    to dodge the lockout. With no proxy, the socket's address.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [
        part.strip()
        for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if part.strip()
    ]
    if proxies and len(forwarded) >= proxies:
        return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")
