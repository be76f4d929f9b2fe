"""FER metrics: local `evaluate` modules (load offline) for the classes and for valence/arousal, calibration (ECE,
NLL, temperature scaling, the reliability diagram), accuracy per group, and the confusion-matrix plot."""
from collections.abc import Sequence
from typing import Optional

from .calibration import (
    NUM_BINS,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
    save_reliability_diagram,
)
from .groups import GROUP_METRICS, group_metrics
from .modules import FER_METRICS_PATH, VA_METRICS_PATH, load_fer_metrics, load_va_metrics

__all__ = [
    'FER_METRICS_PATH', 'VA_METRICS_PATH', 'load_fer_metrics', 'load_va_metrics', 'save_confusion_matrix',
    'NUM_BINS', 'fit_temperature', 'expected_calibration_error', 'negative_log_likelihood', 'reliability_bins',
    'calibration_metrics', 'save_reliability_diagram', 'GROUP_METRICS', 'group_metrics',
]


def save_confusion_matrix(
        confusion_matrix: Sequence[Sequence[int]],
        label_names: Sequence[str],
        path: str,
        title: Optional[str] = None,
) -> None:
    """Write the confusion matrix as a PNG (row-normalised colours, counts written in the cells)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.asarray(confusion_matrix)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = 1.0 + 0.7 * len(label_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(rates, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha='right')
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha='center', va='center', color='white' if rates[i, j] > 0.5 else 'black')
    fig.colorbar(image, ax=ax, label='fraction of the true class')
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
