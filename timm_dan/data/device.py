"""The device pipeline: a split's decoded images kept on the training device, each batch gathered, augmented and
normalised there, in batches.

`DeviceSplit.from_dataset` loads a split decoded by `decode_to_arrow` once, as one uint8 N x H x W x 3 tensor: on the
device when it fits (resident), else in host memory, from which each batch is gathered into pinned memory and copied
to the device on a side stream, overlapping the work already queued (under Accelerate, which fetches a batch ahead,
the step before; streaming: the same batches, only slower to fetch).
`DeviceBatches` is the `Dataset` a DataLoader (and Accelerate's sharding) draws from: for each batch of drawn rows it
runs the recipe's augmentations on the whole batch on the device, in `BatchCollate`'s order and with the same
numbers (`recipes.py`) and functions where the operation is the same (the geometric op at the stored size on the
chosen samples, one resize, flips, `DeviceNormalize`, RandomErasing) and returns `(pixel_values, labels)` as the
model takes them (float32, channels_last), with the B x 2 valence/arousal targets after them for a split loaded with
`valence_arousal=True`. On a CPU the same code runs on CPU tensors.

Random draws come from a counter-based hash of (seed, epoch, draw, stream), not from an RNG state: the same numbers
on every device and in every process, and a resumed run sees the same batches. The draw is the sample's position in
the epoch's order (`EnumeratedSampler`), so that a sample drawn twice in an epoch (class-balanced sampling with
replacement) is augmented twice differently; without it, the row index takes its place.

    split = DeviceSplit.from_dataset(decode_to_arrow(ds['train']), 'cuda')
    batches = DeviceBatches(split, data_config, 'rafdb', is_training=True, seed=0)
    loader = DataLoader(batches, batch_size=256, shuffle=True, drop_last=True, collate_fn=lambda batch: batch)
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for images, labels in loader: ...

In training, `timm_dan.training.data.create_device_loader` adds the seeded samplers (the same order in every process
and after a resume) and numbers the draws.
"""
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np
import psutil
import torch
import torch.nn.functional as F
from datasets import Dataset
from torch.utils.data import Sampler
from torchvision.transforms.v2 import InterpolationMode

from .batched import ERASE_UNIFORMS, DeviceNormalize, FERBatch, erase_rectangles, resize_batch
from .loader import pixels_to_tensor
from .recipes import RotateCrop, get_recipe, input_hw, interpolation_mode

__all__ = ['DeviceSplit', 'DeviceBatches', 'EnumeratedSampler', 'counter_uniforms', 'inverse_affine', 'warp_affine',
           'storage_size', 'split_nbytes', 'memory_budget', 'format_bytes', 'MEMORY_FRACTION']

MEMORY_FRACTION = 0.5
"""Share of the device's free memory a split may take to stay resident (the rest is the model's and its batches')."""

_CHUNK = 4096  # rows read from Arrow per step when loading a split
_STAGING = 3  # pinned buffers the streaming gather cycles through: a batch's copy is long done when its buffer returns
# the uniform draws per sample (`counter_uniforms` streams): geometric op applied?, angle, two offsets, scale, flip?,
# then RandomErasing's
_GEOMETRIC, _ANGLE, _OFFSET_0, _OFFSET_1, _SCALE, _FLIP, _ERASE = range(7)
_STREAMS = _ERASE + ERASE_UNIFORMS
_MASK32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """An avalanching 32-bit integer hash (degski's constants) on int64 tensors holding values below 2**32: every
    product stays below 2**59, so it is exact on any device."""
    x = ((x >> 16) ^ x) * 0x45D9F3B & _MASK32
    x = ((x >> 16) ^ x) * 0x45D9F3B & _MASK32
    return (x >> 16) ^ x


def _mix_int(value: int) -> int:
    """`_mix32` of a Python integer of any size (folded to 32 bits first)."""
    folded = (value ^ (value >> 32) ^ (value >> 64)) & _MASK32
    return int(_mix32(torch.tensor(folded, dtype=torch.int64)))


