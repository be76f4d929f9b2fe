""" DAN: Distract Your Attention, Multi-head Cross Attention Network

A timm implementation of DAN for facial expression recognition.

Paper: `Distract Your Attention: Multi-head Cross Attention Network for Facial Expression Recognition`
    - https://arxiv.org/abs/2109.07270 (Biomimetics 8(2):199, 2023)

Original code (MIT): https://github.com/yaoing/DAN

DAN = a CNN trunk (the Feature Clustering Network, trained with the affinity loss) followed by H
cross-attention heads (the Multi-head Attention Network: spatial then channel attention), fused by the
Attention Fusion Network (log-softmax across heads, trained with the partition loss), then a Linear
classifier whose logits pass through a BatchNorm1d.

Differences from the official code, none of which change the numbers of `dan_resnet18`:
    * the H heads are computed in one batched pass (stacked 1x1 conv, grouped branch convs, einsum
      channel attention) instead of a Python loop over H modules;
    * any timm CNN can be the trunk; a trunk whose final map has C != head_dim channels gets a
      1x1 conv + BN + ReLU projection (`neck`) to head_dim first. This is an extension of ours;
    * classes are in one canonical order (AffectNet's, `timm_dan.labels.LABELS`); the authors' files are
      converted by `timm_dan.models.official.convert_official_checkpoint`, which permutes the RAF-DB
      checkpoint's classifier into it;
    * `va_head=True` adds a valence/arousal head beside the classifier (Linear + BatchNorm1d + tanh on the fused
      head features, two outputs in [-1, 1]; Russell's circumplex, as AffectNet annotates it). `forward` stays
      logits-only; `forward_with_va` and `forward_train` return both;
    * `temperature` records the softmax temperature fitted after training (calibration, Guo et al. 2017,
      "On Calibration of Modern Neural Networks"); `forward` returns raw logits, consumers divide by it.

The pretrained cfgs come from the table of published weights, `timm_dan.models.pretrained.PRETRAINED`.
"""
import dataclasses
import functools
import inspect
import math
from typing import Any, NamedTuple, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ConvNormAct
from timm.models import (
    build_model_with_cfg,
    create_model,
    generate_default_cfgs,
    register_model,
    resolve_pretrained_cfg,
)

from .._deprecation import moved_names
from ..cpu import machine_class
from ..labels import LABELS
from .guards import ModelConfigError, check_dan_args, check_model_size, check_weights_file, weights_file_of
from .official import load_backbone_weights
from .pretrained import HUB_ERRORS, PRETRAINED, PretrainedWeights, missing_weights_message

__all__ = ['DAN', 'DANOutput', 'DANOutputWithVA', 'DANPrediction', 'CrossAttentionHeads', 'ValenceArousalHead',
           'checkpoint_filter_fn']

# arguments that only matter while a model is being built; never recorded for re-creation
_BUILD_ONLY_ARGS = ('backbone_pretrained',)
# what a pretrained cfg says about released weights; a model created without them makes no such claim
_WEIGHTS_KEYS = ('tag', 'description', 'license')


class DANOutput(NamedTuple):
    """Everything DAN's training losses need from one forward pass."""
    logits: torch.Tensor  # B x num_classes
    features: torch.Tensor  # B x head_dim x h x w, the map entering the heads (affinity loss)
    heads: torch.Tensor  # B x H x head_dim, per-head outputs after the log-softmax fusion (partition loss)


class DANOutputWithVA(NamedTuple):
    """`DANOutput` of a model with a valence/arousal head (`va_head=True`): the same, plus valence and arousal."""
    logits: torch.Tensor
    features: torch.Tensor
    heads: torch.Tensor
    valence_arousal: torch.Tensor  # B x 2 in [-1, 1] (CCC loss)


class DANPrediction(NamedTuple):
    """`DAN.forward_with_va`: the logits and, with `va_head=True`, valence and arousal."""
    logits: torch.Tensor  # B x num_classes
    valence_arousal: Optional[torch.Tensor]  # B x 2 (valence, arousal) in [-1, 1], or None without a V/A head


