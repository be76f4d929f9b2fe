"""The input pipelines the data benchmark compares, on one generated JPEG tree of 100x100 faces.

baseline: torchvision `ImageFolder` + PIL + the authors' RAF-DB train augmentations (torchvision v1 transforms
    on PIL images, then float tensors), one sample at a time, default collate.
ours: the tree as a `datasets` split -> `timm_dan.data.prepare_dataset` decoding to uint8 only ->
    `timm_dan.data.BatchCollate` with the same recipe ('rafdb'), which resizes and augments whole uint8 batches
    in the workers -> `timm_dan.data.DeviceNormalize` in the consumer, which turns each batch into what the
    model takes (normalised float32, channels_last, erased rectangles zeroed): timed as part of ours.
ours (decoded cache): the same split saved to disk and passed through `timm_dan.data.decode_to_arrow` once
    (train.py's opt-in `--cache-decoded`; built before the timing), then the same loader reading raw pixels.
device: the decoded cache loaded once as a `timm_dan.data.device.DeviceSplit` on the device (CPU tensors on a CPU)
    and `timm_dan.training.data.create_device_loader`'s batches (`DeviceBatches`: the same recipe, gathered,
    augmented and normalised there in batches), no workers.
All read the same images through a DataLoader with the same batch size (and, but the device path, workers).
"""
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch
from datasets import ClassLabel, Dataset, Features, Image, load_from_disk
from torch.utils.data import DataLoader
from torchvision import datasets as tv_datasets
from torchvision import transforms as T
from torchvision.transforms import v2

from timm_dan.data import LABELS, BatchCollate, DeviceNormalize, prepare_dataset
from timm_dan.data.synthetic import draw_faces

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_jpeg_tree(root: Path, num_images: int, num_classes: int = 7, size: int = 100, seed: int = 0) -> Path:
    """`root/<class>/<i>.jpg`: `num_images` synthetic aligned faces (RAF-DB's aligned crops are 100x100 JPEGs)."""
    names = LABELS[:num_classes]
    rng = np.random.default_rng(seed)
    labels = np.arange(num_images) % num_classes
    for i, (label, image) in enumerate(zip(labels, draw_faces(labels, size, rng, names), strict=True)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f'{i:06d}.jpg'), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


def baseline_loader(root: Path, image_size: int, batch_size: int, num_workers: int, pin_memory: bool = False
                    ) -> DataLoader:
    """ImageFolder + PIL, the authors' RAF-DB train transform written with torchvision v1 transforms."""
    transform = T.Compose([
        T.Resize((image_size, image_size)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.RandomRotation(20), T.RandomCrop(image_size, padding=round(32 * image_size / 224))], p=0.2),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        T.RandomErasing(scale=(0.02, 0.25)),
    ])
    dataset = tv_datasets.ImageFolder(str(root), transform=transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=True,
                      persistent_workers=num_workers > 0, pin_memory=pin_memory)


def tree_dataset(root: Path, save_to: Optional[Path] = None) -> Dataset:
    """The JPEG tree as a `datasets` split (image paths and labels); saved to `save_to` and loaded back from there
    (memory-mapped, as `load_fer_dataset` gives it: what `decode_to_arrow` caches next to) when given."""
    files = sorted(root.glob('*/*.jpg'))
    names = sorted({f.parent.name for f in files})
    features = Features({'image': Image(), 'label': ClassLabel(names=names)})
    dataset = Dataset.from_dict(
        {'image': [str(f) for f in files], 'label': [names.index(f.parent.name) for f in files]}, features=features)
    if save_to is None:
        return dataset
    dataset.save_to_disk(str(save_to))
    return load_from_disk(str(save_to))


def our_loader(dataset: Dataset, image_size: int, batch_size: int, num_workers: int, device: str = 'cpu'
               ) -> tuple[DataLoader, DeviceNormalize]:
    """A split of the tree (`tree_dataset`, or its `decode_to_arrow` cache) through timm_dan.data's decode + batch
    transform, and the consumer's normalisation (on `device`, from pinned memory on CUDA) that makes each batch
    what the model takes."""
    data_config = {'input_size': (3, image_size, image_size), 'interpolation': 'bilinear',
                   'mean': IMAGENET_MEAN, 'std': IMAGENET_STD}
    loader = DataLoader(prepare_dataset(dataset, v2.Identity()), batch_size=batch_size, shuffle=True,
                        num_workers=num_workers, drop_last=True, persistent_workers=num_workers > 0,
                        collate_fn=BatchCollate(data_config, 'rafdb', is_training=True),
                        pin_memory=torch.device(device).type == 'cuda')
    return loader, DeviceNormalize(data_config, device)


def device_loader(decoded: Dataset, image_size: int, batch_size: int, device: str = 'cpu') -> tuple[DataLoader, None]:
    """The decoded split (`decode_to_arrow`) on `device`, and the training loader of the device pipeline over it
    (RAF-DB recipe); its batches are ready (no consumer's step: None)."""
    from timm_dan.data.device import DeviceSplit
    from timm_dan.training.data import create_device_loader
    data_config = {'input_size': (3, image_size, image_size), 'interpolation': 'bilinear',
                   'mean': IMAGENET_MEAN, 'std': IMAGENET_STD}
    split = DeviceSplit.from_dataset(decoded, device)
    return create_device_loader(split, data_config, batch_size, is_training=True, recipe='rafdb', seed=0), None


def drain(loader: DataLoader, consume: Optional[Callable] = None) -> int:
    """Iterate one epoch, passing each batch through `consume` (our DeviceNormalize); returns the number of images
    (checks each batch's shape and dtype)."""
    count = 0
    for batch in loader:
        images, labels = consume(batch) if consume is not None else batch
        assert images.dtype == torch.float32 and images.shape[0] == labels.shape[0]
        count += images.shape[0]
    return count