def counter_uniforms(seed: int, epoch: int, draws: torch.Tensor, streams: int) -> torch.Tensor:
    """B x `streams` float32 uniforms in [0, 1), a pure function of (seed, epoch, each draw, the stream): no RNG
    state, the same values on any device, independent across draws and streams (24-bit resolution)."""
    key = _mix_int(_mix_int(seed) ^ (epoch & _MASK32))
    per_draw = _mix32((draws & _MASK32) ^ key)
    per_stream = _mix32(torch.arange(streams, device=draws.device) * 0x9E3779B9 & _MASK32)
    bits = _mix32(per_draw[:, None] ^ per_stream[None, :])
    return (bits >> 8).to(torch.float32) * 2.0 ** -24


def inverse_affine(angle: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per sample, torchvision's inverse affine matrix (`_get_inverse_affine_matrix`, no shear, about the centre):
    output pixel -> input pixel, in pixel coordinates centred on the image; B x 2 x 3, float64."""
    rotation = torch.deg2rad(angle.double())
    cos, sin = rotation.cos() / scale, rotation.sin() / scale
    tx, ty = tx.double(), ty.double()
    return torch.stack([torch.stack([cos, sin, -cos * tx - sin * ty], 1),
                        torch.stack([-sin, cos, sin * tx - cos * ty], 1)], 1)


_BASE_GRIDS: dict[tuple, torch.Tensor] = {}


def _base_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """torchvision's `_affine_grid` base: (x, y, 1) of every pixel centre, centred on the image; 1 x HW x 3."""
    key = (height, width, device)
    if key not in _BASE_GRIDS:
        grid = torch.empty(1, height, width, 3, device=device)
        grid[..., 0].copy_(torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, width, device=device))
        grid[..., 1].copy_(torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, height, device=device)[:, None])
        grid[..., 2].fill_(1)
        _BASE_GRIDS[key] = grid.view(1, height * width, 3)
    return _BASE_GRIDS[key]


