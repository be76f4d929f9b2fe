"""The local `evaluate` modules (they load offline): FER classification metrics and valence/arousal metrics."""
from pathlib import Path
from typing import Any

import evaluate

__all__ = ['FER_METRICS_PATH', 'VA_METRICS_PATH', 'load_fer_metrics', 'load_va_metrics']

FER_METRICS_PATH = str(Path(__file__).parent / 'fer_metrics' / 'fer_metrics.py')
"""Path of the classification module: `evaluate.load(FER_METRICS_PATH)` works offline."""

VA_METRICS_PATH = str(Path(__file__).parent / 'va_metrics' / 'va_metrics.py')
"""Path of the valence/arousal module (CCC, PCC, RMSE, SAGR per dimension)."""


def load_fer_metrics(**kwargs: Any) -> evaluate.EvaluationModule:
    """`evaluate.load` of the FER metrics, kept in memory (no cache files shared between processes)."""
    kwargs.setdefault('keep_in_memory', True)
    return evaluate.load(FER_METRICS_PATH, **kwargs)


def load_va_metrics(**kwargs: Any) -> evaluate.EvaluationModule:
    """`evaluate.load` of the valence/arousal metrics, kept in memory."""
    kwargs.setdefault('keep_in_memory', True)
    return evaluate.load(VA_METRICS_PATH, **kwargs)
