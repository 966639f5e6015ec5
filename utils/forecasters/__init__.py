"""Forecasters: one interface (base.Forecaster) and one registry of model kinds.

Adding a kind is one new module with a registered class, imported below (and a migration,
since the session's model_kind choices and constraint are derived from the registry).
"""

from utils.forecasters import baselines, gru, lightgbm, prophet, recurrent  # noqa: F401
from utils.forecasters.base import (
    REGISTRY,
    ArtifactError,
    Forecaster,
    TrainingPart,
    WindowForecaster,
)

# Every kind, in the order of registration: -M's choices and the model_kind choices.
MODEL_KINDS: tuple[str, ...] = tuple(REGISTRY)


def forecaster_class(kind: str) -> type[Forecaster]:
    """The class of a model kind, or ValueError listing the kinds."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown model {kind!r}: choose one of {', '.join(MODEL_KINDS)}")
    return REGISTRY[kind]


__all__ = [
    "MODEL_KINDS",
    "REGISTRY",
    "ArtifactError",
    "Forecaster",
    "TrainingPart",
    "WindowForecaster",
    "forecaster_class",
]
