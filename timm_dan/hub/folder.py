"""Hub folders on disk: write one atomically (`save_model_folder`), check it, load it, validate it."""
import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import timm
import torch
from huggingface_hub import ModelCard

from .card import ModelCardInfo, render_model_card

CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'
CARD_NAME = 'README.md'


def sha256_file(path: Union[str, Path], chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def transformers_compatible(config: dict[str, Any]) -> dict[str, Any]:
    """A timm `config.json` that transformers also loads: `model_args` without `num_classes`.

    timm's `save_for_hf` records `num_classes` twice, at the root and in `model_args`; transformers'
    `TimmWrapperForImageClassification` calls `timm.create_model(architecture, num_classes=num_labels,
    **model_args)` (and `TimmWrapperModel` passes `num_classes=0`), which fails on the repeated keyword. timm
    itself reads the class count from the root `num_classes` (through the pretrained cfg), so nothing is lost.
    """
    config = dict(config)
    model_args = {k: v for k, v in config.get('model_args', {}).items() if k != 'num_classes'}
    if model_args:
        config['model_args'] = model_args
    else:
        config.pop('model_args', None)
    return config


def _replace_dir(tmp: Path, output_dir: Path, overwrite: bool) -> None:
    if not output_dir.exists():
        os.replace(tmp, output_dir)
        return
    if not overwrite:
        raise FileExistsError(f'{output_dir} exists; pass overwrite=True to replace it')
    old = output_dir.with_name(f'.{output_dir.name}.old-{uuid.uuid4().hex[:8]}')
    os.replace(output_dir, old)
    try:
        os.replace(tmp, output_dir)
    except BaseException:
        os.replace(old, output_dir)
        raise
    shutil.rmtree(old)


def save_model_folder(
        model: torch.nn.Module,
        output_dir: Union[str, Path],
        *,
        card: Union[ModelCardInfo, Mapping[str, Any]],
        data_config: Optional[dict[str, Any]] = None,
        model_config: Optional[dict[str, Any]] = None,
        overwrite: bool = False,
) -> Path:
    """Write a timm Hub folder: config.json (with label_names), model.safetensors and the card as README.md.

    The folder is written beside `output_dir` under a temporary name and renamed into place, so a crash leaves
    either the previous folder or the complete new one, never a half-written one (a killed process may leave a
    hidden `.NAME.tmp-*` or `.NAME.old-*` folder beside it). Pass an unwrapped model (`accelerator.unwrap_model`,
    not DDP or `torch.compile` wrappers): its `state_dict` keys are what timm loads. `card.label_names` (default:
    the model's `pretrained_cfg['label_names']`) must have one name per output class. The card's parameter
    count and preprocessing are filled from the model when not given.

    Returns:
        The folder path.
    """
    output_dir = Path(output_dir)
    info = card if isinstance(card, ModelCardInfo) else ModelCardInfo.from_dict(card)
    labels = tuple(info.label_names or model.pretrained_cfg.get('label_names') or ())
    num_classes = getattr(model, 'num_classes', 0)
    if num_classes and len(labels) != num_classes:
        raise ValueError(f'The model has {num_classes} classes but the card names {len(labels)} labels: {labels}')
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f'{output_dir} exists; pass overwrite=True to replace it')
    data = timm.data.resolve_data_config(dict(data_config or {}), model=model)
    info = dataclasses.replace(
        info, label_names=labels,
        num_params=info.num_params or sum(p.numel() for p in model.parameters()),
        preprocessing=info.preprocessing or {k: data[k] for k in
                                             ('input_size', 'interpolation', 'mean', 'std', 'crop_pct') if k in data},
    )
    model_config = dict(model_config or {})
    # the model's pretrained cfg may describe the weights it was created from; this folder holds others
    model_config['pretrained_cfg'] = {
        'tag': info.model_name.partition('.')[2] or None, 'description': info.description or info.model_name,
        'license': info.license, **model_config.get('pretrained_cfg', {}),
    }
    if labels:
        model_config['label_names'] = list(labels)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f'.{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}')
    tmp.mkdir()  # permissions from the umask, like any folder the user makes
    try:
        timm.models.save_for_hf(model, tmp, model_config=model_config, safe_serialization=True,
                                data_config=data_config)
        config_path = tmp / CONFIG_NAME
        config_path.write_text(json.dumps(transformers_compatible(json.loads(config_path.read_text())), indent=2))
        (tmp / CARD_NAME).write_text(render_model_card(info), encoding='utf-8')
        for f in tmp.iterdir():  # safetensors writes 0600 files; give them the folder's permissions
            f.chmod(tmp.stat().st_mode & 0o666)
        _replace_dir(tmp, output_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


def check_model_folder(folder: Union[str, Path], require_card: bool = False) -> Path:
    """Raise FileNotFoundError naming each file a Hub folder lacks (config.json, model.safetensors, README.md)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder} is not a folder')
    needed = [CONFIG_NAME, WEIGHTS_NAME] + ([CARD_NAME] if require_card else [])
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f'{folder} is not a complete timm Hub folder: missing {", ".join(missing)} '
            f'(write one with timm_dan.hub.save_model_folder or hub/convert_official.py)'
        )
    return folder


def load_model_folder(folder: Union[str, Path], **kwargs: Any) -> torch.nn.Module:
    """`timm.create_model("local-dir:FOLDER", pretrained=True)`, after checking the folder holds its files."""
    folder = check_model_folder(folder)
    return timm.create_model(f'local-dir:{folder}', pretrained=True, **kwargs)


def validate_model_folder(folder: Union[str, Path]) -> dict[str, Any]:
    """Load the folder, run a forward pass, parse the card; return what would be published.

    Returns:
        {'files': {name: bytes}, 'metadata': the card's front matter as a dict, 'num_classes',
         'label_names', 'output_shape'}.
    """
    folder = check_model_folder(folder, require_card=True)
    card = ModelCard.load(folder / CARD_NAME)
    if card.data.library_name != 'timm':
        raise ValueError(f'{folder / CARD_NAME}: front matter must say library_name: timm, '
                         f'got {card.data.library_name!r}')
    config = json.loads((folder / CONFIG_NAME).read_text())
    labels = config.get('label_names') or ()
    num_classes = config.get('num_classes', 0)
    if num_classes and len(labels) != num_classes:
        raise ValueError(f'{folder / CONFIG_NAME}: num_classes is {num_classes} but label_names has {len(labels)}')
    model = load_model_folder(folder).eval()
    size = timm.data.resolve_model_data_config(model)['input_size']
    with torch.no_grad():
        out = model(torch.randn(2, *size))
    if not torch.isfinite(out).all():
        raise ValueError(f'{folder}: the forward pass gave non-finite outputs')
    return {
        'files': {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()},
        'metadata': card.data.to_dict(),
        'num_classes': num_classes,
        'label_names': list(labels),
        'output_shape': list(out.shape),
    }
