"""FER data sets as Hugging Face `datasets`, in one canonical label order, with the DAN recipes' transforms.

    from timm_dan.data import load_fer_dataset, create_transform, prepare_dataset, fer_collate
    ds = load_fer_dataset('synthetic')                        # or 'rafdb', data_dir=...
    train = prepare_dataset(ds['train'], create_transform(data_config, 'rafdb', is_training=True))
    loader = DataLoader(train, batch_size=64, shuffle=True, collate_fn=fer_collate)   # (pixel_values, labels)

Faster (what train.py uses): decode only per sample, augment whole uint8 batches in the collate function, and
normalise on the device (same augmentations):
    train = prepare_dataset(ds['train'], torchvision.transforms.v2.Identity())
    loader = DataLoader(train, batch_size=64, shuffle=True, pin_memory=True,
                        collate_fn=BatchCollate(data_config, 'rafdb', is_training=True))   # uint8 FERBatch
    for images, labels in map(DeviceNormalize(data_config, 'cuda'), loader): ...
"""
from ..labels import LABELS, canonical_names
from .api import load_fer_dataset
from .batched import BatchCollate, DeviceNormalize, FERBatch
from .builder import BadImagesError, FERReport
from .loader import (
    ClassBalancedSampler,
    decode_image_uint8,
    decode_to_arrow,
    fer_collate,
    pixels_to_tensor,
    prepare_dataset,
)
from .recipes import RECIPES, TRAIN_RECIPES, Recipe, get_recipe
from .registry import FER_DATASETS, SYNTHETIC_DEFAULTS, FERDatasetInfo
from .transforms import create_transform

__all__ = [
    'load_fer_dataset', 'FER_DATASETS', 'FERDatasetInfo', 'FERReport', 'BadImagesError', 'SYNTHETIC_DEFAULTS',
    'LABELS', 'canonical_names', 'create_transform', 'RECIPES', 'TRAIN_RECIPES', 'Recipe', 'get_recipe',
    'prepare_dataset', 'BatchCollate', 'DeviceNormalize', 'FERBatch', 'decode_image_uint8', 'decode_to_arrow',
    'pixels_to_tensor', 'fer_collate', 'ClassBalancedSampler',
]
