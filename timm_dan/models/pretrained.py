"""The table of published DAN weights, and loading weights by name.

One table (`PRETRAINED`, and `BACKBONES` for trunks to start training from) says everything about each set of
weights: the timm tag and Hub repo, where the authors released the file it is converted from, what they report
for it, how it was trained and under which licence. The timm pretrained cfgs of `dan.py`, the Hub cards and the
family card `MODEL_CARD.md` are all derived from it.
"""
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import timm
import torch.nn as nn
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

from .guards import read_model_config

__all__ = ['HF_HUB_NAMESPACE', 'AUTHORS_RELEASE', 'ReportedMetric', 'PretrainedWeights', 'PRETRAINED', 'BACKBONES',
           'FAMILY', 'find_weights', 'missing_weights_message', 'load_pretrained', 'HUB_ERRORS']

HF_HUB_NAMESPACE = 'timm-dan'
"""Hugging Face Hub namespace that holds the published DAN weights."""

AUTHORS_RELEASE = 'https://github.com/yaoing/DAN (Google Drive / Baidu links in its README)'
"""Where the authors publish their checkpoints."""

HUB_ERRORS = (LocalEntryNotFoundError, EntryNotFoundError, HfHubHTTPError)
"""What huggingface_hub raises for a file that is neither cached nor downloadable."""

_REPORTED = 'the authors (reported; not measured here)'
_WEIGHTS_LICENCE = ('not stated by the authors (their code is MIT). The weights were trained on data licensed for '
                    'non-commercial research only; treat them as non-commercial research only.')


@dataclass(frozen=True)
class ReportedMetric:
    """A result the weights' authors report, in percent."""
    name: str  # 'accuracy', 'mean_class_accuracy', ...
    value: float
    split: str
    measured_by: str = _REPORTED
    source_url: str = 'https://github.com/yaoing/DAN'


@dataclass(frozen=True)
class PretrainedWeights:
    """One set of published weights: `timm.create_model(f'{architecture}.{tag}', pretrained=True)`."""
    architecture: str
    tag: str
    dataset: str  # the model card's data set key (`timm_dan.hub.DATASETS`)
    description: str
    source_file: str  # the authors' file the weights are converted from
    num_classes: Optional[int] = None  # None: a trunk without classifier
    source_url: str = AUTHORS_RELEASE
    source_sha256: Optional[str] = None  # recorded once someone converts the file; later conversions must match
    metrics: tuple[ReportedMetric, ...] = ()
    recipe: Mapping[str, str] = field(default_factory=dict)
    license: str = 'other'
    license_name: str = 'unstated-non-commercial-research'
    license_text: str = _WEIGHTS_LICENCE
    usage_note: str = ''
    status: str = 'not uploaded yet'

    @property
    def name(self) -> str:
        """The timm name with tag, e.g. 'dan_resnet18.rafdb'."""
        return f'{self.architecture}.{self.tag}'

    @property
    def hf_hub_id(self) -> str:
        return f'{HF_HUB_NAMESPACE}/{self.name}'


_AFFECTNET_RECIPE = {
    'optimizer': 'Adam lr 1e-4, weight decay 0, ExponentialLR(gamma 0.6), batch 256',
    'epochs': '10 planned',
    'sampler': 'class-balanced (weights 1/class count, with replacement)',
    'augmentation': 'resize 224, horizontal flip, p=0.7 RandomAffine(20, scale 0.8-1, translate 0.2), RandomErasing',
    'loss': 'cross-entropy + affinity (weight 1) + partition (weight 1)',
    'init': 'MS-Celeb-1M ResNet-18 trunk',
}

PRETRAINED: tuple[PretrainedWeights, ...] = (
    # the first of an architecture is its default: web photos in the wild, loose face crops, all 8 labels
    PretrainedWeights(
        'dan_resnet18', 'affectnet8', 'affectnet8', num_classes=8,
        description="The authors' DAN trained on AffectNet with 8 classes (the default `dan_resnet18` weights: web "
                    "photos in the wild, loose face crops, all 8 labels), converted to timm.",
        source_file='affecnet8_epoch5_acc0.6209.pth',
        metrics=(ReportedMetric('accuracy', 62.09, 'validation'),),
        recipe={**_AFFECTNET_RECIPE, 'epochs': '10 planned (the released file is epoch 5)'},
    ),
    PretrainedWeights(
        'dan_resnet18', 'affectnet7', 'affectnet7', num_classes=7,
        description="The authors' DAN trained on AffectNet with 7 classes (no contempt), converted to timm.",
        source_file='affecnet7_epoch6_acc0.6569.pth',
        metrics=(ReportedMetric('accuracy', 65.69, 'validation'),),
        recipe={**_AFFECTNET_RECIPE, 'epochs': '10 planned (the released file is epoch 6)'},
    ),
    PretrainedWeights(
        'dan_resnet18', 'rafdb', 'rafdb', num_classes=7,
        description="The authors' DAN trained on RAF-DB (basic, 7 classes), converted to timm with its classifier "
                    "permuted from RAF-DB's order into the canonical one. Expects aligned faces like RAF-DB's.",
        source_file='rafdb_epoch21_acc0.897_bacc0.8275.pth',
        metrics=(ReportedMetric('accuracy', 89.70, 'test'), ReportedMetric('mean_class_accuracy', 82.75, 'test')),
        recipe={
            'optimizer': 'SGD lr 0.1, momentum 0.9, weight decay 1e-4, StepLR(10, 0.1), batch 256',
            'epochs': '40 (the released file is epoch 21, picked on the test set)',
            'augmentation': 'resize 224, horizontal flip, p=0.2 [RandomRotation 20, RandomCrop 224 pad 32], '
                            'RandomErasing(0.02-0.25)',
            'loss': 'cross-entropy + affinity (weight 1) + partition (weight 1)',
            'init': 'MS-Celeb-1M ResNet-18 trunk',
        },
    ),
)
"""The published DAN weights (the authors' checkpoints, converted)."""

