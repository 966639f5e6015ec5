from django.urls import path

from predictor import views, views_compare, views_download, views_jobs

app_name = "predictor"

urlpatterns = [
    path("", views.index, name="index"),
    path("forecast/", views.forecast, name="forecast"),
    path("evaluation/", views.evaluation, name="evaluation"),
    path("api/prices/", views.index_data, name="index_data"),
    path("api/forecast/", views.forecast_data, name="forecast_data"),
    path("api/evaluation/", views.evaluation_data, name="evaluation_data"),
    path("compare/", views_compare.compare, name="compare"),
    path("download/bars.csv", views_download.bars_csv, name="download_bars"),
    path("download/predictions.csv", views_download.predictions_csv, name="download_predictions"),
    path("download/scores.csv", views_download.scores_csv, name="download_scores"),
    # Jobs: str ids, so a malformed one reaches the view and gets the jobs' own 404 page.
    path("jobs/", views_jobs.job_list, name="jobs"),
    path("jobs/new/", views_jobs.launch, name="launch"),
    path("jobs/<str:job_id>/", views_jobs.job_detail, name="job"),
    path("jobs/<str:job_id>/cancel/", views_jobs.job_cancel, name="job_cancel"),
    path("jobs/<str:job_id>/retry/", views_jobs.job_retry, name="job_retry"),
    path("api/jobs/", views_jobs.job_list_data, name="jobs_data"),
    path("api/jobs/<str:job_id>/", views_jobs.job_data, name="job_data"),
]
