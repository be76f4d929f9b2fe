"""The published weights as Hub folders: the authors' files converted (with their cards), and the family card.

What is published, and everything its cards say, comes from `timm_dan.models.pretrained` (`PRETRAINED`,
`BACKBONES`, `FAMILY`).
"""
import dataclasses
from pathlib import Path
from typing import Any, Optional, Union

import timm

from ..labels import LABELS
from ..models.official import convert_official_checkpoint, load_backbone_weights, read_checkpoint
from ..models.pretrained import BACKBONES, FAMILY, PRETRAINED, PretrainedWeights, find_weights
from .card import DATASETS, Metric, ModelCardInfo
from .folder import save_model_folder, sha256_file

__all__ = ['official_card', 'family_card', 'convert_official_file', 'convert_backbone_file']


def _card_metrics(weights: PretrainedWeights) -> list[Metric]:
    return [Metric(m.name, m.value, weights.dataset, split=m.split, measured_by=m.measured_by,
                   source_url=m.source_url) for m in weights.metrics]


def official_card(weights: PretrainedWeights, **overrides: Any) -> ModelCardInfo:
    """The card of one set of published weights (`PRETRAINED` or `BACKBONES`)."""
    is_dan = weights.num_classes is not None
    info = ModelCardInfo(
        model_name=weights.name, datasets=[weights.dataset], architecture=weights.architecture,
        label_names=LABELS[:weights.num_classes] if is_dan else (), metrics=_card_metrics(weights),
        description=weights.description, repo_id=weights.hf_hub_id, recipe=dict(weights.recipe),
        source_file=weights.source_file, source_sha256=weights.source_sha256, source_url=weights.source_url,
        license=weights.license, license_name=weights.license_name, license_text=weights.license_text,
        usage_note=weights.usage_note,
    )
    return dataclasses.replace(info, **overrides)


def family_card() -> ModelCardInfo:
    """The card of the whole `dan_resnet18` family (the root MODEL_CARD.md): every published repo, all results."""
    default = PRETRAINED[0]
    cfg = timm.models.get_pretrained_cfg(default.architecture)
    rows = [dict(tag=w.name, repo_id=w.hf_hub_id, source=w.source_file, status=w.status)
            for w in PRETRAINED + BACKBONES]
    return ModelCardInfo(
        model_name=FAMILY['name'], datasets=list(dict.fromkeys(w.dataset for w in PRETRAINED)), label_names=LABELS,
        metrics=[m for w in PRETRAINED for m in _card_metrics(w)], description=FAMILY['description'],
        load_name=default.name,
        recipe={DATASETS[w.dataset].name: '; '.join(f'{k} {v}' for k, v in w.recipe.items()) for w in PRETRAINED},
        license=default.license, license_name=default.license_name, license_text=default.license_text,
        published=rows, usage_note=FAMILY['usage_note'],
        preprocessing={k: getattr(cfg, k) for k in ('input_size', 'interpolation', 'crop_pct', 'mean', 'std')},
    )


def _check_source(path: Path, weights: PretrainedWeights) -> str:
    """The file's SHA-256, after checking it against the one the table records (when it records one)."""
    sha = sha256_file(path)
    if weights.source_sha256 and weights.source_sha256 != sha:
        raise ValueError(f'{path} has SHA-256 {sha}, but the table of published weights '
                         f'(timm_dan/models/pretrained.py) records {weights.source_sha256} for {weights.source_file}')
    return sha


def convert_official_file(
        path: Union[str, Path],
        dataset: str,
        output_dir: Union[str, Path],
        *,
        weights: Optional[PretrainedWeights] = None,
        overwrite: bool = False,
) -> Path:
    """Convert one of the authors' `.pth` files into a timm Hub folder with its card.

    The file is read with `torch.load(weights_only=True)` (a file needing a full unpickle is refused) and
    converted with `convert_official_checkpoint` (canonical class order); its name and SHA-256 go on the card.
    When the table of published weights records a SHA-256 for this data set, a different file is refused.
    `weights` (default: the `PRETRAINED` entry of `dataset`) says what the folder holds.
    """
    path = Path(path)
    weights = weights or find_weights(dataset=dataset, architecture='dan_resnet18')
    if weights is None:
        raise ValueError(f'No published DAN weights for dataset {dataset!r}; choose one of '
                         f'{", ".join(w.dataset for w in PRETRAINED)}')
    sha = _check_source(path, weights)
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path} holds a {type(checkpoint).__name__}, not a checkpoint dict')
    state_dict = convert_official_checkpoint(checkpoint, dataset)
    model = timm.create_model(weights.name, pretrained=False).eval()
    model.load_state_dict(state_dict, strict=True)
    return save_model_folder(model, output_dir, card=official_card(weights, source_file=path.name, source_sha256=sha),
                             overwrite=overwrite)


def convert_backbone_file(
        path: Union[str, Path],
        output_dir: Union[str, Path],
        *,
        weights: PretrainedWeights = BACKBONES[0],
        overwrite: bool = False,
) -> Path:
    """Convert the paper's MS-Celeb-1M ResNet-18 (`{'state_dict': torchvision keys}`) into a timm `resnet18` folder.

    Train DAN from it with `timm.create_model("dan_resnet18", backbone_pretrained="DIR/model.safetensors")`.
    """
    path = Path(path)
    sha = _check_source(path, weights)
    model = timm.create_model(weights.architecture, num_classes=0).eval()
    load_backbone_weights(model, path)
    model.pretrained_cfg = {**model.pretrained_cfg, 'license': weights.license, 'tag': weights.tag}
    return save_model_folder(model, output_dir, card=official_card(weights, source_file=path.name, source_sha256=sha),
                             overwrite=overwrite)
