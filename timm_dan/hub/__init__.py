"""Hugging Face Hub folders and model cards for DAN weights.

One card generator (`render_model_card`) serves every card: converted official checkpoints, the MS-Celeb
ResNet-18 trunk, the family card `MODEL_CARD.md`, and the `best/` folder of a training run. A Hub folder is
what `timm.models.save_for_hf` writes (`config.json` with `label_names`, `model.safetensors`) plus the card as
`README.md`; it loads with `timm.create_model("local-dir:DIR", pretrained=True)` or, once uploaded,
`timm.create_model("hf-hub:NAMESPACE/NAME", pretrained=True)`. What the project publishes is the table in
`timm_dan.models.pretrained`; `timm-dan hub ...` converts, renders and uploads it.

    from timm_dan.hub import Metric, ModelCardInfo, save_model_folder
    card = ModelCardInfo(model_name='dan_resnet18 fine-tuned on RAF-DB', datasets=['rafdb'],
                         metrics=[Metric('accuracy', 88.9, 'rafdb', std=0.3, num_seeds=3)])
    save_model_folder(model, 'out/best', card=card, overwrite=True)
"""
import warnings
from typing import Any

import torch.nn as nn

from .._deprecation import moved_names
from ..models.pretrained import load_pretrained
from .card import DATASETS, DatasetInfo, Metric, ModelCardInfo, card_metadata, render_model_card
from .folder import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    check_model_folder,
    load_model_folder,
    save_model_folder,
    sha256_file,
    validate_model_folder,
)
from .official import convert_backbone_file, convert_official_file, family_card, official_card
from .publish import push_model_folder, upload_token

__all__ = [
    'DatasetInfo', 'DATASETS', 'Metric', 'ModelCardInfo', 'CONFIG_NAME', 'WEIGHTS_NAME', 'CARD_NAME',
    'render_model_card', 'card_metadata', 'save_model_folder', 'sha256_file', 'check_model_folder',
    'load_model_folder', 'validate_model_folder', 'convert_official_file', 'convert_backbone_file',
    'official_card', 'family_card', 'push_model_folder', 'upload_token',
]



def create_model(model_name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Deprecated (goes in the next release): `timm_dan.models.load_pretrained(name)` for weights by name, or
    `timm.create_model(name)` for a freshly initialised model."""
    warnings.warn('timm_dan.hub.create_model is deprecated and goes in the next release: use '
                  'timm_dan.models.load_pretrained (or timm.create_model)', DeprecationWarning, stacklevel=2)
    if pretrained:
        return load_pretrained(model_name, **kwargs)
    import timm
    return timm.create_model(model_name, **kwargs)


__getattr__ = moved_names(__name__, {
    'missing_weights_message': 'timm_dan.models.pretrained:missing_weights_message',
    'USER_ERRORS': 'timm_dan.cli.errors:USER_ERRORS',
    'call_or_exit': 'timm_dan.cli.errors:call_or_exit',
    'print_folder': 'timm_dan.cli.hub:print_folder',
})
