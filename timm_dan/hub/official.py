"""The authors' checkpoints: the manifest (`timm_dan/hub/models.yaml`), their cards, their conversion into Hub folders,
and the error for weights that are neither cached nor downloadable."""
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import timm
import torch
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

from ..models.dan import (
    LABELS,
    OFFICIAL_LABEL_MAPS,
    convert_official_checkpoint,
    load_backbone_weights,
    load_weights_file,
)
from .card import DATASETS, Metric, ModelCardInfo
from .folder import save_model_folder, sha256_file

DEFAULT_MANIFEST = Path(__file__).resolve().parent / 'models.yaml'  # shipped in the wheel


def load_manifest(path: Union[str, Path] = DEFAULT_MANIFEST) -> dict[str, Any]:
    """The manifest of what the project publishes on the Hub (`timm_dan/hub/models.yaml`)."""
    import yaml
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def _manifest_entry(manifest: Mapping[str, Any], **match: str) -> Optional[dict[str, Any]]:
    for entry in manifest.get('models', []) + manifest.get('backbones', []):
        if all(entry.get(k) == v for k, v in match.items()):
            return entry
    return None


def official_card(entry: Mapping[str, Any], **overrides: Any) -> ModelCardInfo:
    """The card of an official checkpoint from its manifest entry (`timm_dan/hub/models.yaml`, `models:`)."""
    source = entry['source']
    info = ModelCardInfo(
        model_name=entry['tag'], datasets=[entry['dataset']], label_names=LABELS[:entry['num_classes']],
        metrics=[Metric(dataset=entry['dataset'], **m) for m in entry.get('metrics', ())],
        description=entry['description'], repo_id=entry['repo_id'], recipe=entry.get('recipe', ''),
        source_file=source['file'], source_sha256=source.get('sha256'), source_url=source.get('url'),
        license=entry['license'], license_name=entry.get('license_name'), license_text=entry['license_text'],
    )
    return dataclasses.replace(info, **overrides)


def family_card(manifest: Mapping[str, Any]) -> ModelCardInfo:
    """The card of the whole `dan_resnet18` family (root MODEL_CARD.md): every published repo, all results."""
    models = manifest['models']
    default = next(m for m in models if m.get('default'))
    rows = [dict(tag=m['tag'], repo_id=m['repo_id'], source=m['source']['file'], status=m['status'])
            for m in models + manifest.get('backbones', [])]
    recipe = {DATASETS[m['dataset']].name: '; '.join(f'{k} {v}' for k, v in m['recipe'].items()) for m in models}
    datasets = list(dict.fromkeys(m['dataset'] for m in models))
    return ModelCardInfo(
        model_name=manifest['family'], datasets=datasets, label_names=LABELS,
        metrics=[Metric(dataset=m['dataset'], **x) for m in models for x in m.get('metrics', ())],
        description=manifest['description'], load_name=default['tag'], recipe=recipe,
        license=default['license'], license_name=default.get('license_name'), license_text=default['license_text'],
        published=rows, preprocessing=manifest.get('preprocessing', {}),
        usage_note=manifest.get('usage_note', ''),
    )


def convert_official_file(
        path: Union[str, Path],
        dataset: str,
        output_dir: Union[str, Path],
        *,
        manifest: Optional[Mapping[str, Any]] = None,
        overwrite: bool = False,
) -> Path:
    """Convert one of the authors' `.pth` files into a timm Hub folder with its card.

    The file is read with `torch.load(weights_only=True)` (a file needing a full unpickle is refused) and
    converted with `convert_official_checkpoint` (canonical class order); its name and SHA-256 go on the card.
    When the manifest records a SHA-256 for this data set, a different file is refused.
    """
    path = Path(path)
    manifest = load_manifest() if manifest is None else manifest
    entry = _manifest_entry(manifest, dataset=dataset)
    if entry is None:
        raise ValueError(f'No official model for dataset {dataset!r} in the manifest')
    sha = sha256_file(path)
    known = entry['source'].get('sha256')
    if known and known != sha:
        raise ValueError(f'{path} has SHA-256 {sha}, but the manifest records {known} for {entry["source"]["file"]}')
    checkpoint = load_weights_file(str(path))
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path} holds a {type(checkpoint).__name__}, not a checkpoint dict')
    state_dict = convert_official_checkpoint(checkpoint, dataset)
    model = timm.create_model(entry['tag'], pretrained=False).eval()
    model.load_state_dict(state_dict, strict=True)
    card = official_card(entry, source_file=path.name, source_sha256=sha)
    return save_model_folder(model, output_dir, card=card, overwrite=overwrite)


