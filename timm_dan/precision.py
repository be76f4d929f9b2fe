"""One precision vocabulary for training and inference, and where each precision is fast.

Values: 'auto' (bf16 where the device computes it natively, else fp32), 'fp32', 'bf16', 'fp16'. Training hands
the resolved value to Accelerate (`accelerate_mixed_precision`: 'fp32' is Accelerate's 'no'); the predictor
accepts the subset it implements.
"""
import os
from collections.abc import Sequence
from typing import Optional

import torch

__all__ = ['PRECISIONS', 'bf16_supported', 'default_device', 'check_precision', 'resolve_precision',
           'accelerate_mixed_precision']

PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 is fast here: a CUDA GPU with bf16, or a CPU with native bf16 (AVX-512 BF16 / AMX)."""
    if device.type == 'cuda':
        return torch.cuda.is_bf16_supported()
    if device.type == 'cpu':
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def default_device() -> torch.device:
    """CUDA when available (and Accelerate was not told to use the CPU), else the CPU."""
    use_cpu = os.environ.get('ACCELERATE_USE_CPU', '').lower() in ('1', 'true', 'yes')
    return torch.device('cuda' if torch.cuda.is_available() and not use_cpu else 'cpu')


def check_precision(precision: str, choices: Sequence[str] = PRECISIONS) -> str:
    """`precision` if it is one of `choices`, else a ValueError listing them."""
    if precision not in choices:
        raise ValueError(f'precision must be one of {", ".join(choices)}, got {precision!r}')
    return precision


def resolve_precision(precision: str = 'auto', device: Optional[torch.device] = None,
                      choices: Sequence[str] = PRECISIONS) -> str:
    """The concrete precision ('fp32', 'bf16' or 'fp16') for a requested one from `choices`.

    'auto' is bf16 where `device` (default: `default_device()`) computes it natively, else fp32.
    """
    if check_precision(precision, choices) != 'auto':
        return precision
    return 'bf16' if bf16_supported(device or default_device()) else 'fp32'


def accelerate_mixed_precision(precision: str = 'auto', device: Optional[torch.device] = None) -> str:
    """Accelerate's `mixed_precision` ('no', 'bf16', 'fp16') for a precision of `PRECISIONS`.

    'auto' keeps a mixed precision that the launcher asked for (`accelerate launch --mixed_precision bf16` or
    `accelerate config`), else resolves as `resolve_precision` does.
    """
    launched = os.environ.get('ACCELERATE_MIXED_PRECISION', 'no')
    if precision == 'auto' and launched in ('bf16', 'fp16'):
        return launched
    resolved = resolve_precision(precision, device)
    return 'no' if resolved == 'fp32' else resolved