BACKBONES: tuple[PretrainedWeights, ...] = (
    PretrainedWeights(
        'resnet18', 'msceleb', 'ms-celeb-1m',
        description='The MS-Celeb-1M face-recognition ResNet-18 trunk the DAN paper (and SCN, DACL) start from, as a '
                    'timm `resnet18` without classifier. Its original download link is dead; convert a copy with '
                    '`timm-dan hub convert-backbone`.',
        source_file='resnet18_msceleb.pth', source_url='the SCN / DAN repositories (link dead)',
        license_text='not stated by its authors. MS-Celeb-1M was withdrawn by Microsoft in 2019 and was released for '
                     'non-commercial research only; treat these weights as non-commercial research only.',
        usage_note='The model gives 512-d pooled face features. Start DAN training from it with '
                   '`timm.create_model("dan_resnet18", backbone_pretrained="PATH/TO/THIS/FOLDER/model.safetensors")`.',
    ),
)
"""Published trunks to start DAN training from."""

FAMILY: Mapping[str, str] = {
    'name': 'dan_resnet18',
    'description': 'DAN ("Distract Your Attention", Wen et al.) is a facial expression recognition network: a '
                   'ResNet-18 trunk, four cross-attention heads (spatial then channel attention) and an attention '
                   'fusion, trained with cross-entropy plus an affinity loss and a partition loss. These are the '
                   'authors\' released weights, converted to timm\'s format with the classifier in one canonical '
                   'label order (7-class weights use the first seven labels).',
    'usage_note': '`dan_resnet18` alone loads the default weights, `dan_resnet18.affectnet8`: trained on web photos '
                  'in the wild with loose face crops and all 8 labels, they fit the faces a detector finds in everyday '
                  'photos best. Use `dan_resnet18.rafdb` for tightly aligned faces like RAF-DB\'s, '
                  '`dan_resnet18.affectnet7` when there must be no `contempt` class. The probabilities come in the '
                  'order of `model.pretrained_cfg["label_names"]`.',
}
"""What the family card (MODEL_CARD.md) says about all of `PRETRAINED` together."""


def find_weights(**match: Any) -> Optional[PretrainedWeights]:
    """The first entry of `PRETRAINED` + `BACKBONES` whose attributes equal `match` (e.g. `dataset='rafdb'`,
    `hf_hub_id=...`), or None."""
    for weights in PRETRAINED + BACKBONES:
        if all(getattr(weights, key) == value for key, value in match.items()):
            return weights
    return None


def missing_weights_message(repo_id: str) -> str:
    """What to tell a user whose weights for Hub repo `repo_id` are neither cached nor downloadable: the repo, and
    the two ways out (go online once, or convert the authors' file and load the folder), as CLI commands."""
    weights = find_weights(hf_hub_id=repo_id)
    if weights is not None and weights.num_classes:
        source, dataset, folder = weights.source_file, weights.tag, f'dan-{weights.tag}'
        where = f"the authors publish {source} at {weights.source_url}"
    else:
        source, dataset, folder = 'CHECKPOINT.pth', '{rafdb,affectnet7,affectnet8}', 'DIR'
        where = f"the authors' checkpoints are published at {AUTHORS_RELEASE}"
    return (
        f'Could not get the weights of the Hugging Face Hub repo {repo_id!r}: they are not in the local cache, and '
        f'the Hub could not be reached or has no such repo. Either go online (unset HF_HUB_OFFLINE) once so that '
        f'they download into the cache, or convert the authors\' checkpoint yourself ({where}): '
        f'`timm-dan hub convert-official {source} --dataset {dataset} --output-dir {folder}`, then use '
        f'`--model local-dir:{folder}` (in Python: timm.create_model("local-dir:{folder}", pretrained=True)).'
    )


def _check_folder_config(model_name: str) -> None:
    source, _, location = model_name.partition(':')
    if source == 'local-dir':
        read_model_config(location)
    elif source == 'hf-hub':
        repo, _, revision = location.partition('@')
        read_model_config(Path(hf_hub_download(repo, 'config.json', revision=revision or None)).parent)


def load_pretrained(model_name: str, **kwargs: Any) -> nn.Module:
    """`timm.create_model(model_name, pretrained=True, **kwargs)` for any name (a registered tag, `hf-hub:ID`,
    `local-dir:DIR`); Hub weights that are neither cached nor downloadable raise one RuntimeError from
    `missing_weights_message` (registered DAN tags get it from the model file already). A folder's config.json is
    checked first (`guards.read_model_config`: types, sizes, a registered architecture), so a hostile or broken
    folder is one `ModelConfigError` naming the field."""
    try:
        _check_folder_config(model_name)
        return timm.create_model(model_name, pretrained=True, **kwargs)
    except HUB_ERRORS as e:
        if not model_name.startswith('hf-hub:'):
            raise
        repo_id = model_name[len('hf-hub:'):].split('@')[0]
        raise RuntimeError(missing_weights_message(repo_id)) from e
