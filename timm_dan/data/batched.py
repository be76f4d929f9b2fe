"""The DAN recipes' transforms on whole batches: uint8 in the DataLoader's workers, float on the consumer's device.

Per sample, a worker only decodes the image (uint8, native size; `prepare_dataset(split, v2.Identity())`).
`BatchCollate` then applies the recipe's rotation/crop or affine to the randomly chosen samples only, at their
native size (cheaper than at 224 px; the crop padding scales with the image), resizes the whole batch in one
channels_last uint8 call, flips the chosen samples and draws the RandomErasing rectangles. The batch crosses
to the main process as uint8 (a quarter of float32's bytes through shared memory and to the GPU);
`DeviceNormalize` (the consumer's half, as timm's `PrefetchLoader`) converts it to normalised float on the
device, in channels_last, and zeroes the erased rectangles there.
Same augmentations and probabilities as `create_transform`, without its per-sample passes at 224 px.

    collate, normalize = BatchCollate(data_config, 'rafdb', is_training=True), DeviceNormalize(data_config, device)
    loader = DataLoader(prepare_dataset(split, v2.Identity()), batch_size=64, collate_fn=collate, pin_memory=True)
    for images, labels in map(normalize, loader): ...
"""
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .recipes import Affine, Erasing, Recipe, RotateCrop, get_recipe, input_hw, interpolation_mode

__all__ = ['BatchCollate', 'DeviceNormalize', 'FERBatch', 'resize_batch', 'erase_rectangles', 'ERASE_UNIFORMS']

_ERASE_TRIES = 10  # torchvision's RandomErasing tries this many rectangles for one that fits

Rectangle = tuple[int, int, int, int, int]  # sample, top, left, height, width


class FERBatch(NamedTuple):
    """A batch as `BatchCollate` hands it over: uint8 pixels (B x C x H x W, channels_last memory), labels, and
    the RandomErasing rectangles that `DeviceNormalize` zeroes after normalising (plain ints: they stay on the
    host, so applying them never waits for the device); B x 2 float valence/arousal targets (NaN where an image
    has none) when the examples carry `valence` and `arousal`."""
    pixel_values: torch.Tensor
    labels: torch.Tensor
    erase: tuple[Rectangle, ...] = ()
    valence_arousal: Optional[torch.Tensor] = None


