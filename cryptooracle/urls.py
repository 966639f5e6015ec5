from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from cryptooracle.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),  # no slash: SECURE_REDIRECT_EXEMPT matches it
    path("admin/", admin.site.urls),
    path("", include("predictor.urls")),
]

if "debug_toolbar" in settings.INSTALLED_APPS:  # development with the dev dependencies
    urlpatterns.append(path("__debug__/", include("debug_toolbar.urls")))
