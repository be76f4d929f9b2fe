"""What bf16 does to a training run's accuracy, measured on a CPU without bf16 (issue 12: "it must stay >= 90 % on a
bf16 CPU"): train.py under bf16 autocast, with autocast's bf16 matmuls and convolutions emulated in fp32.

    python benchmarks/bf16_emulated.py --check                  # emulated vs genuine bf16 on one batch, then stop
    python benchmarks/bf16_emulated.py [train.py options]       # the demo recipe (default config), bf16 numerics

On a CPU without AVX-512 BF16 oneDNN computes bf16 convolutions and matmuls with reference kernels, about 500x
slower than fp32, so a bf16 run is out of reach there. But those kernels, like the native ones, multiply bf16
values and accumulate in fp32, then round the result to bf16. `EmulatedBF16Matmuls` does exactly that in fp32
kernels: it rounds the inputs of every conv, linear, matmul and einsum that runs under CPU bf16 autocast to bf16,
computes in fp32 and rounds the output to bf16. Everything else (BatchNorm, ReLU, the adds, the losses) runs under
the real autocast, in bf16 where a bf16 CPU runs it in bf16. The gradients follow the same casts, as autocast's do.
What differs from a bf16 CPU is only the order of the fp32 accumulations; `--check` measures that difference
against the one between bf16 and fp32.
"""
import argparse
import contextlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

from benchmarks.harness import machine  # noqa: E402

# autocast's CPU lower-precision ops that DAN uses (torch/csrc/autograd: autocast_mode.cpp), and einsum, which
# reaches autocast as bmm
_BF16_OPS = {F.conv2d, F.linear, torch.matmul, torch.mm, torch.bmm, torch.addmm, torch.baddbmm, torch.einsum,
             torch.Tensor.__matmul__, torch.Tensor.matmul, torch.Tensor.mm, torch.Tensor.bmm}


def _bf16_rounded(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(torch.bfloat16).float()
    if isinstance(value, (list, tuple)):
        return type(value)(_bf16_rounded(v) for v in value)
    return value


class EmulatedBF16Matmuls(TorchFunctionMode):
    """Under CPU bf16 autocast, autocast's bf16 matmuls and convolutions computed by fp32 kernels on bf16-rounded
    inputs, their outputs rounded to bf16: bf16 numerics at fp32 speed."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _BF16_OPS or not torch.is_autocast_enabled('cpu') or \
                torch.get_autocast_dtype('cpu') != torch.bfloat16:
            return func(*args, **kwargs)
        with torch.autocast('cpu', enabled=False):
            return func(*_bf16_rounded(args), **_bf16_rounded(kwargs)).to(torch.bfloat16)


def check(batch_size: int = 32, size: int = 64) -> None:
    """One train-mode step (logits and every gradient) emulated against genuine bf16, next to what genuine bf16
    differs from itself in another memory format (channels_last vs NCHW: another accumulation order) and from
    fp32. Measured (AMD EPYC Zen 3): emulated vs bf16 4.5e-2 / 9.3e-2 (logits / gradients), bf16 channels_last vs
    bf16 4.4e-2 / 9.7e-2, bf16 vs fp32 5.4e-2 / 1.5e-1. Train-mode BatchNorms amplify every one-ulp difference
    (0.4 % in bf16), so emulated bf16 is as close to bf16 as bf16 is to itself in another layout."""
    import timm

    import timm_dan  # noqa: F401  (registers dan_resnet18)
    torch.manual_seed(0)
    model = timm.create_model('dan_resnet18', num_classes=8, va_head=True).train()
    images = torch.randn(batch_size, 3, size, size)

    def step(precision: str, memory_format=torch.contiguous_format) -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        with torch.autocast('cpu', torch.bfloat16, enabled=precision != 'fp32'), \
                (EmulatedBF16Matmuls() if precision == 'emulated' else contextlib.nullcontext()):
            logits = model.forward_train(images.contiguous(memory_format=memory_format)).logits.float()
        logits.logsumexp(1).sum().backward()
        return logits.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    runs = {}
    for name, precision, memory_format in (('fp32', 'fp32', torch.contiguous_format),
                                           ('emulated', 'emulated', torch.contiguous_format),
                                           ('bf16', 'bf16', torch.contiguous_format),
                                           ('bf16 channels_last', 'bf16', torch.channels_last)):
        start = time.perf_counter()
        runs[name] = step(precision, memory_format)
        print(f'{name}: a train step of batch {batch_size} at {size} px in {time.perf_counter() - start:.1f} s')
    for a, b in (('emulated', 'bf16'), ('bf16 channels_last', 'bf16'), ('bf16', 'fp32')):
        logits, grads = (float((x - y).norm() / y.norm()) for x, y in zip(runs[a], runs[b]))
        print(f'|{a} - {b}| / |{b}|: logits {logits:.1e}, gradients {grads:.1e}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     add_help=False)
    parser.add_argument('--check', action='store_true', help='compare emulated and genuine bf16 on one batch')
    args, train_args = parser.parse_known_args()
    print(machine())
    if args.check:
        check()
        return 0
    sys.path.insert(0, str(ROOT / 'train_scripts'))
    import train
    with EmulatedBF16Matmuls():
        # the small-map conv route computes fp32 only; bf16 CPUs (AVX-512) do not take it either
        return train.main(['--precision', 'bf16', '--small-map-convs', 'false', *train_args])


if __name__ == '__main__':
    sys.exit(main())