class BatchCollate:
    """`collate_fn` for decoded uint8 examples -> `FERBatch` (uint8 pixels at `input_size`, labels, erasures).

    Args:
        data_config: A timm data config (`input_size`, `interpolation`).
        recipe: Train recipe as in `create_transform` ('rafdb', 'affectnet', 'sfew', 'synthetic'/None).
        is_training: Augment (else resize only).
    """

    def __init__(self, data_config: Mapping[str, Any], recipe: Optional[str] = None, is_training: bool = False):
        self.recipe: Recipe = get_recipe(recipe)
        self.size = input_hw(data_config)
        self.interpolation = interpolation_mode(data_config)
        self.is_training = is_training
        self.geometric_p = self.recipe.geometric_p if is_training and self.recipe.geometric is not None else 0.0
        self.erasing = self.recipe.erasing if is_training else None
        if isinstance(self.recipe.geometric, Affine):
            self.affine = self.recipe.geometric.transform(self.interpolation)

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> FERBatch:
        labels = torch.as_tensor([example['label'] for example in batch], dtype=torch.long)
        pixel_values, erase = self.transform([example['pixel_values'] for example in batch])
        va = None
        if batch and 'valence' in batch[0] and 'arousal' in batch[0]:  # flips and crops leave them unchanged
            va = torch.tensor([[math.nan if e[k] is None else e[k] for k in ('valence', 'arousal')] for e in batch],
                              dtype=torch.float32)
        return FERBatch(pixel_values, labels, erase, va)

    def transform(self, images: Union[torch.Tensor, Sequence[torch.Tensor]]
                  ) -> tuple[torch.Tensor, tuple[Rectangle, ...]]:
        """uint8 images (a B x C x H x W batch or a list of C x H x W of any sizes) -> the augmented uint8 batch
        (channels_last memory) and the rectangles to erase after normalising."""
        images = list(images)
        if any(image.dtype != torch.uint8 for image in images):
            raise TypeError('BatchCollate expects decoded uint8 images; prepare the split with v2.Identity()')
        if self.geometric_p:
            for i in (torch.rand(len(images)) < self.geometric_p).nonzero().flatten().tolist():
                images[i] = self._geometric(images[i])
        x = self._resize(images)
        if self.is_training:
            for i in (torch.rand(x.shape[0]) < self.recipe.flip_p).nonzero().flatten().tolist():
                x[i] = x[i].flip(-1)
        return x, self._erase_rectangles(x.shape) if self.erasing is not None else ()

    def _geometric(self, image: torch.Tensor) -> torch.Tensor:
        """The recipe's rotation/crop or affine, on one image at its native size (sizes relative to 224 px)."""
        geometric = self.recipe.geometric
        if not isinstance(geometric, RotateCrop):
            return self.affine(image)
        h, w = image.shape[-2:]
        angle = float(torch.empty(()).uniform_(-geometric.degrees, geometric.degrees))
        image = TF.rotate(image, angle, interpolation=self.interpolation)
        pad = geometric.padding_at(h)
        top, left = torch.randint(0, 2 * pad + 1, (2,)).tolist()
        return TF.pad(image, [pad])[..., top:top + h, left:left + w]

    def _resize(self, images: list[torch.Tensor]) -> torch.Tensor:
        """One antialiased bilinear resize of the whole batch (channels_last uint8: the fast kernel)."""
        if len({image.shape for image in images}) > 1:  # mixed sizes: resize each, then stack
            return torch.cat([self._resize_batch(image[None]) for image in images])
        return self._resize_batch(torch.stack(images))

    def _resize_batch(self, x: torch.Tensor) -> torch.Tensor:
        return resize_batch(x, self.size, self.interpolation)

    def _erase_rectangles(self, shape: torch.Size) -> tuple[Rectangle, ...]:
        """The recipe's RandomErasing(p, scale, ratio, value=0) per sample, the torchvision rules, vectorised."""
        b, _, h, w = shape
        uniforms = torch.rand(b, ERASE_UNIFORMS)
        chosen, top, left, eh, ew = erase_rectangles(uniforms, h, w, self.erasing)
        i = chosen.nonzero().flatten()
        return tuple(map(tuple, torch.stack([i, top[i], left[i], eh[i], ew[i]], 1).tolist()))


def resize_batch(x: torch.Tensor, size: tuple[int, int], interpolation: InterpolationMode,
                 uint8_kernel: Optional[bool] = None) -> torch.Tensor:
    """One antialiased resize of a uint8 B x C x H x W batch to `size` (channels_last uint8 out).

    On the CPU torch's uint8 channels_last kernel (the fast one); elsewhere (`uint8_kernel=False`: CUDA has none)
    in float32, rounded back to uint8.
    """
    x = x.contiguous(memory_format=torch.channels_last)
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    options = dict(size=tuple(size), mode=interpolation.value, antialias=True, align_corners=False)
    if uint8_kernel is None:
        uint8_kernel = x.device.type == 'cpu'
    if uint8_kernel:
        return F.interpolate(x, **options)
    return F.interpolate(x.float(), **options).round_().clamp_(0, 255).to(torch.uint8)


ERASE_UNIFORMS = 2 * _ERASE_TRIES + 3
"""Uniform draws per sample that `erase_rectangles` takes."""


