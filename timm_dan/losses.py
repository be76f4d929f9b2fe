"""DAN's training losses: cross-entropy + affinity loss (FCN) + partition loss (AFN).

Wen et al., "Distract Your Attention", arXiv 2109.07270, Sections 3.2 and 3.4.
"""
from typing import NamedTuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models.dan import DANOutput

__all__ = ['AffinityLoss', 'PartitionLoss', 'DANLoss', 'DANLossParts']

_EPS = torch.finfo(torch.float64).eps


class AffinityLoss(nn.Module):
    """Pulls each feature to its class centre, normalised by the spread of the centres.

    loss = (1/B) sum_i ||x_i - c_{y_i}||^2 / sum_d Var_k(c_{k,d}), each term clamped to [1e-12, 1e12],
    with `centers` (num_classes x feat_dim, N(0, 1) init) learnt with the model's optimizer.
    """

    def __init__(self, num_classes: int, feat_dim: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f'AffinityLoss needs at least 2 classes (the variance over centres), got {num_classes}')
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`features`: the backbone map B x C x h x w (average-pooled here) or pooled B x C."""
        if features.ndim == 4:
            features = features.mean((2, 3))
        if features.shape[1] != self.feat_dim:
            raise ValueError(f'AffinityLoss expects {self.feat_dim} feature channels, got {features.shape[1]}')
        features = features.float()
        dist = (features - self.centers[target]).pow(2).sum(1)
        spread = self.centers.var(dim=0, unbiased=True).sum()
        return (dist / spread).clamp(1e-12, 1e12).mean()


class PartitionLoss(nn.Module):
    """Pushes the heads apart: log(1 + H / (mean over batch and channels of the variance across heads + eps))."""

    def forward(self, heads: torch.Tensor) -> torch.Tensor:
        """`heads`: B x H x C, the fused heads (after the log-softmax)."""
        num_heads = heads.shape[1]
        if num_heads == 1:
            return heads.new_zeros((), dtype=torch.float32)
        var = heads.float().var(dim=1, unbiased=True).mean()
        return torch.log1p(num_heads / (var + _EPS))


class DANLossParts(NamedTuple):
    total: torch.Tensor
    ce: torch.Tensor
    affinity: torch.Tensor
    partition: torch.Tensor


class DANLoss(nn.Module):
    """CE + lambda_affinity * affinity + lambda_partition * partition, called on a `DANOutput`.

    Pass this module through `accelerator.prepare` so the affinity centres are synchronised across processes.
    """

    def __init__(
            self,
            num_classes: int,
            feat_dim: int = 512,
            lambda_affinity: float = 1.0,
            lambda_partition: float = 1.0,
            label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.affinity = AffinityLoss(num_classes, feat_dim)
        self.partition = PartitionLoss()
        self.lambda_affinity = lambda_affinity
        self.lambda_partition = lambda_partition
        self.label_smoothing = label_smoothing

    def forward(
            self,
            output: DANOutput,
            target: torch.Tensor,
            return_parts: bool = False,
    ) -> Union[torch.Tensor, DANLossParts]:
        """The total loss; with `return_parts=True` a `DANLossParts(total, ce, affinity, partition)`."""
        ce = F.cross_entropy(output.logits.float(), target, label_smoothing=self.label_smoothing)
        affinity = self.affinity(output.features, target)
        partition = self.partition(output.heads)
        total = ce + self.lambda_affinity * affinity + self.lambda_partition * partition
        return DANLossParts(total, ce, affinity, partition) if return_parts else total
