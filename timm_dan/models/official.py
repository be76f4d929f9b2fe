"""The authors' released files: their DAN checkpoints (converted to `dan_resnet18` state dicts in canonical class
order) and the MS-Celeb-1M ResNet-18 trunk the paper starts from.

Layout of a released DAN file (github.com/yaoing/DAN): `{'iter', 'model_state_dict', 'optimizer_state_dict'}`;
the model keys are torchvision's ResNet-18 children in an `nn.Sequential` (`features.0` conv1, `features.1`
bn1, `features.4`-`features.7` layer1-4), `cat_head{i}.sa.*` / `cat_head{i}.ca.*` per head, `fc.*` and the
logits BatchNorm `bn.*`.
"""
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
import torch.nn as nn
from timm.models import load_state_dict

from ..labels import AFFECTNET, RAFDB, LabelMap

__all__ = ['OFFICIAL_CLASS_ORDERS', 'OFFICIAL_LABEL_MAPS', 'convert_official_checkpoint', 'load_backbone_weights',
           'read_checkpoint']

OFFICIAL_CLASS_ORDERS: Mapping[str, LabelMap] = {
    'rafdb': RAFDB,
    'affectnet7': LabelMap('AffectNet-7', AFFECTNET.native[:7]),
    'affectnet8': AFFECTNET,
}
"""The class order of each released checkpoint's classifier: its training set's native order."""

OFFICIAL_LABEL_MAPS: Mapping[str, tuple[int, ...]] = {k: v.to_canonical for k, v in OFFICIAL_CLASS_ORDERS.items()}
"""Native class index -> canonical index, per released checkpoint."""

