"""The naive DAN, the test suite's correctness oracle (also the benchmarks' baseline), and checkpoints in the
authors' exact layout.

`ReferenceDAN` is written from the paper's description (Wen et al., "Distract Your Attention", arXiv 2109.07270,
Section 3): a ResNet-18 trunk (torchvision's, its children up to layer4), then H cross-attention heads, each its
own module run in a Python loop (spatial attention: 1x1 conv, then 3x3 + 1x3 + 3x1 convs summed, ReLU, summed
over channels, multiplied into the map; channel attention: global average pool, Linear-BN-ReLU-Linear-Sigmoid
gate), log-softmax across heads, the sum over heads, Linear, BatchNorm1d. Plain fp32 NCHW eager PyTorch, no fusion.

Its parameter names follow the authors' released checkpoints, so `timm_dan.convert_official_checkpoint` turns its
state dict into ours: that is how the tests and `benchmarks/` check that both compute the same function.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from timm_dan import DANOutput

__all__ = ['ReferenceDAN', 'randomize_', 'official_checkpoint']


def conv_bn(in_chs: int, out_chs: int, kernel_size: tuple) -> nn.Sequential:
    padding = (kernel_size[0] // 2, kernel_size[1] // 2)
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, kernel_size, padding=padding), nn.BatchNorm2d(out_chs))


class SpatialAttention(nn.Module):
    def __init__(self, dim: int = 512):
        super().__init__()
        self.conv1x1 = conv_bn(dim, dim // 2, (1, 1))
        self.conv_3x3 = conv_bn(dim // 2, dim, (3, 3))
        self.conv_1x3 = conv_bn(dim // 2, dim, (1, 3))
        self.conv_3x1 = conv_bn(dim // 2, dim, (3, 1))

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1x1(x)
        return F.relu(self.conv_3x3(y) + self.conv_1x3(y) + self.conv_3x1(y)).sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)


class ChannelAttention(nn.Module):
    def __init__(self, dim: int = 512, reduction: int = 16):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(dim, dim // reduction), nn.BatchNorm1d(dim // reduction), nn.ReLU(inplace=True),
            nn.Linear(dim // reduction, dim), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean((2, 3))
        return pooled * self.attention(pooled)


class CrossAttentionHead(nn.Module):
    def __init__(self, dim: int = 512):
        super().__init__()
        self.sa = SpatialAttention(dim)
        self.ca = ChannelAttention(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ca(self.sa(x))


class ReferenceDAN(nn.Module):
    """DAN as the paper describes it: ResNet-18 trunk, a list of heads looped over, fusion, classifier."""

    def __init__(self, num_classes: int = 7, num_heads: int = 4):
        super().__init__()
        resnet = torchvision.models.resnet18()
        self.features = nn.Sequential(*list(resnet.children())[:-2])
        self.num_heads = num_heads
        for i in range(num_heads):
            setattr(self, f'cat_head{i}', CrossAttentionHead())
        self.fc = nn.Linear(512, num_classes)
        self.bn = nn.BatchNorm1d(num_classes)

    def forward_train(self, x: torch.Tensor) -> DANOutput:
        features = self.features(x)
        heads = self.forward_heads(features)
        if self.num_heads > 1:
            heads = F.log_softmax(heads, dim=1)
        logits = self.bn(self.fc(heads.sum(dim=1)))
        return DANOutput(logits, features, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_train(x).logits

    def forward_heads(self, features: torch.Tensor) -> torch.Tensor:
        """The heads alone (B x H x C, before fusion), to compare with `CrossAttentionHeads`."""
        return torch.stack([getattr(self, f'cat_head{i}')(features) for i in range(self.num_heads)], dim=1)

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The heads' spatial attention maps, B x H x h x w, to compare with `DAN.forward_attention`."""
        features = self.features(x)
        return torch.cat([getattr(self, f'cat_head{i}').sa.attention_map(features) for i in range(self.num_heads)],
                         dim=1)


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BatchNorm statistic distinct random values (nothing left at 0/1 init)."""
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in module.state_dict().items():
        if name.endswith('num_batches_tracked'):
            tensor.fill_(7)
        elif name.endswith('running_var'):
            tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
        else:
            tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.05)
    return module


def official_checkpoint(num_classes: int = 7, seed: int = 0) -> dict:
    """A checkpoint in the exact layout of the authors' released files."""
    model = randomize_(ReferenceDAN(num_classes), seed)
    optimizer = {'state': {}, 'param_groups': []}
    return {'iter': 21, 'model_state_dict': model.state_dict(), 'optimizer_state_dict': optimizer}
