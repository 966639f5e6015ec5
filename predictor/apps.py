from django.apps import AppConfig


class PredictorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "predictor"
    verbose_name = "Crypto Oracle predictor"

    def ready(self) -> None:
        # Saves and deletes of what the chart pages show invalidate their cached responses.
        from predictor import caching

        caching.connect_signals()