@torch.jit.unused
@functools.cache
def split_grouped_convs() -> bool:
    """Whether the heads' grouped convs run as one conv per head here: on AVX2 CPUs oneDNN's grouped kernels are
    slower than separate convs (forward + backward, 7 x 7 maps, channels_last: 3x3 1.03x, 1x3 1.41x, 3x1 1.37x
    for the split convs; AMD EPYC Zen 3, 1 thread), on AVX-512 CPUs and GPUs they are not. The outputs are equal."""
    return machine_class() == 'avx2'


@torch.jit.unused
def grouped_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)`, computed group by group when training on a CPU where that is faster (`split_grouped_convs`, a
    forward + backward measure); inference, traced, compiled and exported graphs keep the single grouped conv
    (and eval outputs stay bit-equal to an fx trace's)."""
    if (conv.groups == 1 or not torch.is_grad_enabled() or not split_grouped_convs() or isinstance(x, torch.fx.Proxy)
            or torch.compiler.is_compiling() or torch.jit.is_tracing() or x.device.type != 'cpu'):
        return conv(x)
    groups = conv.groups
    return torch.cat([
        F.conv2d(part, weight, bias, conv.stride, conv.padding, conv.dilation)
        for part, weight, bias in zip(x.chunk(groups, 1), conv.weight.chunk(groups), conv.bias.chunk(groups))
    ], 1)


class ConvBn(nn.Module):
    """Conv2d (with bias, as in the official heads) followed by BatchNorm2d; foldable for inference."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: tuple[int, int], groups: int = 1):
        super().__init__()
        padding = (kernel_size[0] // 2, kernel_size[1] // 2)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, padding=padding, groups=groups, bias=True)
        self.bn = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return self.bn(self.conv(x))
        return self.bn(grouped_conv(self.conv, x))

    def folded(self, kernel_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of one conv equal to conv+BN in eval mode, zero-padded to `kernel_size`."""
        std = (self.bn.running_var + self.bn.eps).sqrt()
        scale = self.bn.weight / std
        weight = self.conv.weight * scale.reshape(-1, 1, 1, 1)
        bias = self.bn.bias + (self.conv.bias - self.bn.running_mean) * scale
        pad_h = (kernel_size[0] - weight.shape[2]) // 2
        pad_w = (kernel_size[1] - weight.shape[3]) // 2
        return F.pad(weight, (pad_w, pad_w, pad_h, pad_h)), bias


class CrossAttentionHeads(nn.Module):
    """The H cross-attention heads of DAN's Multi-head Attention Network, computed in one batched pass.

    Per head (as in the paper and the official code):
        spatial: Conv1x1(C -> C/2)+BN; ReLU(Conv3x3+BN + Conv1x3+BN + Conv3x1+BN) (C/2 -> C); sum over
            channels gives an h x w map (no sigmoid) that multiplies the input map;
        channel: global average pool; Linear(C -> C/16)+BN1d+ReLU+Linear(C/16 -> C)+Sigmoid, multiplied
            into the pooled vector.
    The heads share their input, so the 1x1 convs of all heads stack into one conv, the branch convs
    become grouped convs (one group per head) and the channel-attention MLPs one batched einsum each.
    """

    def __init__(self, dim: int = 512, num_heads: int = 4, ca_reduction: int = 16):
        super().__init__()
        if dim % 2 or dim % ca_reduction:
            raise ValueError(f'head_dim must be divisible by 2 and by {ca_reduction}, got {dim}')
        self.num_heads = num_heads
        self.dim = dim
        mid, hidden = dim // 2, dim // ca_reduction
        self.reduce = ConvBn(dim, num_heads * mid, (1, 1))
        self.conv_3x3 = ConvBn(num_heads * mid, num_heads * dim, (3, 3), groups=num_heads)
        self.conv_1x3 = ConvBn(num_heads * mid, num_heads * dim, (1, 3), groups=num_heads)
        self.conv_3x1 = ConvBn(num_heads * mid, num_heads * dim, (3, 1), groups=num_heads)
        self.fused: Optional[nn.Conv2d] = None  # set by reparameterize()
        self.ca_fc1_weight = nn.Parameter(torch.empty(num_heads, hidden, dim))
        self.ca_fc1_bias = nn.Parameter(torch.zeros(num_heads, hidden))
        self.ca_bn = nn.BatchNorm1d(num_heads * hidden)
        self.ca_fc2_weight = nn.Parameter(torch.empty(num_heads, dim, hidden))
        self.ca_fc2_bias = nn.Parameter(torch.zeros(num_heads, dim))
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """The official init, per head: convs kaiming normal (fan_out), BN 1/0, Linear N(0, 0.001)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out_per_head = m.out_channels // self.num_heads * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, 0., math.sqrt(2. / fan_out_per_head))
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for p in (self.ca_fc1_weight, self.ca_fc2_weight):
            nn.init.normal_(p, 0., 0.001)
        nn.init.zeros_(self.ca_fc1_bias)
        nn.init.zeros_(self.ca_fc2_bias)

    def spatial_maps(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x h x w -> the heads' spatial attention maps, B x H x h x w."""
        y = self.reduce(x)
        if self.fused is not None:
            y = F.relu(self.fused(y) if torch.jit.is_scripting() else grouped_conv(self.fused, y))
        else:
            y = F.relu(self.conv_3x3(y) + self.conv_1x3(y) + self.conv_3x1(y))
        b, _, h, w = y.shape
        return y.reshape(b, self.num_heads, self.dim, h, w).sum(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x h x w -> per-head attended vectors, B x H x C."""
        maps = self.spatial_maps(x)
        # mean over positions of (x * map_n) for every head n, without materialising B x H x C x h x w
        pooled = torch.einsum('bchw,bnhw->bnc', x, maps) / (x.shape[-2] * x.shape[-1])
        b = pooled.shape[0]
        z = torch.einsum('bnc,nrc->bnr', pooled, self.ca_fc1_weight) + self.ca_fc1_bias
        z = F.relu(self.ca_bn(z.reshape(b, -1)).reshape(z.shape))
        gate = torch.sigmoid(torch.einsum('bnr,ncr->bnc', z, self.ca_fc2_weight) + self.ca_fc2_bias)
        return pooled * gate

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the three branch convs and their BatchNorms into one 3x3 conv (eval-mode equivalent)."""
        if self.fused is not None:
            return
        fused = nn.Conv2d(
            self.conv_3x3.conv.in_channels, self.conv_3x3.conv.out_channels, 3, padding=1,
            groups=self.num_heads, bias=True,
        ).to(self.conv_3x3.conv.weight)
        weight, bias = zip(*(m.folded((3, 3)) for m in (self.conv_3x3, self.conv_1x3, self.conv_3x1)))
        fused.weight.copy_(sum(weight))
        fused.bias.copy_(sum(bias))
        self.fused = fused
        self.conv_3x3 = self.conv_1x3 = self.conv_3x1 = nn.Identity()


class ValenceArousalHead(nn.Module):
    """Valence and arousal from the fused head features: Linear -> BatchNorm1d -> tanh, B x 2 in [-1, 1].

    The BatchNorm mirrors DAN's classifier (its logits pass through one): the fused features are sums of
    log-softmax values with a large common offset, which a bare Linear + tanh would saturate at the start.
    """

    def __init__(self, in_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, 2)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.bn(self.fc(x)))


class DAN(nn.Module):
    """DAN: a timm CNN trunk + H cross-attention heads + attention fusion + Linear/BatchNorm1d classifier.

    `global_pool='avg'` (default) is DAN's attention pooling (the heads); `global_pool=''` removes the
    heads, so `forward` returns the unpooled trunk map (requires `num_classes=0`), as for other timm models.
    """
    __jit_unused_properties__ = ['_model_args']

    def __init__(
            self,
            backbone: str = 'resnet18',
            num_classes: int = len(LABELS),
            in_chans: int = 3,
            global_pool: str = 'avg',
            num_heads: int = 4,
            head_dim: int = 512,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            backbone_pretrained: Union[bool, str] = False,
            backbone_args: Optional[dict[str, Any]] = None,
            va_head: bool = False,
            temperature: Optional[float] = None,
    ):
        """
        Args:
            backbone: timm model name of the trunk (its classifier and final head convs are removed).
            num_classes: Number of classes (7 or 8 for the canonical `LABELS`; 0 for pooled features).
            in_chans: Number of input image channels.
            global_pool: 'avg' for DAN's attention heads, '' to drop them (unpooled trunk map out).
            num_heads: Number of cross-attention heads H (the paper uses 4).
            head_dim: Channel width C the heads work at (512 in the paper).
            drop_rate: Dropout before the classifier.
            drop_path_rate: Stochastic depth of the trunk (where the trunk supports it).
            backbone_pretrained: True loads timm's ImageNet weights into the trunk; a path loads a local
                state dict (e.g. the paper's MS-Celeb-1M `resnet18_msceleb.pth`, torchvision layout).
            backbone_args: Extra keyword arguments for the trunk's `timm.create_model`.
            va_head: Add a valence/arousal head (`ValenceArousalHead` on the fused head features, B x 2 in [-1, 1]),
                read by `forward_with_va` and `forward_train`; `forward` stays logits-only.
            temperature: The softmax temperature fitted on validation data after training (`probs =
                softmax(logits / temperature)`); recorded for re-creation and applied by `FERPredictor`,
                never inside `forward`. None: not calibrated.
        """
        super().__init__()
        check_dan_args(backbone, num_classes, in_chans, global_pool, num_heads, head_dim, drop_rate, drop_path_rate,
                       backbone_pretrained, backbone_args)  # a config.json's values: types and sizes, named
        if temperature is not None and not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
            raise ValueError(f'temperature must be > 0 (a finite number, or None), got {temperature!r}')
        self.temperature = temperature
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_heads = num_heads
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        trunk_args = dict(backbone_args or {})
        if drop_path_rate:
            trunk_args['drop_path_rate'] = drop_path_rate
        self.backbone = create_model(
            backbone, pretrained=backbone_pretrained is True, num_classes=0, global_pool='', in_chans=in_chans,
            **trunk_args,
        )
        # keep only the trunk: drop the classifier-side convs (MobileNetV3/EfficientNet conv_head, ...)
        self.backbone.prune_intermediate_layers(len(self.backbone.feature_info) - 1, prune_head=True)
        if isinstance(backbone_pretrained, str):
            load_backbone_weights(self.backbone, backbone_pretrained)
        trunk_chs = self.backbone.feature_info[-1]['num_chs']
        self.feature_info = [dict(info, module=f'backbone.{info["module"]}') for info in self.backbone.feature_info]
        self.neck = nn.Identity() if trunk_chs == head_dim else ConvNormAct(trunk_chs, head_dim, 1)
        self.num_features = self.head_hidden_size = head_dim

        self.global_pool = global_pool
        self.heads = self._create_heads(global_pool, num_classes)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc, self.bn = self._create_classifier(num_classes)
        self.va_head = self._create_va_head(va_head)

    def _create_heads(self, global_pool: str, num_classes: int) -> nn.Module:
        if global_pool == 'avg':
            return CrossAttentionHeads(self.num_features, self.num_heads)
        if global_pool == '':
            if num_classes:
                raise ValueError("global_pool='' removes DAN's attention heads and needs num_classes=0")
            return nn.Identity()
        raise ValueError(f"global_pool must be 'avg' (DAN's attention heads) or '' (none), got {global_pool!r}")

    def _create_classifier(self, num_classes: int) -> tuple[nn.Module, nn.Module]:
        if not num_classes:
            return nn.Identity(), nn.Identity()
        return nn.Linear(self.num_features, num_classes), nn.BatchNorm1d(num_classes)

    def _create_va_head(self, enable: bool) -> Optional[ValenceArousalHead]:
        if not enable:
            return None
        if not self.global_pool:
            raise ValueError("va_head needs DAN's attention heads (global_pool='avg')")
        return ValenceArousalHead(self.num_features)

    @property
    def has_va(self) -> bool:
        """Whether the model predicts valence and arousal (`va_head=True`)."""
        return self.va_head is not None

    @property
    def _model_args(self) -> dict[str, Any]:
        return self.__dict__.get('_recorded_args', {})

    @_model_args.setter
    def _model_args(self, args: dict[str, Any]) -> None:
        # timm records create_model's kwargs to re-create exported models; a trunk-init path is not one
        self.__dict__['_recorded_args'] = {k: v for k, v in args.items() if k not in _BUILD_ONLY_ARGS}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        def prefix(m):
            if isinstance(m, str):
                return m.replace('^', r'^backbone\.', 1)
            return [(prefix(p), idx) for p, idx in m]
        # the neck, heads and classifier match no trunk group, so they form the last group
        return {k: prefix(v) for k, v in self.backbone.group_matcher(coarse).items()}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        self.backbone.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> Union[str, nn.Module]:
        return 'fc' if name_only else self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None and global_pool != self.global_pool:
            self.heads = self._create_heads(global_pool, num_classes)
            self.global_pool = global_pool
            if not global_pool:  # no heads, no fused features for valence/arousal either
                self.va_head = None
        elif not self.global_pool and num_classes:
            raise ValueError("a model without attention heads (global_pool='') needs num_classes=0")
        self.fc, self.bn = self._create_classifier(num_classes)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, list[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[list[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]:
        """Trunk feature maps at `indices` (see `feature_info`), and the final `forward_features` map."""
        out = self.backbone.forward_intermediates(
            x, indices=indices, norm=norm, stop_early=stop_early, output_fmt=output_fmt,
            intermediates_only=intermediates_only,
        )
        if intermediates_only:
            return out
        final, intermediates = out
        return self.neck(final), intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, list[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> list[int]:
        """Prune trunk layers not needed for `indices`; `prune_head` also drops the neck, heads and classifier."""
        take_indices = self.backbone.prune_intermediate_layers(indices, prune_norm=prune_norm, prune_head=prune_head)
        if prune_head:
            self.neck = nn.Identity()
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image -> the map entering the heads (B x head_dim x h x w), also the affinity loss input."""
        return self.neck(self.backbone.forward_features(x))

    def fuse_heads(self, heads: torch.Tensor) -> torch.Tensor:
        """Attention fusion: log-softmax across heads (when H > 1); the sum over heads follows."""
        return F.log_softmax(heads, dim=1) if self.num_heads > 1 else heads

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool:
            x = self.fuse_heads(self.heads(x)).sum(1)
        x = self.head_drop(x)
        return x if pre_logits else self.bn(self.fc(x))

    def forward_va_head(self, pre_logits: torch.Tensor) -> torch.Tensor:
        """Pooled head features (`forward_head(..., pre_logits=True)`) -> valence and arousal, B x 2 in [-1, 1]."""
        if self.va_head is None:
            raise RuntimeError('this DAN has no valence/arousal head: create it with va_head=True')
        return self.va_head(pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_head_with_va(self, x: torch.Tensor) -> DANPrediction:
        """`forward_features` map -> logits and valence/arousal (None without a V/A head), the heads run once."""
        pooled = self.forward_head(x, pre_logits=True)
        logits = self.bn(self.fc(pooled))
        return DANPrediction(logits, self.forward_va_head(pooled) if self.va_head is not None else None)

    def forward_with_va(self, x: torch.Tensor) -> DANPrediction:
        """Image -> logits and valence/arousal from one pass (`valence_arousal` is None without a V/A head)."""
        return self.forward_head_with_va(self.forward_features(x))

    @torch.jit.ignore
    def forward_train(self, x: torch.Tensor) -> Union[DANOutput, DANOutputWithVA]:
        """Logits plus what the affinity and partition losses need (and valence/arousal, with a V/A head)."""
        if not self.global_pool:
            raise RuntimeError("forward_train needs DAN's attention heads (global_pool='avg')")
        features = self.forward_features(x)
        heads = self.fuse_heads(self.heads(features))
        pooled = self.head_drop(heads.sum(1))
        logits = self.bn(self.fc(pooled))
        if self.va_head is not None:
            return DANOutputWithVA(logits, features, heads, self.forward_va_head(pooled))
        return DANOutput(logits, features, heads)

    @torch.jit.ignore
    def forward_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The heads' spatial attention maps, B x H x h x w (for visualisation)."""
        if not self.global_pool:
            raise RuntimeError("forward_attention needs DAN's attention heads (global_pool='avg')")
        return self.heads.spatial_maps(self.forward_features(x))

    @torch.jit.ignore
    def reparameterize(self) -> 'DAN':
        """Fold each head's three branch convs and BatchNorms into one conv, for inference (eval mode)."""
        if isinstance(self.heads, CrossAttentionHeads):
            self.heads.reparameterize()
        return self


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: DAN) -> dict[str, torch.Tensor]:
    """Adapt a timm-layout DAN state dict to `model`: drops logits-BN buffers (and heads) that cannot fit.

    timm's loader drops `fc.*`/`bn.*` weights and biases when the class count changes; the BatchNorm's
    running statistics must go too. A valence/arousal head follows the model: weights without one give a
    `va_head=True` model its freshly initialised head (to fine-tune), and a model without one ignores it.
    The authors' own layout is refused: its class order depends on the data set, so it goes through
    `convert_official_checkpoint(checkpoint, dataset)`.
    """
    state_dict = state_dict.get('state_dict', state_dict)
    if 'model_state_dict' in state_dict or any(k.startswith(('cat_head', 'module.cat_head')) for k in state_dict):
        raise ValueError(
            'This is the authors\' DAN checkpoint layout; convert it first with '
            'timm_dan.convert_official_checkpoint(checkpoint, dataset=...) or `timm-dan hub convert-official`'
        )
    model_state = model.state_dict()
    out = {}
    for key, value in state_dict.items():
        if key.startswith(('bn.', 'fc.', 'heads.', 'va_head.')):
            if key not in model_state or model_state[key].shape != value.shape:
                continue
        out[key] = value
    for key, value in model_state.items():
        if key.startswith('va_head.') and key not in out:
            out[key] = value
    return out


def _create_dan(variant: str, pretrained: bool = False, feature_levels: int = 5, **kwargs) -> DAN:
    if pretrained:
        kwargs.pop('backbone_pretrained', None)  # the full DAN weights replace the trunk's anyway
    pretrained_cfg = resolve_pretrained_cfg(
        variant, pretrained_cfg=kwargs.pop('pretrained_cfg', None),
        pretrained_cfg_overlay=kwargs.pop('pretrained_cfg_overlay', None),
    )
    if not pretrained:  # a fresh model: its cfg describes its own classes, and no released weights
        num_classes = kwargs.get('num_classes', pretrained_cfg.num_classes)
        label_names = LABELS[:num_classes] if isinstance(num_classes, int) and 0 < num_classes <= len(LABELS) else None
        pretrained_cfg = dataclasses.replace(
            pretrained_cfg, num_classes=num_classes, label_names=label_names, **dict.fromkeys(_WEIGHTS_KEYS))
    _check_before_building(variant, pretrained, pretrained_cfg.to_dict(), kwargs)
    try:
        return build_model_with_cfg(
            DAN, variant, pretrained,
            pretrained_cfg=pretrained_cfg.to_dict(),
            pretrained_filter_fn=checkpoint_filter_fn,
            feature_cfg=dict(feature_cls='getter', out_indices=tuple(range(feature_levels))),
            **kwargs,
        )
    except HUB_ERRORS as e:
        raise RuntimeError(f'{variant}: {missing_weights_message(pretrained_cfg.hf_hub_id)} '
                           f'({type(e).__name__})') from e


def _check_before_building(variant: str, pretrained: bool, cfg: dict[str, Any], kwargs: dict[str, Any]) -> None:
    """The arguments a config.json asks for, on the meta device (no memory), and the weights file's header against
    them: a hostile or mismatched folder is refused, naming the field, before anything large is allocated."""
    where = f'{variant} (from {cfg.get("file") or cfg.get("hf_hub_id")}): ' if cfg.get('source') else f'{variant}: '
    params = inspect.signature(DAN).parameters
    args = {k: v for k, v in kwargs.items() if k in params}
    args.setdefault('num_classes', cfg.get('num_classes', len(LABELS)))
    args.setdefault('in_chans', (cfg.get('input_size') or (3,))[0])
    try:
        model = check_model_size(DAN, {**args, 'backbone_pretrained': False}, where)
        if pretrained and (weights := weights_file_of(cfg)) is not None:
            check_weights_file(weights, model, droppable=('fc.', 'bn.', 'heads.', 'va_head.'))
    except ModelConfigError as e:
        raise (e if str(e).startswith(where) else ModelConfigError(f'{where}{e}')) from None


def _cfg(num_classes: int = len(LABELS), first_conv: str = 'backbone.conv1', **kwargs) -> dict[str, Any]:
    return {
        'num_classes': num_classes, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 1.0, 'interpolation': 'bilinear',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': first_conv, 'classifier': ('fc', 'bn'),
        'label_names': LABELS[:num_classes],
        'paper_ids': 'arXiv:2109.07270',
        'paper_name': 'Distract Your Attention: Multi-head Cross Attention Network for Facial Expression Recognition',
        'origin_url': 'https://github.com/yaoing/DAN',
        **kwargs,
    }


def _released_cfg(weights: PretrainedWeights) -> dict[str, Any]:
    reported = ', '.join(f'{m.value:.2f}% {m.name.replace("_", " ")}' for m in weights.metrics)
    return _cfg(
        num_classes=weights.num_classes, hf_hub_id=weights.hf_hub_id, license=weights.license,
        description=f'{weights.description} The authors report {reported}.',
    )


default_cfgs = generate_default_cfgs({
    **{weights.name: _released_cfg(weights) for weights in PRETRAINED},  # the first of each architecture: default
    'dan_resnet50': _cfg(),
    'dan_mobilenetv3_large_100': _cfg(first_conv='backbone.conv_stem'),
    'dan_efficientnet_b0': _cfg(first_conv='backbone.conv_stem'),
    'dan_convnext_tiny': _cfg(first_conv='backbone.stem.0'),
})


@register_model
def dan_resnet18(pretrained: bool = False, **kwargs) -> DAN:
    """DAN with a ResNet-18 trunk and 4 heads at width 512: the paper's network."""
    model_args = dict(backbone='resnet18', num_heads=4, head_dim=512)
    return _create_dan('dan_resnet18', pretrained, **dict(model_args, **kwargs))


@register_model
def dan_resnet50(pretrained: bool = False, **kwargs) -> DAN:
    """DAN with a ResNet-50 trunk (2048 channels projected to 512 before the heads)."""
    model_args = dict(backbone='resnet50', num_heads=4, head_dim=512)
    return _create_dan('dan_resnet50', pretrained, **dict(model_args, **kwargs))


@register_model
def dan_mobilenetv3_large_100(pretrained: bool = False, **kwargs) -> DAN:
    """DAN with a MobileNetV3-Large trunk (960 channels projected to 512 before the heads)."""
    model_args = dict(backbone='mobilenetv3_large_100', num_heads=4, head_dim=512)
    return _create_dan('dan_mobilenetv3_large_100', pretrained, **dict(model_args, **kwargs))


@register_model
def dan_efficientnet_b0(pretrained: bool = False, **kwargs) -> DAN:
    """DAN with an EfficientNet-B0 trunk (320 channels projected to 512 before the heads)."""
    model_args = dict(backbone='efficientnet_b0', num_heads=4, head_dim=512)
    return _create_dan('dan_efficientnet_b0', pretrained, **dict(model_args, **kwargs))


@register_model
def dan_convnext_tiny(pretrained: bool = False, **kwargs) -> DAN:
    """DAN with a ConvNeXt-Tiny trunk (768 channels projected to 512 before the heads)."""
    model_args = dict(backbone='convnext_tiny', num_heads=4, head_dim=512)
    return _create_dan('dan_convnext_tiny', pretrained, feature_levels=4, **dict(model_args, **kwargs))


__getattr__ = moved_names(__name__, {
    'HF_HUB_NAMESPACE': 'timm_dan.models.pretrained:HF_HUB_NAMESPACE',
    'OFFICIAL_LABEL_MAPS': 'timm_dan.models.official:OFFICIAL_LABEL_MAPS',
    'convert_official_checkpoint': 'timm_dan.models.official:convert_official_checkpoint',
    'load_weights_file': 'timm_dan.models.official:read_checkpoint',
})
