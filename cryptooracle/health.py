"""`/healthz`: a load balancer's probe that the app is up and can reach its database.

It answers plain HTTP (production's SECURE_REDIRECT_EXEMPT lists it), because Elastic
Beanstalk's and other health checkers call the instance directly, without the proxy's
X-Forwarded-Proto header. It reads no model, so it stays cheap under frequent polling.
"""

import logging

from django.db import DatabaseError, connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.warning("health check: database unreachable: %s", error)
        detail = f"database: {type(error).__name__}: {str(error).strip()[:200]}"
        return JsonResponse({"status": "error", "detail": detail}, status=503)
    return JsonResponse({"status": "ok"})
