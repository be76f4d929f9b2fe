"""What a model configuration may ask for, checked before anything large is allocated.

A Hub folder is input like any other file: its `config.json` (read by timm, by transformers' `TimmWrapper`, by
`timm_dan.load_pretrained`) becomes DAN's constructor arguments, and its `model.safetensors` becomes tensors. Both
are checked here, each error naming the field:

* `check_dan_args`: the constructor's arguments have their types and lie in sane ranges (DAN's constructor calls
  it, so every route that builds a DAN is covered);
* `check_model_size`: the whole model, built on the `meta` device (no memory), stays under `MAX_PARAMETERS`;
* `check_weights_file`: the safetensors header (read without loading a tensor) names the model's tensors with the
  model's shapes, and holds no more bytes than the model;
* `check_model_config` / `read_model_config`: a folder's `config.json` is a JSON object of the expected types.
"""
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import timm
import torch
import torch.nn as nn

__all__ = ['ModelConfigError', 'MAX_CLASSES', 'MAX_HEADS', 'MAX_HEAD_DIM', 'MAX_IN_CHANS', 'MAX_PARAMETERS',
           'check_dan_args', 'check_model_size', 'check_weights_file', 'check_model_config', 'read_model_config']

MAX_CLASSES = 100_000
MAX_HEADS = 64
MAX_HEAD_DIM = 8192
MAX_IN_CHANS = 1024
MAX_PARAMETERS = 2_000_000_000  # 8 GB of fp32 weights: far beyond any DAN, far below a hostile config's ask
MAX_CONFIG_BYTES = 16 << 20  # a config.json is a few KB
_SLACK_BYTES = 1 << 20  # a weights file's header and metadata


class ModelConfigError(ValueError):
    """A model configuration (constructor arguments, config.json, a weights file) that cannot be used; the message
    names the file or argument, the field and what was expected."""


