from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy

from cryptooracle.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),  # no slash: SECURE_REDIRECT_EXEMPT matches it
    path("admin/", admin.site.urls),
    # Django's own login and logout (LOGIN_URL's default, /accounts/login/): the jobs pages.
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(next_page=reverse_lazy("predictor:jobs")),
        name="login",
    ),
    path(
        "accounts/logout/",
        auth_views.LogoutView.as_view(next_page=reverse_lazy("predictor:index")),
        name="logout",
    ),
    path("", include("predictor.urls")),
]

if "debug_toolbar" in settings.INSTALLED_APPS:  # development with the dev dependencies
    urlpatterns.append(path("__debug__/", include("debug_toolbar.urls")))
