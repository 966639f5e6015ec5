"""Today's "mase" was the MAE relative to persistence on the same bars: call it rel_mae.

Renames Evaluation.test_mase to test_rel_mae and, in the JSON already stored, the "mase" key
of every forecaster's scores (TrainingSession.metrics) and of every evaluated part
(Evaluation.results) to "rel_mae", so sessions made before the rename still display. The
true (Hyndman-Koehler) MASE needs the training part's scale, which old rows did not keep:
they show none until they are evaluated again.
"""

from django.db import migrations


def _rename_in(scores: dict, old: str, new: str) -> bool:
    if isinstance(scores, dict) and old in scores and new not in scores:
        scores[new] = scores.pop(old)
        return True
    return False


def _rename(apps, old: str, new: str) -> None:
    training_session = apps.get_model("predictor", "TrainingSession")
    evaluation = apps.get_model("predictor", "Evaluation")
    for session in training_session.objects.exclude(metrics={}).iterator():
        changed = False
        for part in (session.metrics or {}).values():
            if isinstance(part, dict):
                for forecaster in part.values():
                    changed |= _rename_in(forecaster, old, new)
        if changed:
            session.save(update_fields=["metrics"])
    for row in evaluation.objects.exclude(results={}).iterator():
        changed = False
        for part in (row.results or {}).values():
            if isinstance(part, dict):
                changed |= _rename_in(part.get("scores"), old, new)
        if changed:
            row.save(update_fields=["results"])


def forwards(apps, schema_editor) -> None:
    _rename(apps, "mase", "rel_mae")


def backwards(apps, schema_editor) -> None:
    """Drop the new true MASE first, so the old key gets the relative MAE back."""
    for model, field in (("TrainingSession", "metrics"), ("Evaluation", "results")):
        for row in apps.get_model("predictor", model).objects.iterator():
            stored = getattr(row, field) or {}
            for part in stored.values():
                if not isinstance(part, dict):
                    continue
                holders = [part.get("scores")] if field == "results" else list(part.values())
                for scores in holders:
                    if isinstance(scores, dict) and "rel_mae" in scores:
                        scores.pop("mase", None)
            row.save(update_fields=[field])
    _rename(apps, "rel_mae", "mase")


class Migration(migrations.Migration):
    dependencies = [
        ("predictor", "0005_evaluation_spread_bps"),
    ]

    operations = [
        migrations.RenameField(
            model_name="evaluation", old_name="test_mase", new_name="test_rel_mae"
        ),
        migrations.RunPython(forwards, backwards),
    ]
