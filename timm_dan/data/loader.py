"""From a FER `datasets` split to training batches: decode + transform, collate, class-balanced sampling.

`decode_to_arrow` optionally stores the decoded pixels in Arrow once, so that loading skips the decoding.
"""
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np
import torch
from datasets import Dataset, DatasetDict, Image, Value
from torch.utils.data import WeightedRandomSampler
from torchvision.io import ImageReadMode, decode_image, read_file

__all__ = ['decode_image_uint8', 'decode_to_arrow', 'pixels_to_tensor', 'prepare_dataset', 'fer_collate',
           'ClassBalancedSampler']

Transform = Callable[[torch.Tensor], torch.Tensor]


def decode_image_uint8(image: Mapping[str, Any]) -> torch.Tensor:
    """Decode a `datasets.Image(decode=False)` value ({'bytes', 'path'}) to a 3 x H x W uint8 RGB tensor."""
    data = image.get('bytes')
    data = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data is not None else read_file(image['path'])
    return decode_image(data, mode=ImageReadMode.RGB)


def pixels_to_tensor(pixels: bytes, height: int, width: int) -> torch.Tensor:
    """A `decode_to_arrow` row (H x W x 3 uint8 bytes) -> the 3 x H x W uint8 tensor `decode_image_uint8` gives
    (contiguous and writable: the one copy is the transposition)."""
    hwc = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, 3)
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))


def _decode_batch(batch: dict[str, list]) -> dict[str, list]:
    """`decode_to_arrow`'s map function: encoded images -> raw H x W x 3 bytes and their sizes."""
    pixels, heights, widths = [], [], []
    for image in batch['image']:
        try:
            decoded = decode_image_uint8(image)
        except RuntimeError as e:
            raise ValueError(f'decode_to_arrow: cannot decode {image["path"] or "an embedded image"}: {e}') from e
        pixels.append(decoded.permute(1, 2, 0).numpy().tobytes())
        heights.append(decoded.shape[1])
        widths.append(decoded.shape[2])
    return {'pixels': pixels, 'height': heights, 'width': widths}


_PIXEL_FEATURES = {'pixels': Value('large_binary'), 'height': Value('int32'), 'width': Value('int32')}
_DECODE_BATCH = 64  # images per map batch and per written record batch: bounds the memory for large images


def decode_to_arrow(dataset: Union[Dataset, DatasetDict], num_proc: Optional[int] = None
                    ) -> Union[Dataset, DatasetDict]:
    """Replace a FER split's `image` column by its decoded RGB pixels: `pixels` (raw H x W x 3 uint8 bytes),
    `height`, `width`; every other column is kept. `prepare_dataset` then builds tensors without decoding.

    A split loaded from disk (every `load_fer_dataset` split) gets the result cached next to its own Arrow files
    by `datasets`, so a second call on the same data reads it back instead of decoding again. It costs
    H * W * 3 bytes per image on disk (RAF-DB's 15,339 aligned 100 x 100 crops: 460 MB).
    """
    if isinstance(dataset, DatasetDict):
        return DatasetDict({split: decode_to_arrow(ds, num_proc) for split, ds in dataset.items()})
    if 'image' not in dataset.column_names:
        raise ValueError(f'decode_to_arrow needs an `image` column; the split has {dataset.column_names}')
    features = dataset.features.copy()
    del features['image']
    features.update(_PIXEL_FEATURES)
    return dataset.cast_column('image', Image(decode=False)).map(
        _decode_batch, batched=True, batch_size=_DECODE_BATCH, writer_batch_size=_DECODE_BATCH,
        remove_columns=['image'], features=features, num_proc=num_proc, desc='Decoding images to Arrow',
    )


class _DecodeAndTransform:
    """The `with_transform` callable (a class, so that spawned DataLoader workers can pickle it): decodes the
    `image` column, or reads a `decode_to_arrow` split's `pixels`, and applies `transform`; `columns` pass through."""

    def __init__(self, transform: Transform, columns: Sequence[str] = ()):
        self.transform = transform
        self.columns = tuple(columns)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        if 'pixels' in batch:
            images = map(pixels_to_tensor, batch['pixels'], batch['height'], batch['width'])
        else:
            images = map(decode_image_uint8, batch['image'])
        return {'pixel_values': [self.transform(image) for image in images], 'label': batch['label'],
                **{column: batch[column] for column in self.columns}}


def prepare_dataset(dataset: Union[Dataset, DatasetDict],
                    transform: Union[Transform, Mapping[str, Transform]],
                    columns: Sequence[str] = ()) -> Union[Dataset, DatasetDict]:
    """Make a FER split yield {'pixel_values': float tensor, 'label': int} through `with_transform`.

    Images are decoded straight to uint8 tensors (no PIL), or read from the `pixels` of a `decode_to_arrow` split,
    and passed to `transform` (see `create_transform`). `columns` (e.g. `('valence', 'arousal')`) are passed
    through as they are.
    For a `DatasetDict`, `transform` may be one callable or a mapping split -> callable.
    """
    if isinstance(dataset, DatasetDict):
        return DatasetDict({
            split: prepare_dataset(ds, transform[split] if isinstance(transform, Mapping) else transform, columns)
            for split, ds in dataset.items()
        })
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        raise ValueError(f'prepare_dataset: the split has no column {", ".join(missing)} (it has '
                         f'{", ".join(dataset.column_names)})')
    columns = list(columns)
    decode = _DecodeAndTransform(transform, columns)
    if 'pixels' in dataset.column_names:
        return dataset.with_transform(decode, columns=['pixels', 'height', 'width', 'label', *columns])
    dataset = dataset.cast_column('image', Image(decode=False))
    return dataset.with_transform(decode, columns=['image', 'label', *columns])


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
