"""Conv weight gradients as one matmul on small feature maps, for training on CPUs where oneDNN's are slow.

On AVX2 CPUs oneDNN's weight-gradient kernel is several times slower than the forward convolution when the output
map is tiny (the 2 x 2 maps of `dan_resnet18` at 64 x 64 inputs, the 7 x 7 maps at 224): one layer4 3x3 conv
(batch 64, 512 -> 512, 2 x 2) takes 146 ms forward + backward against 30 ms with its weight gradient computed as a
single matmul of the output gradient with the input's patches (AMD EPYC Zen 3, 2 threads;
`python benchmarks/small_map_convs.py`). The input gradient and the forward pass stay oneDNN's, so the outputs are
bit-equal and the gradients equal to float32 rounding.

    with small_map_convs():          # in a training step's forward; a no-op where it does not pay
        loss = loss_fn(model(images), labels)
    loss.backward()

The training engine enters it around every forward (`TrainStep`); a custom loop may do the same.
"""
import contextlib
from collections.abc import Iterator
from typing import Optional

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..cpu import machine_class

__all__ = ['small_map_convs', 'resolve_small_map_convs', 'MAX_OUTPUT_POSITIONS']

# output positions (h x w) up to which the matmul wins: 2 x 2 x4.9, 4 x 4 x1.1, 7 x 7 x1.0-1.5, 8 x 8 x1.0,
# 16 x 16 x0.7 (forward + backward, batch 32-64, channels_last, Zen 3, 2 threads)
MAX_OUTPUT_POSITIONS = 49


def resolve_small_map_convs(enabled: Optional[bool] = None, device: Optional[torch.device] = None) -> bool:
    """`enabled`, or (None) whether training on `device` (default: the CPU) gains from it: on AVX2 CPUs, where it
    was measured (AVX-512 and AMX CPUs and GPUs keep their libraries' kernels)."""
    return machine_class(device) == 'avx2' if enabled is None else enabled


def _pair(value) -> Optional[tuple[int, int]]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    return None  # 'same' / 'valid' padding


class _Conv2dMatmulWeightGrad(torch.autograd.Function):
    """F.conv2d (groups 1, dilation 1) whose weight gradient is one matmul over the input's patches."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        (sh, sw), (ph, pw) = ctx.stride, ctx.padding
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [sh, sw], [ph, pw], [1, 1], False, [0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            out_chs, in_chs, kh, kw = weight.shape
            grad_rows = grad.permute(0, 2, 3, 1).reshape(-1, out_chs)
            grad_w = grad_rows.t() @ _patches(x, kh, kw, ctx.stride, ctx.padding, grad.shape[-2:])
            grad_w = grad_w.reshape(out_chs, kh, kw, in_chs).permute(0, 3, 1, 2)  # channels_last, as the weight
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


def _patches(x: torch.Tensor, kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int],
             out_hw: torch.Size) -> torch.Tensor:
    """The input's patches, (B oh ow) x (kh kw C): one copy into a zero-padded B x H x W x C buffer, then one
    strided view of it copied out (a view of the input itself for a 1x1 conv without padding)."""
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, out_hw
    batch, chs, height, width = x.shape
    if kh == kw == 1 and ph == pw == 0:
        return x[:, :, :sh * (oh - 1) + 1:sh, :sw * (ow - 1) + 1:sw].permute(0, 2, 3, 1).reshape(-1, chs)
    hp, wp = height + 2 * ph, width + 2 * pw
    padded = x.new_zeros(batch, hp, wp, chs)
    padded[:, ph:ph + height, pw:pw + width] = x.permute(0, 2, 3, 1)
    return padded.as_strided((batch, oh, ow, kh, kw, chs), (hp * wp * chs, sh * wp * chs, sw * chs, wp * chs, chs, 1)
                             ).reshape(-1, kh * kw * chs)


class _SmallMapConvMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d:
            routed = _route(*args, **kwargs)
            if routed is not None:
                return routed
        return func(*args, **kwargs)


def _route(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Optional[torch.Tensor]:
    """The conv through `_Conv2dMatmulWeightGrad` where it applies, else None."""
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if (stride is None or padding is None or dilation != (1, 1) or groups != 1 or x.dim() != 4
            or not torch.is_grad_enabled() or not weight.requires_grad or x.device.type != 'cpu'
            or x.dtype != torch.float32 or weight.dtype != torch.float32 or torch.is_autocast_enabled('cpu')):
        return None
    kh, kw = weight.shape[-2:]
    oh = (x.shape[-2] + 2 * padding[0] - kh) // stride[0] + 1
    ow = (x.shape[-1] + 2 * padding[1] - kw) // stride[1] + 1
    if oh * ow > MAX_OUTPUT_POSITIONS:
        return None
    return _Conv2dMatmulWeightGrad.apply(x, weight, bias, stride, padding)


@contextlib.contextmanager
def small_map_convs(enabled: Optional[bool] = None) -> Iterator[None]:
    """Within it, fp32 CPU convs with gradients and an output of at most `MAX_OUTPUT_POSITIONS` positions compute
    their weight gradient as one matmul. `enabled`: None chooses by machine (`resolve_small_map_convs`)."""
    if not resolve_small_map_convs(enabled) or torch.compiler.is_compiling():
        yield
        return
    with _SmallMapConvMode():
        yield
