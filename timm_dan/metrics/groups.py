"""Accuracy per group (e.g. RAF-DB's gender, race and age annotations): for whom a model works less well."""
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from .modules import load_fer_metrics

__all__ = ['GROUP_METRICS', 'group_metrics']

GROUP_METRICS = ('accuracy', 'mean_class_accuracy')


def group_metrics(
        predictions: Sequence[int],
        references: Sequence[int],
        groups: Sequence[Any],
        num_classes: int,
        names: Optional[Sequence[str]] = None,
) -> dict[str, Any]:
    """Accuracy and mean class accuracy of each group, its size, and the largest gap between two groups.

    Args:
        predictions, references: Class indices, one per sample.
        groups: The group of each sample: an index into `names` (a `ClassLabel` column), or any value (its text
            names the group); None means unknown and is counted apart.
        num_classes: Number of classes (as in the FER metrics).
        names: Group names of a `ClassLabel` column, in index order (groups without samples are listed empty).

    Returns:
        {'groups': {name: {'num_samples', 'accuracy', 'mean_class_accuracy'}}, 'unknown': count,
         'largest_gap': {metric: {'value', 'highest', 'lowest'}}}; rates are fractions in [0, 1].
    """
    predictions, references = np.asarray(predictions), np.asarray(references)
    if not len(predictions) == len(references) == len(groups):
        raise ValueError(f'group_metrics: {len(predictions)} predictions, {len(references)} references and '
                         f'{len(groups)} group values must be as many')
    keys = [None if g is None else (names[g] if names is not None else str(g)) for g in groups]
    order = list(names) if names is not None else sorted({k for k in keys if k is not None})
    metric = load_fer_metrics()
    table: dict[str, dict[str, Any]] = {}
    for name in order:
        rows = np.fromiter((k == name for k in keys), bool, len(keys))
        entry: dict[str, Any] = {'num_samples': int(rows.sum())}
        if rows.any():
            values = metric.compute(predictions=predictions[rows].tolist(), references=references[rows].tolist(),
                                    num_classes=num_classes)
            entry.update({k: values[k] for k in GROUP_METRICS})
        table[name] = entry
    measured = {name: entry for name, entry in table.items() if entry['num_samples']}
    gaps = {}
    for key in GROUP_METRICS if len(measured) > 1 else ():
        highest = max(measured, key=lambda n: measured[n][key])  # on ties: the first highest, the last lowest
        lowest = min(reversed(list(measured)), key=lambda n: measured[n][key])
        gaps[key] = {'value': measured[highest][key] - measured[lowest][key], 'highest': highest, 'lowest': lowest}
    return {'groups': table, 'unknown': sum(k is None for k in keys), 'largest_gap': gaps}