def warp_affine(images: torch.Tensor, matrices: torch.Tensor,
                interpolation: InterpolationMode = InterpolationMode.BILINEAR,
                shift: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Each uint8 image of a B x C x H x W batch through its own inverse affine matrix (`inverse_affine`), as
    torchvision's `affine`/`rotate` warp one image: the same grid, `grid_sample` with zero padding, its fill mask
    (fill 0), rounded back to uint8.

    `shift` (B x 2: dx, dy in whole pixels) is RandomCrop's: output pixel p shows the warped image's pixel
    p + shift, and zeros (the crop's padding) where that falls outside it.
    """
    b, c, h, w = images.shape
    theta = matrices.to(torch.float32).transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], device=images.device)
    if shift is not None:  # the crop's offset, folded into the warp: a translation applied before it
        theta = torch.cat([theta[:, :2], theta[:, 2:] + torch.bmm(shift.to(theta.dtype)[:, None], theta[:, :2])], 1)
    grid = torch.bmm(_base_grid(h, w, images.device).expand(b, -1, -1), theta).view(b, h, w, 2)
    mode = interpolation.value if interpolation.value in ('nearest', 'bilinear', 'bicubic') else 'bilinear'
    ones = torch.ones((b, 1, h, w), dtype=torch.float32, device=images.device)
    out = F.grid_sample(torch.cat([images.float(), ones], 1), grid, mode=mode, padding_mode='zeros',
                        align_corners=False)
    out, mask = out[:, :c], out[:, c:]
    out = torch.where(mask < 0.5, 0.0, out) if mode == 'nearest' else out * mask
    if shift is not None:
        rows = torch.arange(h, device=images.device)[None] + shift[:, 1:]
        cols = torch.arange(w, device=images.device)[None] + shift[:, :1]
        inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
        out = out * inside
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _apply_to(x: torch.Tensor, chosen: torch.Tensor, fn: Callable[[torch.Tensor, Any], torch.Tensor],
              sync_free: bool) -> torch.Tensor:
    """`fn(images, rows)` on the chosen samples of a batch. On a CPU only those are computed, one at a time and in
    place (choosing them on the host costs nothing; gathering and scattering channels_last rows would cost more
    than the op); on an accelerator every sample is and `torch.where` keeps the chosen ones, so that the host never
    waits for the device (`rows` is then `slice(None)`)."""
    if sync_free:
        return torch.where(chosen[:, None, None, None], fn(x, slice(None)), x)
    for i in chosen.nonzero().flatten().tolist():
        x[i] = fn(x[i:i + 1], [i])[0]
    return x


def storage_size(dataset: Dataset, default: tuple[int, int]) -> tuple[int, int]:
    """The (height, width) the device keeps a decoded split's images at: their own when they all share one (no
    resampling), else `default` (the model's input size), to which each is resized once, when loaded."""
    sizes = dataset.select_columns(['height', 'width']).with_format('numpy')[:]
    heights, widths = np.unique(sizes['height']), np.unique(sizes['width'])
    if len(heights) == 1 and len(widths) == 1:
        return int(heights[0]), int(widths[0])
    return tuple(default)


def split_nbytes(dataset: Dataset, size: tuple[int, int], valence_arousal: bool = False) -> int:
    """Bytes a split takes on the device at `size`: its uint8 pixels and int64 labels (and float32 valence/arousal
    targets)."""
    return dataset.num_rows * (size[0] * size[1] * 3 + 8 + (8 if valence_arousal else 0))


def memory_budget(device: Union[str, torch.device], fraction: float = MEMORY_FRACTION) -> int:
    """Bytes the data may take on `device`: `fraction` of its free memory (of the host's available memory on a
    CPU)."""
    device = torch.device(device)
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
    else:
        free = psutil.virtual_memory().available
    return int(fraction * free)


def format_bytes(nbytes: int) -> str:
    """'1.23 GiB', or '12.3 MiB' below a GiB."""
    return f'{nbytes / 2 ** 30:.2f} GiB' if nbytes >= 2 ** 30 else f'{nbytes / 2 ** 20:.1f} MiB'


def _contiguous_pixels(column: Any, count: int, size: tuple[int, int]) -> np.ndarray:
    """A `pixels` column (a pyarrow large_binary ChunkedArray) whose images all are `size`, as one count x H x W x 3
    uint8 array (no per-image copy)."""
    array = column.combine_chunks()
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64, count=count + 1, offset=8 * array.offset)
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return data.reshape(count, size[0], size[1], 3)


def _copy_into(rows: torch.Tensor, array: np.ndarray) -> None:
    """Copy a (read-only) numpy array into rows of a tensor on any device."""
    if rows.device.type == 'cpu':
        rows.numpy()[...] = array
    else:
        rows.copy_(torch.from_numpy(np.array(array)))  # a writable host copy, then to the device


def _read_pixels(dataset: Dataset, size: tuple[int, int], out: torch.Tensor,
                 interpolation: InterpolationMode) -> None:
    """Fill `out` (N x H x W x 3 uint8, on any device) with the split's decoded images at `size`, in chunks."""
    row = 0
    for table in dataset.select_columns(['pixels', 'height', 'width']).with_format('arrow').iter(batch_size=_CHUNK):
        n = table.num_rows
        heights, widths = table.column('height').to_numpy(), table.column('width').to_numpy()
        if (heights == size[0]).all() and (widths == size[1]).all():
            _copy_into(out[row:row + n], _contiguous_pixels(table.column('pixels'), n, size))
        else:  # mixed sizes: each image resized once, here, as the batched path resizes it every epoch
            for i, (pixels, h, w) in enumerate(zip(table.column('pixels').to_pylist(), heights, widths,
                                                   strict=True)):
                image = pixels_to_tensor(pixels, int(h), int(w))[None]
                out[row + i].copy_(resize_batch(image, size, interpolation)[0].permute(1, 2, 0))
        row += n


class DeviceSplit:
    """A split's decoded images as one uint8 N x H x W x 3 tensor and its labels (and optionally its N x 2 float32
    valence/arousal targets, NaN where an image has none), for `DeviceBatches`.

    Resident: both live on `device` and a batch is one `index_select` there. Streaming: they stay in host memory;
    each batch is gathered into one of a few pinned buffers and copied to the device on a side stream, so that the
    copy overlaps the work already queued.
    """

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor, device: Union[str, torch.device],
                 resident: bool, name: str = 'split', valence_arousal: Optional[torch.Tensor] = None):
        if pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(f'{name}: expected N x H x W x 3 uint8 pixels, got {tuple(pixels.shape)} {pixels.dtype}')
        if valence_arousal is not None and tuple(valence_arousal.shape) != (pixels.shape[0], 2):
            raise ValueError(f'{name}: expected {pixels.shape[0]} x 2 valence/arousal targets, got '
                             f'{tuple(valence_arousal.shape)}')
        self.device = torch.device(device)
        self.resident = resident
        self.name = name
        self.pixels, self.labels, self.valence_arousal = pixels, labels, valence_arousal
        self._staging: list[tuple[torch.Tensor, Optional[torch.cuda.Event]]] = []
        self._turn = 0
        self._copy_stream = torch.cuda.Stream(self.device) if self.device.type == 'cuda' and not resident else None

    @classmethod
    def from_dataset(cls, dataset: Dataset, device: Union[str, torch.device], size: Optional[tuple[int, int]] = None,
                     resident: Optional[bool] = None, memory_limit: Optional[int] = None, name: str = 'split',
                     interpolation: InterpolationMode = InterpolationMode.BILINEAR,
                     valence_arousal: bool = False) -> 'DeviceSplit':
        """Load a `decode_to_arrow` split (columns `pixels`, `height`, `width`, `label`) once.

        Args:
            dataset: The decoded split.
            device: Where the batches are needed.
            size: (height, width) to keep the images at; None: their common size (an error if they differ; see
                `storage_size`). Images of another size are resized once, with `interpolation` (antialiased).
            resident: On the device (True) or streamed from host memory (False); None: resident when the split fits
                in `memory_limit` bytes (default: `memory_budget(device)`), else streaming, with a warning.
            name: What the messages call the split.
            valence_arousal: Also load the `valence` and `arousal` columns (None, AffectNet's "not annotated",
                becomes NaN), returned by `gather` and `DeviceBatches` after the labels.
        """
        if 'pixels' not in dataset.column_names:
            raise ValueError(f'{name}: the device pipeline reads decoded pixels; pass the split through '
                             f'timm_dan.data.decode_to_arrow first (it has {dataset.column_names})')
        missing = [c for c in ('valence', 'arousal') if valence_arousal and c not in dataset.column_names]
        if missing:
            raise ValueError(f'{name}: valence_arousal=True needs the columns valence and arousal (it has '
                             f'{dataset.column_names})')
        device = torch.device(device)
        if size is None:
            size = storage_size(dataset, (0, 0))
            if size == (0, 0):
                raise ValueError(f'{name}: its images differ in size; pass size=(height, width) to keep them at')
        need = split_nbytes(dataset, size, valence_arousal)
        if resident is None:
            budget = memory_budget(device) if memory_limit is None else memory_limit
            resident = need <= budget
            if not resident:
                warnings.warn(f'{name}: the decoded images ({dataset.num_rows} at {size[0]}x{size[1]}, '
                              f'{format_bytes(need)}) do not fit in the {format_bytes(budget)} the data may take on '
                              f'{device}; streaming each batch from pinned host memory instead', stacklevel=2)
        if not resident and need > psutil.virtual_memory().available:
            raise MemoryError(f'{name}: the decoded images need {format_bytes(need)} of host memory to stream from, '
                              f'{format_bytes(psutil.virtual_memory().available)} are available; use the DataLoader '
                              f'pipeline (device_data off)')
        home = device if resident else torch.device('cpu')
        pixels = torch.empty((dataset.num_rows, *size, 3), dtype=torch.uint8, device=home)
        _read_pixels(dataset, size, pixels, interpolation)
        labels = torch.tensor(dataset.select_columns(['label']).with_format('numpy')[:]['label'],
                              dtype=torch.int64, device=home)
        va = None
        if valence_arousal:  # as `BatchCollate` makes them: NaN where a value is None (Arrow's nulls)
            table = dataset.select_columns(['valence', 'arousal']).with_format('arrow')[:]
            va = torch.from_numpy(np.stack([table.column(c).to_numpy().astype(np.float32)
                                            for c in ('valence', 'arousal')], 1)).to(home)
        return cls(pixels, labels, device, resident, name, va)

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.pixels.shape[1:3])

    def gather(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """The B x H x W x 3 uint8 images, the labels and the valence/arousal targets (None for a split without
        them) of rows `indices`, on the device."""
        if self.resident:
            indices = indices.to(self.device, non_blocking=True)
            return self.pixels.index_select(0, indices), self.labels.index_select(0, indices), (
                None if self.valence_arousal is None else self.valence_arousal.index_select(0, indices))
        indices = indices.cpu()
        staging = self._staging_buffer(indices.numel())
        torch.index_select(self.pixels, 0, indices, out=staging)
        targets = [self.labels.index_select(0, indices)]
        if self.valence_arousal is not None:
            targets.append(self.valence_arousal.index_select(0, indices))
        if self._copy_stream is None:  # a CPU "device": the copy is the gather's
            return staging.clone(), targets[0], targets[1] if len(targets) > 1 else None
        current = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._copy_stream):
            pixels = staging.to(self.device, non_blocking=True)
            targets = [t.pin_memory().to(self.device, non_blocking=True) for t in targets]
            self._staging[self._turn][1].record(self._copy_stream)
        current.wait_stream(self._copy_stream)
        for tensor in (pixels, *targets):  # allocated on the copy stream, used on the current one
            tensor.record_stream(current)
        return pixels, targets[0], targets[1] if len(targets) > 1 else None

    def _staging_buffer(self, count: int) -> torch.Tensor:
        """The next of `_STAGING` pinned buffers (grown to `count` images), once the copy out of it has finished."""
        self._turn = (self._turn + 1) % _STAGING
        if len(self._staging) < _STAGING:
            self._staging = [(torch.empty(0, dtype=torch.uint8), None)] * _STAGING
        buffer, done = self._staging[self._turn]
        if done is not None:
            done.synchronize()
        if buffer.shape[0] < count:
            pin = self._copy_stream is not None
            buffer = torch.empty((count, *self.size, 3), dtype=torch.uint8, pin_memory=pin)
            self._staging[self._turn] = (buffer, torch.cuda.Event() if pin else None)
        return buffer[:count]


