"""DAN's losses against their formulas written out here, values and gradients."""
import pytest
import timm
import torch
import torch.nn.functional as F

import timm_dan
from timm_dan import AffinityLoss, DANLoss, PartitionLoss

EPS64 = 2.220446049250313e-16


def _affinity_formula(x, centers, target):
    spread = sum(  # sum over feature dims of the unbiased variance over classes
        sum((centers[k, d] - centers[:, d].mean()) ** 2 for k in range(centers.shape[0])) / (centers.shape[0] - 1)
        for d in range(centers.shape[1])
    )
    terms = [((x[i] - centers[target[i]]) ** 2).sum() / spread for i in range(x.shape[0])]
    return sum(t.clamp(1e-12, 1e12) for t in terms) / x.shape[0]


def test_affinity_value_and_gradients_match_formula():
    torch.manual_seed(0)
    loss_fn = AffinityLoss(num_classes=5, feat_dim=6)
    x = torch.randn(4, 6, requires_grad=True)
    target = torch.tensor([0, 2, 2, 4])
    loss = loss_fn(x, target)
    loss.backward()

    x2 = x.detach().clone().requires_grad_()
    c2 = loss_fn.centers.detach().clone().requires_grad_()
    expected = _affinity_formula(x2, c2, target)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(loss_fn.centers.grad, c2.grad)
    # the centres that no sample points at still get a gradient, through the variance term
    assert loss_fn.centers.grad[1].abs().sum() > 0


def test_affinity_pools_a_feature_map_and_inits_centres_normal():
    torch.manual_seed(1)
    loss_fn = AffinityLoss(num_classes=7, feat_dim=512)
    assert abs(loss_fn.centers.mean().item()) < 0.05 and abs(loss_fn.centers.std().item() - 1) < 0.05
    fmap = torch.randn(3, 512, 7, 7)
    target = torch.tensor([1, 6, 0])
    torch.testing.assert_close(loss_fn(fmap, target), loss_fn(fmap.mean((2, 3)), target))
    with pytest.raises(ValueError, match='expects 512 feature channels, got 256'):
        loss_fn(torch.randn(3, 256), target)


def test_affinity_clamps_each_term():
    loss_fn = AffinityLoss(num_classes=2, feat_dim=3)
    with torch.no_grad():
        loss_fn.centers.copy_(torch.tensor([[0., 0., 0.], [1., 1., 1.]]))
    x = loss_fn.centers.detach().clone()  # every sample sits on its centre: each term is clamped to 1e-12
    assert loss_fn(x, torch.tensor([0, 1])).item() == pytest.approx(1e-12)


def test_partition_value_and_gradients_match_formula():
    torch.manual_seed(2)
    heads = torch.randn(5, 4, 8, dtype=torch.float32, requires_grad=True)
    loss = PartitionLoss()(heads)
    loss.backward()
    h2 = heads.detach().clone().requires_grad_()
    mean = h2.mean(1, keepdim=True)
    var = ((h2 - mean) ** 2).sum(1) / (h2.shape[1] - 1)
    expected = torch.log(1 + 4 / (var.mean() + EPS64))
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(heads.grad, h2.grad)


def test_partition_is_zero_for_one_head_and_finite_for_identical_heads():
    assert PartitionLoss()(torch.randn(3, 1, 8)).item() == 0
    same = torch.ones(2, 4, 8)
    assert torch.isfinite(PartitionLoss()(same))  # var = 0: eps keeps it finite (log(1 + 4 / eps))
    expected = torch.log1p(torch.tensor(4 / EPS64, dtype=torch.float64)).item()
    assert PartitionLoss()(same).item() == pytest.approx(expected)


def test_dan_loss_is_the_weighted_sum_on_model_output():
    torch.manual_seed(3)
    model = timm.create_model('dan_resnet18', num_classes=7).train()
    out = model.forward_train(torch.randn(4, 3, 32, 32))
    target = torch.tensor([0, 1, 5, 6])
    loss_fn = DANLoss(num_classes=7, feat_dim=model.num_features, lambda_affinity=0.5, lambda_partition=2.0)
    parts = loss_fn(out, target, return_parts=True)
    assert isinstance(parts, timm_dan.DANLossParts)
    torch.testing.assert_close(parts.ce, F.cross_entropy(out.logits, target))
    torch.testing.assert_close(parts.affinity, loss_fn.affinity(out.features, target))
    torch.testing.assert_close(parts.partition, PartitionLoss()(out.heads))
    torch.testing.assert_close(parts.total, parts.ce + 0.5 * parts.affinity + 2.0 * parts.partition)
    total = loss_fn(out, target)
    torch.testing.assert_close(total, parts.total)
    total.backward()
    assert loss_fn.affinity.centers.grad is not None and model.heads.ca_fc2_weight.grad is not None


def test_affinity_needs_two_classes():
    with pytest.raises(ValueError, match='at least 2 classes'):
        AffinityLoss(num_classes=1, feat_dim=4)
