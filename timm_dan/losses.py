"""DAN's training losses: cross-entropy + affinity loss (FCN) + partition loss (AFN), and the CCC loss of the
valence/arousal head.

Wen et al., "Distract Your Attention", arXiv 2109.07270, Sections 3.2 and 3.4; the CCC loss as in Kossaifi et al.,
"AFEW-VA" (2017) and Toisoul et al., "Estimation of continuous valence and arousal levels from faces in
naturalistic conditions" (Nature Machine Intelligence, 2021).
"""
from typing import NamedTuple, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models.dan import DANOutput, DANOutputWithVA

__all__ = ['AffinityLoss', 'PartitionLoss', 'CCCLoss', 'DANLoss', 'DANLossParts']

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


def concordance(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lin's concordance correlation coefficient per column of B x D tensors, over the rows whose target is finite.

    CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2), with population (1/n) moments. Returns
    (CCC per column, D; the number of finite targets per column, D). A column with fewer than 2 targets gets CCC 0.
    """
    prediction, target = prediction.float(), target.float()
    valid = torch.isfinite(target)
    weight = valid.float()
    count = weight.sum(0)
    n = count.clamp(min=1)
    target = torch.where(valid, target, 0.)
    mean_x = (weight * prediction).sum(0) / n
    mean_y = (weight * target).sum(0) / n
    dx, dy = weight * (prediction - mean_x), weight * (target - mean_y)
    var_x, var_y, cov = (dx * dx).sum(0) / n, (dy * dy).sum(0) / n, (dx * dy).sum(0) / n
    ccc = 2 * cov / (var_x + var_y + (mean_x - mean_y) ** 2 + _EPS)
    return torch.where(count >= 2, ccc, 0.), count


class CCCLoss(nn.Module):
    """Sum over the dimensions (valence, arousal) of 1 - CCC, Lin's concordance correlation coefficient.

    Computed over the batch; NaN targets (AffectNet's images without valence/arousal) are left out, and a
    dimension with fewer than 2 targets in the batch contributes 0.
    """

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`prediction`, `target`: B x D (D = 2: valence, arousal)."""
        if prediction.shape != target.shape:
            raise ValueError(f'CCCLoss: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ')
        ccc, count = concordance(prediction, target)
        return torch.where(count >= 2, 1 - ccc, 0.).sum()


class DANLossParts(NamedTuple):
    total: torch.Tensor
    ce: torch.Tensor
    affinity: torch.Tensor
    partition: torch.Tensor
    va: Optional[torch.Tensor] = None  # the CCC loss of the valence/arousal head (None: no such head or targets)


class DANLoss(nn.Module):
    """CE + lambda_affinity * affinity + lambda_partition * partition (+ lambda_va * CCC loss), on a `DANOutput`
    (`DANOutputWithVA` for the CCC term).

    The CCC term applies when the model has a valence/arousal head and valence/arousal targets are given.
    Pass this module through `accelerator.prepare` so the affinity centres are synchronised across processes.
    """

    def __init__(
            self,
            num_classes: int,
            feat_dim: int = 512,
            lambda_affinity: float = 1.0,
            lambda_partition: float = 1.0,
            label_smoothing: float = 0.0,
            lambda_va: float = 1.0,
    ):
        super().__init__()
        self.affinity = AffinityLoss(num_classes, feat_dim)
        self.partition = PartitionLoss()
        self.ccc = CCCLoss()
        self.lambda_affinity = lambda_affinity
        self.lambda_partition = lambda_partition
        self.label_smoothing = label_smoothing
        self.lambda_va = lambda_va

    def forward(
            self,
            output: Union[DANOutput, DANOutputWithVA],
            target: torch.Tensor,
            va_target: Optional[torch.Tensor] = None,
            return_parts: bool = False,
    ) -> Union[torch.Tensor, DANLossParts]:
        """The total loss; with `return_parts=True` a `DANLossParts(total, ce, affinity, partition, va)`.

        `va_target`: B x 2 (valence, arousal) in [-1, 1], NaN where unknown; needs a model with `va_head=True`.
        """
        ce = F.cross_entropy(output.logits.float(), target, label_smoothing=self.label_smoothing)
        affinity = self.affinity(output.features, target)
        partition = self.partition(output.heads)
        total = ce + self.lambda_affinity * affinity + self.lambda_partition * partition
        va = None
        if va_target is not None:
            if not isinstance(output, DANOutputWithVA):
                raise ValueError('valence/arousal targets were given but the model has no V/A head (va_head=True)')
            va = self.ccc(output.valence_arousal, va_target)
            total = total + self.lambda_va * va
        return DANLossParts(total, ce, affinity, partition, va) if return_parts else total
