"""Calibrated confidence: temperature scaling, expected calibration error, NLL and the reliability diagram.

Guo, Pleiss, Sun, Weinberger. "On Calibration of Modern Neural Networks", ICML 2017: one temperature T fitted on
held-out data by minimising the NLL of softmax(logits / T) with L-BFGS; the expected calibration error over 15
equal-width confidence bins, ECE = sum_b (n_b / n) |accuracy_b - confidence_b|.
"""
import math
import textwrap
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['NUM_BINS', 'TEMPERATURE_RANGE', 'fit_temperature', 'softmax', 'negative_log_likelihood',
           'expected_calibration_error', 'reliability_bins', 'calibration_metrics', 'save_reliability_diagram']

NUM_BINS = 15
TEMPERATURE_RANGE = (0.01, 100.0)
"""The temperatures `fit_temperature` searches: beyond 100 a softmax is uniform to 1e-2 for logits within 1 of each
other, and a model at chance would otherwise drive T towards infinity."""


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax(logits / temperature), computed stably."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean -log softmax(logits / temperature)[label]."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    m = z.max(axis=1, keepdims=True)
    log_probs = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(z)), np.asarray(labels)].mean())


def reliability_bins(probs: np.ndarray, labels: np.ndarray, num_bins: int = NUM_BINS) -> dict[str, list]:
    """Per confidence bin ((k/B, (k+1)/B], the first one closed): count, mean confidence, accuracy (None if empty)."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    index = np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
    count = np.bincount(index, minlength=num_bins)
    with np.errstate(invalid='ignore', divide='ignore'):
        mean_confidence = np.bincount(index, confidence, num_bins) / count
        accuracy = np.bincount(index, correct.astype(np.float64), num_bins) / count
    return {
        'count': count.tolist(),
        'confidence': [None if n == 0 else float(c) for n, c in zip(count, mean_confidence, strict=True)],
        'accuracy': [None if n == 0 else float(a) for n, a in zip(count, accuracy, strict=True)],
    }


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, num_bins: int = NUM_BINS) -> float:
    """ECE over `num_bins` equal-width bins of the top-1 confidence (a fraction in [0, 1])."""
    bins = reliability_bins(probs, labels, num_bins)
    total = max(sum(bins['count']), 1)
    return float(sum(n / total * abs(a - c) for n, a, c in zip(bins['count'], bins['accuracy'], bins['confidence'],
                                                                 strict=True) if n))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 50) -> float:
    """The temperature T in `TEMPERATURE_RANGE` minimising the NLL of softmax(logits / T) on (`logits`, `labels`), by
    L-BFGS on log T (as Guo et al.'s reference code, which runs 50 iterations).

    Fit it on a held-out (validation) split, never on the split the model is reported on.
    """
    logits_t = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if logits_t.ndim != 2 or len(logits_t) != len(labels_t) or not len(labels_t):
        raise ValueError(f'fit_temperature needs N x K logits and N labels, got {tuple(logits_t.shape)} and '
                         f'{tuple(labels_t.shape)}')
    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn='strong_wolfe')

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits_t / log_t.clamp(low, high).exp(), labels_t)  # no gradient beyond the range
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().clamp(low, high).exp())


def calibration_metrics(logits: np.ndarray, labels: np.ndarray, temperature: Optional[float] = None,
                        num_bins: int = NUM_BINS) -> dict[str, Any]:
    """ECE and NLL of softmax(logits / temperature) (`temperature` None: 1), with the reliability bins."""
    t = temperature or 1.0
    probs = softmax(logits, t)
    return {'ece': expected_calibration_error(probs, labels, num_bins),
            'nll': negative_log_likelihood(logits, labels, t),
            'reliability': reliability_bins(probs, labels, num_bins)}


def save_reliability_diagram(curves: dict[str, dict[str, list]], path: str, title: Optional[str] = None,
                             ece: Optional[dict[str, float]] = None) -> None:
    """Write a reliability diagram PNG: accuracy against confidence per bin, one curve per entry of `curves`
    (e.g. {'before': bins, 'after T=1.4': bins} from `reliability_bins`), the diagonal and the bin counts."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5.2, 6.2), sharex=True, gridspec_kw={'height_ratios': [3, 1]})
    ax.plot([0, 1], [0, 1], color='0.6', linestyle='--', linewidth=1, label='perfectly calibrated')
    width = 1 / len(next(iter(curves.values()))['count'])
    for i, (name, bins) in enumerate(curves.items()):
        points = [(c, a) for c, a in zip(bins['confidence'], bins['accuracy'], strict=True) if c is not None]
        label = name + (f' (ECE {100 * ece[name]:.1f}%)' if ece and name in ece else '')
        if points:
            ax.plot(*zip(*points, strict=True), marker='o', linewidth=1.5, label=label)
        centres = (np.arange(len(bins['count'])) + 0.5) * width
        offset = (i - (len(curves) - 1) / 2) * width / len(curves)
        counts.bar(centres + offset, bins['count'], width=width / len(curves), label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel='accuracy')
    ax.legend(loc='upper left', fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(textwrap.fill(title, 60), fontsize=10)  # a long model path wraps instead of being clipped
    counts.set(xlabel='confidence (top-1 probability)', ylabel='images')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

