"""From a FER `datasets` split to training batches: decode + transform, collate, class-balanced sampling."""
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np
import torch
from datasets import Dataset, DatasetDict, Image
from torch.utils.data import WeightedRandomSampler
from torchvision.io import ImageReadMode, decode_image, read_file

__all__ = ['decode_image_uint8', 'prepare_dataset', 'fer_collate', 'ClassBalancedSampler']

Transform = Callable[[torch.Tensor], torch.Tensor]


def decode_image_uint8(image: Mapping[str, Any]) -> torch.Tensor:
    """Decode a `datasets.Image(decode=False)` value ({'bytes', 'path'}) to a 3 x H x W uint8 RGB tensor."""
    data = image.get('bytes')
    data = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data is not None else read_file(image['path'])
    return decode_image(data, mode=ImageReadMode.RGB)


class _DecodeAndTransform:
    """The `with_transform` callable (a class, so that spawned DataLoader workers can pickle it)."""

    def __init__(self, transform: Transform):
        self.transform = transform

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        return {
            'pixel_values': [self.transform(decode_image_uint8(image)) for image in batch['image']],
            'label': batch['label'],
        }


def prepare_dataset(dataset: Union[Dataset, DatasetDict],
                    transform: Union[Transform, Mapping[str, Transform]]) -> Union[Dataset, DatasetDict]:
    """Make a FER split yield {'pixel_values': float tensor, 'label': int} through `with_transform`.

    Images are decoded straight to uint8 tensors (no PIL) and passed to `transform` (see `create_transform`).
    For a `DatasetDict`, `transform` may be one callable or a mapping split -> callable.
    """
    if isinstance(dataset, DatasetDict):
        return DatasetDict({
            split: prepare_dataset(ds, transform[split] if isinstance(transform, Mapping) else transform)
            for split, ds in dataset.items()
        })
    dataset = dataset.cast_column('image', Image(decode=False))
    return dataset.with_transform(_DecodeAndTransform(transform), columns=['image', 'label'])


def fer_collate(batch: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate prepared examples into `(pixel_values B x C x H x W, labels B)`."""
    pixel_values = torch.stack([example['pixel_values'] for example in batch])
    labels = torch.as_tensor([example['label'] for example in batch], dtype=torch.long)
    return pixel_values, labels


class ClassBalancedSampler(WeightedRandomSampler):
    """Draw indices with replacement, each with weight 1 / (count of its class): classes come out balanced.

    Deterministic by `seed` and the epoch: every process draws the same sequence, so under Accelerate
    (`accelerator.prepare(DataLoader(ds, sampler=sampler, ...))`) the batches are sharded across
    processes without overlap. `set_epoch(e)` picks the epoch; without it each pass draws afresh.
    """

    def __init__(self, labels: Sequence[int], num_samples: Optional[int] = None, seed: int = 0):
        labels = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels)
        weights = 1.0 / counts[labels]
        super().__init__(torch.as_tensor(weights, dtype=torch.double), num_samples or len(labels), replacement=True)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self.generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        yield from super().__iter__()
