"""Valence/arousal metrics as a local `evaluate` module (no Hub access): CCC, PCC, RMSE and SAGR per dimension.

Load it with `evaluate.load(timm_dan.metrics.VA_METRICS_PATH)`, add `predictions` and `references` (rows of
(valence, arousal), NaN references for images without them), then `compute()`. The measures of AffectNet's
baselines (Mollahosseini et al. 2019, Section 5.2) and of EmoNet (Toisoul et al. 2021).
"""
import datasets
import evaluate
import numpy as np

DIMENSIONS = ('valence', 'arousal')

_DESCRIPTION = """Per dimension (valence, arousal), over the references that are finite: Lin's concordance correlation
coefficient (CCC = 2 cov / (var_x + var_y + (mean_x - mean_y)^2), population moments), Pearson's correlation (PCC),
the root mean squared error (RMSE) and the sign agreement (SAGR, the fraction of samples whose prediction has the
sign of the reference; numpy's sign, so a reference of exactly 0 agrees only with a prediction of exactly 0)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `[valence, arousal]`): Predicted values in [-1, 1].
    references (`list` of `[valence, arousal]`): True values in [-1, 1]; NaN where unknown (left out).
Returns:
    valence_ccc, valence_pcc, valence_rmse, valence_sagr, the same for arousal (floats; None for a dimension with
    fewer than 2 finite references), va_ccc (the mean CCC of the two), num_va_samples (the references counted,
    per dimension the smaller count).
"""

_CITATION = """@article{lin1989concordance,
  title={A concordance correlation coefficient to evaluate reproducibility},
  author={Lin, Lawrence I-Kuei}, journal={Biometrics}, volume={45}, number={1}, pages={255--268}, year={1989}
}"""


def _dimension(x: np.ndarray, y: np.ndarray) -> dict:
    """The four measures of one dimension (`y` finite)."""
    if len(y) < 2:
        return {'ccc': None, 'pcc': None, 'rmse': None, 'sagr': None}
    dx, dy = x - x.mean(), y - y.mean()
    var_x, var_y, cov = (dx * dx).mean(), (dy * dy).mean(), (dx * dy).mean()
    denominator = var_x + var_y + (x.mean() - y.mean()) ** 2
    return {
        'ccc': float(2 * cov / denominator) if denominator > 0 else 0.0,
        'pcc': float(cov / np.sqrt(var_x * var_y)) if var_x > 0 and var_y > 0 else 0.0,
        'rmse': float(np.sqrt(((x - y) ** 2).mean())),
        'sagr': float((np.sign(x) == np.sign(y)).mean()),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VaMetrics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                'predictions': datasets.Sequence(datasets.Value('float64'), length=2),
                'references': datasets.Sequence(datasets.Value('float64'), length=2),
            }),
        )

    def _compute(self, predictions, references) -> dict:
        pred = np.asarray(predictions, dtype=np.float64).reshape(-1, 2)
        ref = np.asarray(references, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(pred).all():
            raise ValueError('valence/arousal predictions must be finite numbers')
        out, counts, cccs = {}, [], []
        for d, name in enumerate(DIMENSIONS):
            valid = np.isfinite(ref[:, d])
            counts.append(int(valid.sum()))
            values = _dimension(pred[valid, d], ref[valid, d])
            out.update({f'{name}_{k}': v for k, v in values.items()})
            cccs.append(values['ccc'])
        out['va_ccc'] = None if None in cccs else float(np.mean(cccs))
        out['num_va_samples'] = min(counts)
        return out
