"""The naive DAN of the benchmarks (`benchmarks/reference.py`: one module per head, a Python loop over heads,
the state dict keys of the released checkpoints) and checkpoints in the authors' exact layout, for equality tests.
"""
import torch
import torch.nn as nn

from benchmarks.reference import ReferenceDAN

__all__ = ['ReferenceDAN', 'randomize_', 'official_checkpoint']


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