# per-head key suffix of the released files -> (our key under `heads.`, how the H heads combine)
_HEAD_KEYS = {
    'sa.conv1x1.0': ('reduce.conv', 'cat'),
    'sa.conv1x1.1': ('reduce.bn', 'cat'),
    'sa.conv_3x3.0': ('conv_3x3.conv', 'cat'),
    'sa.conv_3x3.1': ('conv_3x3.bn', 'cat'),
    'sa.conv_1x3.0': ('conv_1x3.conv', 'cat'),
    'sa.conv_1x3.1': ('conv_1x3.bn', 'cat'),
    'sa.conv_3x1.0': ('conv_3x1.conv', 'cat'),
    'sa.conv_3x1.1': ('conv_3x1.bn', 'cat'),
    'ca.attention.0': ('ca_fc1', 'stack'),
    'ca.attention.1': ('ca_bn', 'cat'),
    'ca.attention.3': ('ca_fc2', 'stack'),
}
_TRUNK_PREFIXES = {
    'features.0.': 'backbone.conv1.', 'features.1.': 'backbone.bn1.', 'features.4.': 'backbone.layer1.',
    'features.5.': 'backbone.layer2.', 'features.6.': 'backbone.layer3.', 'features.7.': 'backbone.layer4.',
}
_BN_PARAMS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
_CLASSIFIER_KEYS = ('fc.weight', 'fc.bias', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var')


def _needs_full_unpickle(error: Exception, path: Union[str, Path]) -> bool:
    """Whether `torch.load(weights_only=True)` refused a real checkpoint or pickle (a class it may not build, an
    instruction it does not run) rather than failing on a file that is no pickle at all."""
    if 'Unsupported global' in str(error):
        return True
    with open(path, 'rb') as f:
        head = f.read(2)
    return 'weights_only' in str(error) and (head == b'PK' or head[:1] == b'\x80')  # torch's zip, or a pickle


def _unsupported_global(error: Exception) -> str:
    """The line of torch's message that says what it refused (a class, or a pickle instruction)."""
    return next((line.strip() for line in str(error).splitlines() if 'Unsupported' in line),
                str(error).splitlines()[0])


def read_checkpoint(path: Union[str, Path]) -> Any:
    """A `.pth`/`.pt` file's contents, read with `torch.load(weights_only=True)`: tensors, containers and numbers
    only. A file that needs a full unpickle (which can execute code) is refused with what to do instead; a file that
    is not a checkpoint at all is a ValueError that names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such file')
    if path.stat().st_size == 0:
        raise ValueError(f'{path} is empty (0 bytes): expected a PyTorch checkpoint (.pth) saved with torch.save')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, EOFError, IndexError, RuntimeError... on other files
        if _needs_full_unpickle(e, path):
            raise ValueError(
                f'Refusing to load {path}: it holds Python objects that only a full unpickle can restore, and '
                f'unpickling can execute arbitrary code. Re-save its tensors as a plain state dict '
                f'(or safetensors) in a trusted environment. Loader said: {_unsupported_global(e)}'
            ) from e
        raise ValueError(f'{path} is not a PyTorch checkpoint: torch.load could not read it ({type(e).__name__}); '
                         f'expected a .pth file saved with torch.save') from e


def convert_official_checkpoint(
        checkpoint: Mapping[str, Any],
        dataset: str,
        num_heads: int = 4,
) -> dict[str, torch.Tensor]:
    """Convert the authors' released DAN checkpoint into a `dan_resnet18` state dict in canonical class order.

    Args:
        checkpoint: The released file's contents (`{'iter', 'model_state_dict', 'optimizer_state_dict'}`, read
            with `read_checkpoint` / `torch.load(..., weights_only=True)`), or its `model_state_dict` alone.
        dataset: 'rafdb', 'affectnet7' or 'affectnet8': which file it is (decides the class order).
        num_heads: Number of heads in the checkpoint (4 in every released file).

    Returns:
        A state dict that `timm.create_model('dan_resnet18', num_classes=K)` loads with `strict=True`; the
        classifier rows (fc and the logits BatchNorm) are permuted into `LABELS` order.
    """
    if dataset not in OFFICIAL_CLASS_ORDERS:
        raise ValueError(f'dataset must be one of {sorted(OFFICIAL_CLASS_ORDERS)}, got {dataset!r}')
    state_dict = checkpoint.get('model_state_dict', checkpoint)
    state_dict = {k.removeprefix('module.'): v for k, v in state_dict.items()}
    out, used, missing = {}, set(), []

    for key, value in state_dict.items():
        for src, dst in _TRUNK_PREFIXES.items():
            if key.startswith(src):
                out[dst + key[len(src):]] = value
                used.add(key)
        if key.startswith(('fc.', 'bn.')):
            out[key] = value
            used.add(key)

    for suffix, (dst, kind) in _HEAD_KEYS.items():
        for name in _BN_PARAMS if dst.endswith('bn') else ('weight', 'bias'):
            keys = [f'cat_head{i}.{suffix}.{name}' for i in range(num_heads)]
            absent = [k for k in keys if k not in state_dict]
            if absent:
                missing.extend(absent)
                continue
            used.update(keys)
            tensors = [state_dict[k] for k in keys]
            target = f'heads.{dst}_{name}' if kind == 'stack' else f'heads.{dst}.{name}'
            if name == 'num_batches_tracked':
                out[target] = torch.stack(tensors).max()
            else:
                out[target] = torch.stack(tensors) if kind == 'stack' else torch.cat(tensors)

    unexpected = sorted(set(state_dict) - used)
    missing += [key for key in _CLASSIFIER_KEYS if key not in state_dict]
    if missing or unexpected:
        raise KeyError(
            f'Not the authors\' DAN checkpoint layout: missing keys {missing[:10]}'
            f'{" ..." if len(missing) > 10 else ""}, unexpected keys {unexpected[:10]}'
            f'{" ..." if len(unexpected) > 10 else ""}'
        )

    order = OFFICIAL_CLASS_ORDERS[dataset]
    num_classes = out['fc.weight'].shape[0]
    if num_classes != len(order):
        raise ValueError(
            f'The checkpoint has {num_classes} classes but dataset={dataset!r} means {len(order)}; '
            f'pass the dataset the file was trained on'
        )
    rows = list(order.native_of_canonical())
    for key in _CLASSIFIER_KEYS:
        out[key] = out[key][rows].clone()
    return out


def load_backbone_weights(backbone: nn.Module, path: Union[str, Path]) -> None:
    """Load a local trunk state dict, e.g. the paper's MS-Celeb-1M ResNet-18 (`{'state_dict': torchvision keys}`).

    Read by timm's `load_state_dict` (safetensors, or `torch.load(weights_only=True)`; a `state_dict`/`model` entry
    and `module.` prefixes are unwrapped); the authors' `model_state_dict` entry is unwrapped too. The classifier
    (`fc.*`) is dropped; every remaining trunk tensor must match.
    """
    try:
        state_dict = load_state_dict(str(path), use_ema=False, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: no such trunk weights file') from None
    except Exception as e:
        if str(path).endswith('.safetensors'):
            raise ValueError(f'{path} is not a readable safetensors file ({type(e).__name__}: {e})') from e
        read_checkpoint(path)  # raises the one-line error that names the file: a refusal, empty, not a checkpoint
        raise
    if isinstance(state_dict.get('model_state_dict'), dict):
        state_dict = {k.removeprefix('module.'): v for k, v in state_dict['model_state_dict'].items()}
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith('fc.')}
    own = backbone.state_dict()
    missing = sorted(own.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - own.keys())
    mismatched = sorted(k for k in own.keys() & state_dict.keys() if own[k].shape != state_dict[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(
            f'{path} does not fit the trunk: missing keys {missing[:8]}, unexpected keys {unexpected[:8]}, '
            f'shape mismatches {mismatched[:8]} (expected a torchvision/timm state dict of this trunk)'
        )
    backbone.load_state_dict(state_dict)
