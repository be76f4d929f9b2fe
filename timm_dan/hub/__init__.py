"""Hugging Face Hub folders and model cards for DAN weights.

One card generator (`render_model_card`) serves every card: converted official checkpoints, the MS-Celeb
ResNet-18 trunk, the family card `MODEL_CARD.md`, and the `best/` folder of a training run. A Hub folder is
what `timm.models.save_for_hf` writes (`config.json` with `label_names`, `model.safetensors`) plus the card as
`README.md`; it loads with `timm.create_model("local-dir:DIR", pretrained=True)` or, once uploaded,
`timm.create_model("hf-hub:NAMESPACE/NAME", pretrained=True)`.

    from timm_dan.hub import Metric, ModelCardInfo, save_model_folder
    card = ModelCardInfo(model_name='dan_resnet18 fine-tuned on RAF-DB', datasets=['rafdb'],
                         metrics=[Metric('accuracy', 88.9, 'rafdb', std=0.3, num_seeds=3)])
    save_model_folder(model, 'out/best', card=card, overwrite=True)
"""
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
from .official import (
    DEFAULT_MANIFEST,
    convert_backbone_file,
    convert_official_file,
    create_model,
    family_card,
    load_manifest,
    missing_weights_message,
    official_card,
)
from .publish import USER_ERRORS, call_or_exit, print_folder, push_model_folder

__all__ = [
    'DatasetInfo', 'DATASETS', 'Metric', 'ModelCardInfo', 'CONFIG_NAME', 'WEIGHTS_NAME', 'CARD_NAME',
    'render_model_card', 'card_metadata', 'save_model_folder', 'sha256_file', 'check_model_folder',
    'load_model_folder', 'validate_model_folder', 'convert_official_file', 'convert_backbone_file',
    'create_model', 'missing_weights_message', 'load_manifest', 'official_card', 'family_card', 'push_model_folder',
    'USER_ERRORS', 'call_or_exit', 'DEFAULT_MANIFEST', 'print_folder',
]