def erase_rectangles(uniforms: torch.Tensor, height: int, width: int, erasing: Erasing
                     ) -> tuple[torch.Tensor, ...]:
    """torchvision's RandomErasing(p, scale, ratio) rules for a batch, from B x `ERASE_UNIFORMS` uniforms in [0, 1)
    (wherever they were drawn): per sample whether it is erased, and the rectangle's top, left, height and width.

    Each of up to 10 tries draws an area fraction in `scale` and a log-uniform aspect ratio in `ratio`; the first
    that fits inside the image is taken, at a uniformly drawn position; no fit, no erasing.
    """
    area_u, ratio_u = uniforms[:, :_ERASE_TRIES], uniforms[:, _ERASE_TRIES:2 * _ERASE_TRIES]
    apply_u, top_u, left_u = uniforms[:, 2 * _ERASE_TRIES:].unbind(1)
    low, high = erasing.scale
    area = height * width * (low + (high - low) * area_u)
    log_low, log_high = math.log(erasing.ratio[0]), math.log(erasing.ratio[1])
    ratio = torch.exp(log_low + (log_high - log_low) * ratio_u)
    eh = torch.sqrt(area * ratio).round().long()
    ew = torch.sqrt(area / ratio).round().long()
    fits = (eh < height) & (ew < width)
    first = fits.int().argmax(1, keepdim=True)  # the first try that fits, as torchvision takes it
    chosen = (apply_u < erasing.p) & fits.any(1)
    eh, ew = eh.gather(1, first)[:, 0], ew.gather(1, first)[:, 0]
    top = (top_u * (height - eh + 1)).long()
    left = (left_u * (width - ew + 1)).long()
    return chosen, top, left, eh, ew


class DeviceNormalize:
    """The consumer's half of the batched pipeline: `FERBatch` -> `(pixel_values, labels)` as the model takes them.

    Computes float32 `(x / 255 - mean) / std` over the channels_last memory (the layout the train step feeds the
    model; `.contiguous()` gives NCHW) and zeroes the RandomErasing rectangles, on the batch's device
    (or on `device`, moved there without blocking from pinned memory). Use it as `map(normalize, loader)`.

    Args:
        data_config: A timm data config (`mean`, `std`).
        device: Move the batch here first (None: where it is; an Accelerate-prepared loader has moved it).
    """

    def __init__(self, data_config: Mapping[str, Any], device: Optional[Union[str, torch.device]] = None):
        std = torch.tensor(data_config['std'], dtype=torch.float32)
        self.scale = 1 / (255 * std)  # (x / 255 - mean) / std = x * scale + shift
        self.shift = -torch.tensor(data_config['mean'], dtype=torch.float32) / std
        self.device = torch.device(device) if device is not None else None
        self._tiled: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, batch: FERBatch) -> tuple[torch.Tensor, torch.Tensor]:
        pixel_values, labels, erase = batch[:3]
        if self.device is not None:
            pixel_values = pixel_values.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
        b, c, h, w = pixel_values.shape
        device = pixel_values.device
        # the NHWC memory as B rows of H*W*C values, scale and shift tiled along them: long vectorised inner loops
        rows = pixel_values.permute(0, 2, 3, 1).reshape(b, -1)
        scale, shift = self._tiled_constants(device, c, h * w)
        nhwc = torch.empty((b, h, w, c), dtype=torch.float32, device=device)
        if device.type == 'cpu':
            # numpy's ufuncs run on this thread alone; torch's would wake an OpenMP team for every batch and leave
            # it spinning on the cores that the DataLoader's workers need
            out = nhwc.numpy()
            flat = out.reshape(b, -1)
            np.multiply(rows.numpy(), scale.numpy(), out=flat)
            np.add(flat, shift.numpy(), out=flat)
        else:
            out = nhwc
            torch.mul(rows, scale, out=out.view(b, -1)).add_(shift)
        for i, top, left, eh, ew in erase:
            out[i, top:top + eh, left:left + ew] = 0
        return nhwc.permute(0, 3, 1, 2), labels

    def _tiled_constants(self, device: torch.device, channels: int, pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (device, channels, pixels)
        if key not in self._tiled:
            if channels != self.scale.numel():
                raise ValueError(f'the batch has {channels} channels, the data config\'s mean and std '
                                 f'{self.scale.numel()}')
            self._tiled[key] = (self.scale.repeat(pixels).to(device), self.shift.repeat(pixels).to(device))
        return self._tiled[key]
