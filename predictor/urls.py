from django.urls import path

from predictor import views

app_name = "predictor"

urlpatterns = [
    path("", views.index, name="index"),
    path("forecast/", views.forecast, name="forecast"),
    path("evaluation/", views.evaluation, name="evaluation"),
    path("api/prices/", views.index_data, name="index_data"),
    path("api/forecast/", views.forecast_data, name="forecast_data"),
    path("api/evaluation/", views.evaluation_data, name="evaluation_data"),
]