def _integer(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelConfigError(f'{name} must be an integer, got {value!r} ({type(value).__name__})')
    if not low <= value <= high:
        raise ModelConfigError(f'{name} must be >= {low} and <= {high:,}, got {value:,}')


def _fraction(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ModelConfigError(f'{name} must be a number in [0, 1), got {value!r}')


def check_dan_args(backbone: Any, num_classes: Any, in_chans: Any, global_pool: Any, num_heads: Any, head_dim: Any,
                   drop_rate: Any, drop_path_rate: Any, backbone_pretrained: Any, backbone_args: Any) -> None:
    """Types and ranges of DAN's constructor arguments; raises `ModelConfigError` naming the argument."""
    if not isinstance(backbone, str) or not timm.is_model(backbone):
        raise ModelConfigError(f'backbone must be the name of a timm model, got {backbone!r}')
    _integer('num_classes', num_classes, 0, MAX_CLASSES)
    _integer('in_chans', in_chans, 1, MAX_IN_CHANS)
    if not isinstance(global_pool, str):
        raise ModelConfigError(f'global_pool must be a string, got {global_pool!r}')
    _integer('num_heads', num_heads, 1, MAX_HEADS)
    _integer('head_dim', head_dim, 16, MAX_HEAD_DIM)
    _fraction('drop_rate', drop_rate)
    _fraction('drop_path_rate', drop_path_rate)
    if not isinstance(backbone_pretrained, (bool, str, os.PathLike)):
        raise ModelConfigError(f'backbone_pretrained must be true/false or a file path, got {backbone_pretrained!r}')
    if backbone_args is not None and not (isinstance(backbone_args, Mapping)
                                          and all(isinstance(k, str) for k in backbone_args)):
        raise ModelConfigError(f'backbone_args must be a mapping of argument names, got {backbone_args!r}')


def _parameter_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def check_model_size(build: Any, args: Mapping[str, Any], where: str = '') -> nn.Module:
    """Build the model on the `meta` device (`build(**args)`: shapes, no memory) and refuse it above
    `MAX_PARAMETERS`, naming its largest part and the arguments that size it. Returns the meta model."""
    with torch.device('meta'):
        model = build(**args)
    total = sum(p.numel() for p in model.parameters())
    if total > MAX_PARAMETERS:
        parts = sorted(((sum(p.numel() for p in m.parameters()), name) for name, m in model.named_children()),
                       reverse=True)
        sizing = ', '.join(f'{k}={args[k]!r}' for k in ('num_classes', 'head_dim', 'num_heads', 'in_chans',
                                                        'backbone', 'backbone_args') if args.get(k) is not None)
        raise ModelConfigError(
            f'{where}the model would have {total:,} parameters ({total * 4 / 2 ** 30:,.1f} GiB in fp32), over the '
            f'limit of {MAX_PARAMETERS:,}; most of them in `{parts[0][1]}` ({parts[0][0]:,}). It was asked for with '
            f'{sizing}: refused before allocating it')
    return model


def check_weights_file(path: Path, model: nn.Module, droppable: tuple[str, ...] = ()) -> None:
    """Compare a safetensors file's header with `model`'s state dict (a meta model will do) before any tensor is
    read: every tensor must be one of the model's, with the model's shape (those under the `droppable` prefixes may
    differ or be missing from the model: the loader drops them), and the file may hold no more bytes than the model
    needs."""
    from safetensors import SafetensorError, safe_open

    expected = model.state_dict()
    try:
        with safe_open(str(path), framework='pt') as f:  # parses and validates the header only (offsets, sizes)
            shapes = {key: (tuple(f.get_slice(key).get_shape()), f.get_slice(key).get_dtype()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelConfigError(f'{path}: not a readable safetensors file ({e})') from None
    unknown = sorted(key for key in set(shapes) - set(expected) if not key.startswith(droppable))
    if unknown:
        raise ModelConfigError(f'{path}: {len(unknown)} tensor(s) the model does not have, e.g. {unknown[:3]} '
                               f'(a folder for another architecture, or model_args that do not match the weights?)')
    for key, (shape, _) in shapes.items():
        if key in expected and shape != tuple(expected[key].shape) and not key.startswith(droppable):
            raise ModelConfigError(f'{path}: tensor {key!r} has shape {list(shape)}, the model expects '
                                   f'{list(expected[key].shape)} (config.json does not match these weights)')
    file_bytes = path.stat().st_size
    needed = _parameter_bytes(expected.values())
    if file_bytes > needed + _SLACK_BYTES:
        raise ModelConfigError(f'{path}: {file_bytes:,} bytes of tensors, but the model needs {needed:,}: '
                               f'refused before reading it')


_CONFIG_TYPES = {
    'architecture': str, 'num_classes': int, 'num_features': int, 'global_pool': str, 'label_names': list,
    'label_descriptions': dict, 'model_args': dict, 'pretrained_cfg': dict,
}
_PRETRAINED_CFG_TYPES = {
    'input_size': list, 'num_classes': int, 'mean': list, 'std': list, 'crop_pct': (int, float),
    'interpolation': str, 'label_names': list, 'first_conv': str, 'classifier': (str, list), 'pool_size': list,
}


def _field_type(where: str, name: str, value: Any, kind: Any) -> None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        expected = ' or '.join(k.__name__ for k in kinds)
        raise ModelConfigError(f'{where}: `{name}` must be {expected}, got {value!r}'[:400])


def check_model_config(config: Any, where: str) -> dict[str, Any]:
    """A timm Hub folder's config.json (parsed), checked: a JSON object whose known fields have their types, a
    registered `architecture`, a sane `num_classes` with one label name each. Returns it; raises `ModelConfigError`
    naming `where` and the field."""
    if not isinstance(config, dict):
        raise ModelConfigError(f'{where}: expected a JSON object, got {type(config).__name__}')
    for name, kind in _CONFIG_TYPES.items():
        if name in config:
            _field_type(where, name, config[name], kind)
    pretrained_cfg = config.get('pretrained_cfg', {})
    for name, kind in _PRETRAINED_CFG_TYPES.items():
        if pretrained_cfg.get(name) is not None:
            _field_type(where, f'pretrained_cfg.{name}', pretrained_cfg[name], kind)
    architecture = config.get('architecture')
    if architecture is None:
        raise ModelConfigError(f'{where}: no `architecture` (the timm model name)')
    if not timm.is_model(architecture):
        raise ModelConfigError(f'{where}: `architecture` {architecture!r} is not a registered timm model'
                               + (' (import timm_dan first)' if architecture.startswith('dan_') else ''))
    for name, value in (('num_classes', config.get('num_classes')), ('pretrained_cfg.num_classes',
                                                                     pretrained_cfg.get('num_classes'))):
        if value is not None:
            try:
                _integer(name, value, 0, MAX_CLASSES)
            except ModelConfigError as e:
                raise ModelConfigError(f'{where}: {e}') from None
    labels = config.get('label_names', pretrained_cfg.get('label_names'))
    if labels is not None:
        if not all(isinstance(label, str) for label in labels):
            raise ModelConfigError(f'{where}: `label_names` must be a list of strings')
        num_classes = config.get('num_classes', pretrained_cfg.get('num_classes'))
        if num_classes and len(labels) != num_classes:
            raise ModelConfigError(f'{where}: num_classes is {num_classes} but label_names has {len(labels)}')
    size = pretrained_cfg.get('input_size')
    if size is not None and not (len(size) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                         and 1 <= v <= 16384 for v in size)):
        raise ModelConfigError(f'{where}: `pretrained_cfg.input_size` must be [channels, height, width] of '
                               f'integers in 1..16384, got {size!r}'[:400])
    for name in ('mean', 'std'):
        values = pretrained_cfg.get(name)
        if values is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                          and math.isfinite(v) for v in values):
            raise ModelConfigError(f'{where}: `pretrained_cfg.{name}` must be a list of numbers, got {values!r}'[:400])
    model_args = config.get('model_args', {})
    if not all(isinstance(k, str) and k.isidentifier() for k in model_args):
        raise ModelConfigError(f'{where}: `model_args` keys must be argument names')
    if 'backbone_pretrained' in model_args:  # a build-time file path or download: never part of a saved model
        raise ModelConfigError(f'{where}: `model_args.backbone_pretrained` is not allowed in a saved model')
    return config


def read_model_config(folder: os.PathLike, name: str = 'config.json') -> dict[str, Any]:
    """Read and check a Hub folder's config.json (`check_model_config`); a file that is missing, huge or not JSON
    is a `ModelConfigError` (FileNotFoundError when missing) naming it."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found: is {folder} a timm Hub folder?')
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelConfigError(f'{path}: {path.stat().st_size:,} bytes, too large for a config.json')
    try:
        config = json.loads(path.read_bytes().decode('utf-8'))
    except (ValueError, RecursionError) as e:  # bad UTF-8, bad JSON, an integer of > 4300 digits; deep nesting
        raise ModelConfigError(f'{path}: not valid JSON ({str(e)[:200]})') from None
    return check_model_config(config, str(path))


def weights_file_of(pretrained_cfg: Mapping[str, Any]) -> Optional[Path]:
    """The safetensors file timm will load for `pretrained_cfg` (a local-dir folder's, a file, a Hub repo's,
    downloaded into the cache as timm would), or None where it loads something else (a URL, a pickle)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    source, file, hub_id = pretrained_cfg.get('source'), pretrained_cfg.get('file'), pretrained_cfg.get('hf_hub_id')
    if source == 'local-dir' and file:
        path = Path(file) / 'model.safetensors'
        return path if path.is_file() else None
    if file and source != 'hf-hub':
        return Path(file) if str(file).endswith('.safetensors') and Path(file).is_file() else None
    if hub_id and (source == 'hf-hub' or not pretrained_cfg.get('url')):
        repo, _, revision = hub_id.partition('@')
        try:
            return Path(hf_hub_download(repo, pretrained_cfg.get('hf_hub_filename') or 'model.safetensors',
                                        revision=revision or None))
        except EntryNotFoundError:
            return None
    return None
