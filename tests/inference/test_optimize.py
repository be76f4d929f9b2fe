"""BatchNorm folding (`timm_dan.inference.optimize.fold_batchnorms`): same function, same module tree."""
import logging

import pytest
import timm
import torch
import torch.nn as nn
from timm.layers import BatchNormAct2d, StdConv2d

from timm_dan.inference import fold_batchnorms


def _calibrated(name: str) -> nn.Module:
    """A random model whose BatchNorms hold non-trivial running statistics, as after some training."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=7).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 64, 64) * 2 + 0.5)
    return model.eval()


def _batchnorms(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize('name', ['dan_resnet18', 'dan_mobilenetv3_large_100'])
def test_folding_keeps_the_function_and_the_module_tree(name):
    model = _calibrated(name).reparameterize()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, maps = model(x), model.forward_attention(x)
    before = _batchnorms(model)
    acts = {n: type(m.act) for n, m in model.named_modules() if isinstance(m, BatchNormAct2d)}

    folded = fold_batchnorms(model)

    # every BatchNorm after a conv or Linear is gone; the channel attention's BatchNorm1d follows an einsum
    assert _batchnorms(model) == ['heads.ca_bn'] and folded == len(before) - 1
    assert isinstance(model.bn, nn.Identity) and isinstance(model.heads.reduce.bn, nn.Identity)
    for bn_name, act_type in acts.items():  # timm's norm + act layers keep their activation
        replacement = model.get_submodule(bn_name)
        assert isinstance(replacement, nn.Sequential) and isinstance(replacement[-1], act_type)
    if name == 'dan_mobilenetv3_large_100':
        assert any(t is nn.Hardswish for t in acts.values())
    with torch.no_grad():
        scale = logits.abs().max()
        assert (model.forward_head(model.forward_features(x)) - logits).abs().max() <= 1e-5 * scale
        assert (model(x) - logits).abs().max() <= 1e-5 * scale
        assert (model.forward_attention(x) - maps).abs().max() <= 1e-5 * maps.abs().max()
    assert fold_batchnorms(model) == 0  # nothing left to fold


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)  # foldable
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)  # conv2's output is read twice
        self.std_conv, self.bn3 = StdConv2d(8, 8, 1), nn.BatchNorm2d(8)  # standardises its weight: not foldable
        self.conv4, self.bn4 = nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8)  # bn4 stays in train mode
        self.conv5, self.bn5 = nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8)  # conv5 is called twice

    def forward(self, x):
        x = self.bn1(self.conv1(x)).relu()
        y = self.conv2(x)
        x = self.bn2(y) + y
        x = self.bn4(self.conv4(self.bn3(self.std_conv(x))))
        return self.bn5(self.conv5(x)) + self.conv5(x)


def test_folding_leaves_what_is_not_a_plain_conv_then_batchnorm():
    torch.manual_seed(0)
    block = _Block().train()
    with torch.no_grad():
        block(torch.randn(4, 3, 16, 16))
    block.eval()
    block.bn4.train()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        expected = block(x)
        assert fold_batchnorms(block) == 1
        assert isinstance(block.bn1, nn.Identity) and _batchnorms(block) == ['bn2', 'bn3', 'bn4', 'bn5']
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)) if x.sum() > 0 else x


def test_a_model_fx_cannot_trace_is_left_unchanged(caplog):
    model = _DataDependent().eval()
    with caplog.at_level(logging.WARNING):
        assert fold_batchnorms(model) == 0
    assert 'BatchNorm folding skipped' in caplog.text and '_DataDependent' in caplog.text
    assert isinstance(model.bn, nn.BatchNorm2d)
