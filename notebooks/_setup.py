"""Shared first cell of every notebook: `import _setup` from the notebooks folder.

It puts the repository root on sys.path so the notebooks import the project's own code
(`utils`, and `predictor` once Django is set up) instead of copying it, and reads the
CRYPTOORACLE_NOTEBOOK_FAST switch the tests use to keep each notebook short.
"""

import logging
import os
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_DIR / "data"
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

# CRYPTOORACLE_NOTEBOOK_FAST=1: fewer bars, fewer epochs, smaller models. For CI, not for
# conclusions: fast-mode scores say nothing about the models.
FAST = os.environ.get("CRYPTOORACLE_NOTEBOOK_FAST", "").strip().lower() in {"1", "true", "yes"}

# TensorFlow's start-up chatter (CUDA probing, retracing notes) is noise in a notebook.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
logging.getLogger("tensorflow").setLevel(logging.ERROR)
