"""The valence/arousal loss and metrics, calibration (ECE, NLL, temperature) and accuracy per group, against their
formulas written out here."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from timm_dan import CCCLoss, DANLoss, DANOutput, DANOutputWithVA
from timm_dan.metrics import (
    expected_calibration_error,
    fit_temperature,
    group_metrics,
    load_va_metrics,
    negative_log_likelihood,
    reliability_bins,
    save_reliability_diagram,
)


def _ccc_formula(x, y):
    """Lin (1989), written out with population moments over plain Python lists."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    vx = sum((a - mx) ** 2 for a in x) / n
    vy = sum((b - my) ** 2 for b in y) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / n
    return 2 * cov / (vx + vy + (mx - my) ** 2)


def test_ccc_loss_value_and_gradients_match_the_formula():
    torch.manual_seed(0)
    pred = torch.rand(6, 2, requires_grad=True)
    target = torch.rand(6, 2) * 2 - 1
    loss = CCCLoss()(pred, target)
    loss.backward()

    p2 = pred.detach().clone().double().requires_grad_()
    expected = sum(1 - _ccc_formula(list(p2[:, d]), list(target.double()[:, d])) for d in range(2))
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(pred.grad.double(), p2.grad, rtol=1e-4, atol=1e-6)
    # perfect agreement costs nothing; a constant shift or scale costs something although PCC would be 1
    assert CCCLoss()(target, target).item() == pytest.approx(0, abs=1e-6)
    assert CCCLoss()(target + 0.5, target).item() > 0.1


def test_ccc_loss_leaves_out_unknown_targets():
    pred = torch.tensor([[0.1, 0.5], [0.4, -0.2], [0.9, 0.3], [-0.3, 0.0]])
    target = torch.tensor([[0.0, math.nan], [0.5, -0.1], [1.0, math.nan], [-0.5, math.nan]])
    loss = CCCLoss()(pred, target)
    valence = 1 - _ccc_formula([0.1, 0.4, 0.9, -0.3], [0.0, 0.5, 1.0, -0.5])
    assert loss.item() == pytest.approx(valence, rel=1e-5)  # arousal: one target only, no term
    assert torch.isfinite(loss)


def test_dan_loss_adds_the_weighted_ccc_term_only_with_targets():
    torch.manual_seed(1)
    out = DANOutputWithVA(torch.randn(4, 3), torch.randn(4, 8, 2, 2), torch.randn(4, 2, 8), torch.rand(4, 2))
    labels, va = torch.tensor([0, 1, 2, 1]), torch.rand(4, 2)
    loss_fn = DANLoss(3, feat_dim=8, lambda_va=0.5)
    without = loss_fn(out, labels, return_parts=True)
    with_va = loss_fn(out, labels, va_target=va, return_parts=True)
    assert without.va is None and with_va.va.item() == pytest.approx(CCCLoss()(out.valence_arousal, va).item())
    assert with_va.total.item() == pytest.approx(without.total.item() + 0.5 * with_va.va.item(), rel=1e-6)
    with pytest.raises(ValueError, match='no V/A head'):
        loss_fn(DANOutput(*out[:3]), labels, va_target=va)


def test_va_metrics_match_formulas_and_libraries():
    rng = np.random.default_rng(0)
    ref = rng.uniform(-1, 1, (300, 2))
    pred = np.clip(0.7 * ref + rng.normal(0, 0.3, ref.shape) + [0.1, -0.05], -1, 1)
    ref[::7, 1] = np.nan  # arousal unknown for some images
    metric = load_va_metrics()
    for start in range(0, 300, 64):
        metric.add_batch(predictions=pred[start:start + 64], references=ref[start:start + 64])
    out = metric.compute()
    for d, name in enumerate(('valence', 'arousal')):
        keep = np.isfinite(ref[:, d])
        x, y = pred[keep, d], ref[keep, d]
        assert out[f'{name}_ccc'] == pytest.approx(_ccc_formula(list(x), list(y)))
        assert out[f'{name}_pcc'] == pytest.approx(pearsonr(x, y).statistic)
        assert out[f'{name}_rmse'] == pytest.approx(math.sqrt(sum((a - b) ** 2 for a, b in zip(x, y)) / len(x)))
        assert out[f'{name}_sagr'] == pytest.approx(sum((a > 0) == (b > 0) for a, b in zip(x, y)) / len(x))
    assert out['va_ccc'] == pytest.approx((out['valence_ccc'] + out['arousal_ccc']) / 2)
    assert out['num_va_samples'] == 300 - len(range(0, 300, 7))