def convert_backbone_file(
        path: Union[str, Path],
        output_dir: Union[str, Path],
        *,
        manifest: Optional[Mapping[str, Any]] = None,
        overwrite: bool = False,
) -> Path:
    """Convert the paper's MS-Celeb-1M ResNet-18 (`{'state_dict': torchvision keys}`) into a timm `resnet18` folder.

    Train DAN from it with `timm.create_model("dan_resnet18", backbone_pretrained="DIR/model.safetensors")`.
    """
    path = Path(path)
    manifest = load_manifest() if manifest is None else manifest
    entry = _manifest_entry(manifest, architecture='resnet18')
    sha = sha256_file(path)
    model = timm.create_model('resnet18', num_classes=0).eval()
    load_backbone_weights(model, str(path))
    model.pretrained_cfg = {**model.pretrained_cfg, 'license': entry['license'], 'tag': entry['tag'].split('.')[-1]}
    card = ModelCardInfo(
        model_name=entry['tag'], datasets=[entry['dataset']], architecture='resnet18',
        description=entry['description'], repo_id=entry['repo_id'], source_file=path.name, source_sha256=sha,
        source_url=entry['source'].get('url'), license=entry['license'], license_name=entry.get('license_name'),
        license_text=entry['license_text'], usage_note=entry['usage_note'],
    )
    return save_model_folder(model, output_dir, card=card, overwrite=overwrite)


def missing_weights_message(repo_id: str, manifest: Optional[Mapping[str, Any]] = None) -> str:
    """What to tell a user whose weights for `repo_id` are neither cached nor downloadable.

    Names the repo and the two ways out: go online, or convert the authors' file for that data set (its name
    from the manifest when it is at hand, e.g. in a source checkout) and load it with `local-dir:`.
    """
    if manifest is None and DEFAULT_MANIFEST.is_file():
        manifest = load_manifest()
    entry = _manifest_entry(manifest or {}, repo_id=repo_id)
    dataset = repo_id.rsplit('.', 1)[-1]
    if dataset in OFFICIAL_LABEL_MAPS:
        source = entry['source']['file'] if entry else f"the authors' {dataset} checkpoint (.pth)"
        local = f'dan-{dataset}'
    else:
        source, dataset, local = 'CHECKPOINT.pth', '{rafdb,affectnet7,affectnet8}', 'DIR'
    return (
        f'Could not get the weights of the Hugging Face Hub repo {repo_id!r}: they are not in the local cache, '
        f'and the Hub could not be reached or has no such repo. Either go online (unset HF_HUB_OFFLINE) so that '
        f'they download once into the cache, or convert the authors\' checkpoint yourself: '
        f'`python hub/convert_official.py {source} --dataset {dataset} --output-dir {local}` and load it with '
        f'timm.create_model("local-dir:{local}", pretrained=True).'
    )


def create_model(model_name: str, pretrained: bool = False, **kwargs: Any) -> torch.nn.Module:
    """`timm.create_model` with one clear error when Hub weights are missing, also for `hf-hub:` names.

    Registered tags (`dan_resnet18.rafdb`) already get that error from the model file; `hf-hub:ID` names fail
    inside timm before any DAN code runs, so they are wrapped here.
    """
    try:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except (LocalEntryNotFoundError, EntryNotFoundError, HfHubHTTPError) as e:
        if not model_name.startswith('hf-hub:'):
            raise
        repo_id = model_name[len('hf-hub:'):].split('@')[0]
        raise RuntimeError(missing_weights_message(repo_id)) from e