class EnumeratedSampler(Sampler[tuple[int, int]]):
    """(draw, index) for each index `sampler` yields, the draw counting from 0 each epoch: `DeviceBatches` seeds
    each sample's augmentation from its draw, so that the same row drawn twice is augmented twice differently.
    `set_epoch` reaches the wrapped sampler."""

    def __init__(self, sampler: Sampler[int]):
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return enumerate(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)


class DeviceBatches(torch.utils.data.Dataset):
    """A `DeviceSplit` as a map-style dataset whose `__getitems__` returns whole batches, ready for the model:
    `(pixel_values, labels)`, float32 normalised B x C x H x W in channels_last memory, on the split's device, and
    `(pixel_values, labels, valence_arousal)` for a split with valence/arousal targets (flips and crops leave them
    as they are).

    Training: the recipe's geometric op (with its probability) on the stored images, resize to `input_size`, the
    flip, normalisation and RandomErasing; else resize and normalise. Give the DataLoader `num_workers=0` (the work
    is on the device) and a `collate_fn` that returns the batch as it is; batches are seeded by (seed, epoch,
    draw) (see `EnumeratedSampler`), and `set_epoch` picks the epoch.

    Args:
        split: The loaded split.
        data_config: A timm data config (`input_size`, `interpolation`, `mean`, `std`).
        recipe: Train recipe (`recipes.TRAIN_RECIPES` name, None: 'synthetic').
        is_training: Augment.
        seed: The run's seed.
    """

    def __init__(self, split: DeviceSplit, data_config: Mapping[str, Any], recipe: Optional[str] = None,
                 is_training: bool = False, seed: int = 0):
        self.split = split
        self.recipe = get_recipe(recipe)
        self.size = input_hw(data_config)
        self.interpolation = interpolation_mode(data_config)
        self.is_training = is_training
        self.seed = seed
        self.epoch = 0
        self.geometric_p = self.recipe.geometric_p if is_training and self.recipe.geometric is not None else 0.0
        self.erasing = self.recipe.erasing if is_training else None
        self.normalize = DeviceNormalize(data_config)
        self.sync_free = split.device.type != 'cpu'
        """Choose samples with masks rather than on the host (the default off a CPU: no host-device sync)."""

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.__getitems__([index])

    @torch.no_grad()
    def __getitems__(self, draws: Sequence[Union[int, tuple[int, int]]]) -> tuple[torch.Tensor, ...]:
        draws = torch.as_tensor(draws, dtype=torch.int64)
        positions, indices = draws.unbind(1) if draws.ndim == 2 else (draws, draws)
        pixels, labels, va = self.split.gather(indices)
        batch = self._augmented(pixels, labels, positions)
        return batch if va is None else (*batch, va)

    def _augmented(self, pixels: torch.Tensor, labels: torch.Tensor,
                   positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images of one batch augmented (in training) and normalised, with their labels."""
        x = pixels.permute(0, 3, 1, 2)  # B x C x H x W over the NHWC memory: channels_last
        if not self.is_training:
            x = resize_batch(x, self.size, self.interpolation, uint8_kernel=not self.sync_free)
            return self.normalize(FERBatch(x, labels))
        uniforms = counter_uniforms(self.seed, self.epoch, positions.to(x.device), _STREAMS)
        if self.geometric_p:
            x = _apply_to(x, uniforms[:, _GEOMETRIC] < self.geometric_p, self._geometric(x, uniforms),
                          self.sync_free)
        x = resize_batch(x, self.size, self.interpolation, uint8_kernel=not self.sync_free)
        x = _apply_to(x, uniforms[:, _FLIP] < self.recipe.flip_p, lambda images, _: images.flip(-1), self.sync_free)
        if self.erasing is None:
            return self.normalize(FERBatch(x, labels))
        chosen, top, left, eh, ew = erase_rectangles(uniforms[:, _ERASE:], *self.size, self.erasing)
        if not self.sync_free:  # the rectangles as host ints, zeroed by DeviceNormalize as the batched path's
            i = chosen.nonzero().flatten()
            rectangles = tuple(map(tuple, torch.stack([i, top[i], left[i], eh[i], ew[i]], 1).tolist()))
            return self.normalize(FERBatch(x, labels, rectangles))
        images, labels = self.normalize(FERBatch(x, labels))
        rows = torch.arange(self.size[0], device=x.device)[None]
        cols = torch.arange(self.size[1], device=x.device)[None]
        erased = (chosen[:, None, None] & ((rows >= top[:, None]) & (rows < (top + eh)[:, None]))[:, :, None]
                  & ((cols >= left[:, None]) & (cols < (left + ew)[:, None]))[:, None, :])
        return images.masked_fill_(erased[:, None], 0), labels

    def _geometric(self, x: torch.Tensor, uniforms: torch.Tensor) -> Callable[[torch.Tensor, Any], torch.Tensor]:
        """The warp of the recipe's rotation + crop or affine, with each sample's parameters drawn as torchvision
        draws them (`RandomRotation` + `RandomCrop`, `RandomAffine`), at the stored size."""
        geometric = self.recipe.geometric
        h, w = x.shape[-2:]
        angle = (2 * uniforms[:, _ANGLE].double() - 1) * geometric.degrees
        zero = torch.zeros_like(angle)
        if isinstance(geometric, RotateCrop):  # rotate (torchvision's rotate turns by -angle), then crop at offsets
            pad = geometric.padding_at(h)
            top = (uniforms[:, _OFFSET_0] * (2 * pad + 1)).long()
            left = (uniforms[:, _OFFSET_1] * (2 * pad + 1)).long()
            matrices = inverse_affine(-angle, zero, zero, torch.ones_like(angle))
            shift = torch.stack([left - pad, top - pad], 1)
        else:
            max_dx, max_dy = geometric.translate[0] * w, geometric.translate[1] * h
            tx = ((2 * uniforms[:, _OFFSET_0].double() - 1) * max_dx).round()
            ty = ((2 * uniforms[:, _OFFSET_1].double() - 1) * max_dy).round()
            low, high = geometric.scale
            matrices = inverse_affine(angle, tx, ty, low + (high - low) * uniforms[:, _SCALE].double())
            shift = None
        interpolation = self.interpolation

        def warp(images: torch.Tensor, rows: Any) -> torch.Tensor:
            return warp_affine(images, matrices[rows], interpolation, None if shift is None else shift[rows])
        return warp