def _ece_formula(probs, labels, bins=15):
    """Guo et al. (2017), eq. (3): sum over bins B_m of |B_m|/n |acc(B_m) - conf(B_m)|, bins ((m-1)/M, m/M]."""
    n, total = len(labels), 0.0
    for m in range(1, bins + 1):
        members = [i for i in range(n) if (m - 1) / bins < max(probs[i]) <= m / bins or (m == 1 and max(probs[i]) == 0)]
        if members:
            acc = sum(int(np.argmax(probs[i]) == labels[i]) for i in members) / len(members)
            conf = sum(max(probs[i]) for i in members) / len(members)
            total += len(members) / n * abs(acc - conf)
    return total


def _overconfident(n=2000, k=5, seed=0):
    """Logits of a model that is right 60% of the time but says so with ~99% confidence."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    predicted = np.where(rng.random(n) < 0.6, labels, rng.integers(0, k, n))
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), predicted] += 8.0
    return logits, labels


def test_ece_and_nll_match_their_formulas():
    logits, labels = _overconfident(200, 4, seed=1)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert expected_calibration_error(probs, labels) == pytest.approx(_ece_formula(probs.tolist(), labels.tolist()))
    nll = -sum(math.log(probs[i, labels[i]]) for i in range(len(labels))) / len(labels)
    assert negative_log_likelihood(logits, labels) == pytest.approx(nll)
    bins = reliability_bins(probs, labels)
    assert sum(bins['count']) == 200 and len(bins['count']) == 15
    assert bins['confidence'][0] is None  # no sample is that unsure


def test_temperature_scaling_makes_an_overconfident_model_calibrated(tmp_path):
    logits, labels = _overconfident(seed=2)
    fit_logits, fit_labels, test_logits, test_labels = logits[:1000], labels[:1000], logits[1000:], labels[1000:]
    temperature = fit_temperature(fit_logits, fit_labels)
    assert temperature > 1.5  # over-confident: the temperature softens
    # the fit is the NLL minimum: nearby temperatures are worse on the data it was fitted on
    nll = negative_log_likelihood(fit_logits, fit_labels, temperature)
    assert nll < negative_log_likelihood(fit_logits, fit_labels, temperature * 1.05)
    assert nll < negative_log_likelihood(fit_logits, fit_labels, temperature / 1.05)

    def ece(t):
        z = test_logits / t
        p = np.exp(z - z.max(1, keepdims=True))
        return expected_calibration_error(p / p.sum(1, keepdims=True), test_labels)

    before, after = ece(1.0), ece(temperature)
    assert before > 0.3 and after < before / 4  # on held-out data too
    assert negative_log_likelihood(test_logits, test_labels, temperature) < negative_log_likelihood(
        test_logits, test_labels)
    # the accuracy is unchanged: a temperature keeps the argmax
    assert (np.argmax(test_logits / temperature, 1) == np.argmax(test_logits, 1)).all()

    path = tmp_path / 'reliability.png'
    bins = {'before': reliability_bins(np.exp(test_logits) / np.exp(test_logits).sum(1, keepdims=True), test_labels)}
    save_reliability_diagram(bins, str(path), title='over-confident', ece={'before': before})
    assert path.stat().st_size > 5000


def test_fit_temperature_rejects_bad_shapes():
    with pytest.raises(ValueError, match='N x K logits and N labels'):
        fit_temperature(np.zeros((3, 2)), np.zeros(4, dtype=int))


def test_group_metrics_sizes_rates_and_largest_gap():
    refs = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    preds = [0, 1, 2, 0, 0, 0, 0, 1, 1, 0]
    gender = [0, 0, 0, 0, 1, 1, 1, 1, None, 0]  # ClassLabel indices; None: unknown
    out = group_metrics(preds, refs, gender, num_classes=3, names=['male', 'female', 'unsure'])
    male, female = out['groups']['male'], out['groups']['female']
    assert male == {'num_samples': 5, 'accuracy': 1.0, 'mean_class_accuracy': 1.0}
    assert female['num_samples'] == 4 and female['accuracy'] == pytest.approx(2 / 4)
    assert female['mean_class_accuracy'] == pytest.approx((1 / 1 + 1 / 2 + 0 / 1) / 3)
    assert out['groups']['unsure'] == {'num_samples': 0}
    assert out['unknown'] == 1
    assert out['largest_gap']['accuracy'] == {'value': pytest.approx(0.5), 'highest': 'male', 'lowest': 'female'}
    # any column: values name the groups
    by_site = group_metrics(preds, refs, ['a', 'b'] * 5, num_classes=3)
    assert set(by_site['groups']) == {'a', 'b'}
    with pytest.raises(ValueError, match='must be as many'):
        group_metrics(preds, refs[:-1], gender, num_classes=3)
