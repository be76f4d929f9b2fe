"""FER classification metrics as a local `evaluate` module (no Hub access, no scikit-learn at run time).

Load it with `evaluate.load(timm_dan.metrics.FER_METRICS_PATH)`, add `predictions` and `references` (class
indices), then `compute(num_classes=K)`. All rates are fractions in [0, 1].
"""
import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Accuracy, mean class accuracy (balanced accuracy: the mean of the per-class recalls over the classes
present in the references), macro F1 (over the classes present in references or predictions, as scikit-learn),
per-class recall and the confusion matrix
(rows = true class, columns = predicted class)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted class indices.
    references (`list` of `int`): True class indices.
    num_classes (`int`, optional): Number of classes K (the confusion matrix is K x K); default: the largest
        index seen plus one.
Returns:
    accuracy, mean_class_accuracy, macro_f1 (floats), per_class_recall (K floats, None for a class absent from the
    references), confusion_matrix (K x K ints), num_samples (int).
"""

_CITATION = """@article{wen2023distract,
  title={Distract Your Attention: Multi-head Cross Attention Network for Facial Expression Recognition},
  author={Wen, Zhengyao and Lin, Wenzhong and Wang, Tao and Xu, Ge},
  journal={Biomimetics}, volume={8}, number={2}, pages={199}, year={2023}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FerMetrics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                'predictions': datasets.Value('int64'),
                'references': datasets.Value('int64'),
            }),
        )

    def _compute(self, predictions, references, num_classes=None) -> dict:
        pred = np.asarray(predictions, dtype=np.int64)
        ref = np.asarray(references, dtype=np.int64)
        if num_classes is None:
            num_classes = int(max(pred.max(initial=-1), ref.max(initial=-1))) + 1
        for name, values in (('predictions', pred), ('references', ref)):
            if values.size and (values.min() < 0 or values.max() >= num_classes):
                raise ValueError(f'{name} hold class indices outside [0, {num_classes}): {np.unique(values)}')
        cm = np.bincount(ref * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)
        support = cm.sum(1)
        predicted = cm.sum(0)
        true_pos = np.diag(cm)
        present = support > 0
        seen = present | (predicted > 0)
        with np.errstate(divide='ignore', invalid='ignore'):
            recall = np.where(present, true_pos / support, np.nan)
            precision = np.where(predicted > 0, true_pos / predicted, 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        return {
            'accuracy': float(true_pos.sum() / max(len(ref), 1)),
            'mean_class_accuracy': float(recall[present].mean()) if present.any() else 0.0,
            'macro_f1': float(np.nan_to_num(f1[seen]).mean()) if seen.any() else 0.0,
            'per_class_recall': [float(r) if has else None for r, has in zip(recall, present, strict=False)],
            'confusion_matrix': cm.tolist(),
            'num_samples': int(len(ref)),
        }
