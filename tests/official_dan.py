"""A naive DAN in the authors' module layout (written here from the paper's description), for conversion tests.

Its `state_dict()` has the released checkpoints' keys: `features.N.*` (torchvision ResNet-18 children minus
avgpool/fc), `cat_head{i}.sa.*` / `cat_head{i}.ca.attention.*`, `fc.*`, `bn.*`. Heads run one by one in a loop.
"""
import torch
import torch.nn as nn
import torchvision


def _conv_bn(in_chs: int, out_chs: int, kernel_size, padding) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, kernel_size, padding=padding), nn.BatchNorm2d(out_chs))


class SpatialAttention(nn.Module):
    def __init__(self, dim: int = 512):
        super().__init__()
        self.conv1x1 = _conv_bn(dim, dim // 2, 1, 0)
        self.conv_3x3 = _conv_bn(dim // 2, dim, 3, 1)
        self.conv_1x3 = _conv_bn(dim // 2, dim, (1, 3), (0, 1))
        self.conv_3x1 = _conv_bn(dim // 2, dim, (3, 1), (1, 0))

    def forward(self, x):
        y = self.conv1x1(x)
        y = torch.relu(self.conv_3x3(y) + self.conv_1x3(y) + self.conv_3x1(y))
        return x * y.sum(dim=1, keepdim=True)


class ChannelAttention(nn.Module):
    def __init__(self, dim: int = 512):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(dim, dim // 16), nn.BatchNorm1d(dim // 16), nn.ReLU(inplace=True),
            nn.Linear(dim // 16, dim), nn.Sigmoid())

    def forward(self, x):
        pooled = x.mean(dim=(2, 3))
        return pooled * self.attention(pooled)


class CrossAttentionHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.sa = SpatialAttention()
        self.ca = ChannelAttention()

    def forward(self, x):
        return self.ca(self.sa(x))


class OfficialDAN(nn.Module):
    def __init__(self, num_classes: int = 7, num_heads: int = 4):
        super().__init__()
        self.features = nn.Sequential(*list(torchvision.models.resnet18().children())[:-2])
        self.num_heads = num_heads
        for i in range(num_heads):
            setattr(self, f'cat_head{i}', CrossAttentionHead())
        self.fc = nn.Linear(512, num_classes)
        self.bn = nn.BatchNorm1d(num_classes)

    def forward(self, x):
        x = self.features(x)
        heads = torch.stack([getattr(self, f'cat_head{i}')(x) for i in range(self.num_heads)], dim=1)
        heads = torch.log_softmax(heads, dim=1)
        return self.bn(self.fc(heads.sum(dim=1)))


def randomized_official_checkpoint(num_classes: int, seed: int = 0) -> tuple:
    """(authors'-layout checkpoint dict, the eval-mode naive model) with random weights AND BN statistics."""
    torch.manual_seed(seed)
    model = OfficialDAN(num_classes)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.05)
                m.bias.normal_(0, 0.1)
    model.eval()
    checkpoint = {
        'iter': 21, 'model_state_dict': model.state_dict(),
        'optimizer_state_dict': {'state': {}, 'param_groups': [{'lr': 0.1, 'momentum': 0.9, 'params': [0, 1]}]},
    }
    return checkpoint, model
