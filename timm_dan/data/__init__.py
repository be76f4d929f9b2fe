"""FER data sets as Hugging Face `datasets`, in one canonical label order, with the DAN recipes' transforms.

    from timm_dan.data import load_fer_dataset, create_transform, prepare_dataset, fer_collate
    ds = load_fer_dataset('synthetic')                        # or 'rafdb', data_dir=...
    train = prepare_dataset(ds['train'], create_transform(data_config, 'rafdb', is_training=True))
    loader = DataLoader(train, batch_size=64, shuffle=True, collate_fn=fer_collate)   # (pixel_values, labels)

Faster: decode only per sample and transform whole batches in the collate function (same augmentations):
    train = prepare_dataset(ds['train'], torchvision.transforms.v2.Identity())
    loader = DataLoader(train, batch_size=64, shuffle=True,
                        collate_fn=BatchCollate(data_config, 'rafdb', is_training=True))
"""
from .api import SYNTHETIC_DEFAULTS, load_fer_dataset
from .batched import BatchCollate
from .builder import BadImagesError, FERReport
from .labels import LABELS, canonical_names
from .loader import ClassBalancedSampler, decode_image_uint8, fer_collate, prepare_dataset
from .registry import FER_DATASETS, FERDatasetInfo
from .transforms import RECIPES, create_transform

__all__ = [
    'load_fer_dataset', 'FER_DATASETS', 'FERDatasetInfo', 'FERReport', 'BadImagesError', 'SYNTHETIC_DEFAULTS',
    'LABELS', 'canonical_names', 'create_transform', 'RECIPES', 'prepare_dataset', 'BatchCollate',
    'decode_image_uint8', 'fer_collate', 'ClassBalancedSampler',
]
