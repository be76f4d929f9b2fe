"""A naive DAN in the authors' module layout, written from the paper's description, for equality tests.

One module per head and a Python loop over heads, torchvision ResNet-18 children as `features`: the state
dict keys are those of the released checkpoints (`features.N.*`, `cat_head{i}.sa/ca.*`, `fc.*`, `bn.*`).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def _conv_bn(in_chs, out_chs, kernel_size, padding):
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, kernel_size, padding=padding), nn.BatchNorm2d(out_chs))


class SpatialAttention(nn.Module):
    def __init__(self, dim=512):
        super().__init__()
        self.conv1x1 = _conv_bn(dim, dim // 2, 1, 0)
        self.conv_3x3 = _conv_bn(dim // 2, dim, 3, 1)
        self.conv_1x3 = _conv_bn(dim // 2, dim, (1, 3), (0, 1))
        self.conv_3x1 = _conv_bn(dim // 2, dim, (3, 1), (1, 0))

    def attention_map(self, x):
        y = self.conv1x1(x)
        return F.relu(self.conv_3x3(y) + self.conv_1x3(y) + self.conv_3x1(y)).sum(dim=1, keepdim=True)

    def forward(self, x):
        return x * self.attention_map(x)


class ChannelAttention(nn.Module):
    def __init__(self, dim=512):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(dim, dim // 16), nn.BatchNorm1d(dim // 16), nn.ReLU(inplace=True),
            nn.Linear(dim // 16, dim), nn.Sigmoid(),
        )

    def forward(self, x):
        pooled = x.mean((2, 3))
        return pooled * self.attention(pooled)


class CrossAttentionHead(nn.Module):
    def __init__(self, dim=512):
        super().__init__()
        self.sa = SpatialAttention(dim)
        self.ca = ChannelAttention(dim)

    def forward(self, x):
        return self.ca(self.sa(x))


class ReferenceDAN(nn.Module):
    def __init__(self, num_classes=7, num_heads=4):
        super().__init__()
        resnet = torchvision.models.resnet18()
        self.features = nn.Sequential(*list(resnet.children())[:-2])
        self.num_heads = num_heads
        for i in range(num_heads):
            setattr(self, f'cat_head{i}', CrossAttentionHead())
        self.fc = nn.Linear(512, num_classes)
        self.bn = nn.BatchNorm1d(num_classes)

    def forward(self, x):
        x = self.features(x)
        heads = torch.stack([getattr(self, f'cat_head{i}')(x) for i in range(self.num_heads)], dim=1)
        if heads.size(1) > 1:
            heads = F.log_softmax(heads, dim=1)
        return self.bn(self.fc(heads.sum(dim=1))), x, heads

    def attention_maps(self, x):
        x = self.features(x)
        return torch.cat([getattr(self, f'cat_head{i}').sa.attention_map(x) for i in range(self.num_heads)], dim=1)


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
