"""The DAN recipes' transforms applied to whole batches, in the DataLoader's collate function.

Per sample, a worker only decodes the image (uint8, native size; `prepare_dataset(split, v2.Identity())`).
`BatchCollate` then applies the recipe's rotation/crop or affine to the randomly chosen samples only, at their
native size (cheaper than at 224 px; the crop padding scales with the image), resizes the whole batch in one
channels_last uint8 call, flips it with one mask, converts it to normalised float straight into the output
(shared memory in a worker, optionally channels_last) and erases the chosen rectangles in place.
Same augmentations and probabilities as `create_transform`, without its per-sample passes at 224 px.
"""
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch.utils.data import get_worker_info
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .transforms import _INTERPOLATION, RECIPES, _input_hw

__all__ = ['BatchCollate']

# recipe -> (probability of the geometric augmentation, RandomErasing scale); RandomErasing p=0.5, value 0
_RECIPE_PARAMS = {
    'rafdb': (0.2, (0.02, 0.25)),
    'affectnet': (0.7, (0.02, 0.33)),
    'sfew': (0.5, None),
    'synthetic': (0.0, None),
}
_ERASE_RATIO = (0.3, 3.3)
_ERASE_TRIES = 10
_MODES = {v2.InterpolationMode.NEAREST: 'nearest', v2.InterpolationMode.BILINEAR: 'bilinear',
          v2.InterpolationMode.BICUBIC: 'bicubic'}


class BatchCollate:
    """`collate_fn` for decoded uint8 examples: `(pixel_values float B x C x H x W, labels B)`.

    Args:
        data_config: A timm data config (`input_size`, `interpolation`, `mean`, `std`).
        recipe: Train recipe as in `create_transform` ('rafdb', 'affectnet', 'sfew', 'synthetic'/None).
        is_training: Augment (else resize + normalise only).
        channels_last: Return the batch in channels_last memory format (what the train step feeds the model).
    """

    def __init__(self, data_config: Mapping[str, Any], recipe: Optional[str] = None, is_training: bool = False,
                 channels_last: bool = False):
        recipe = recipe or 'synthetic'
        if recipe not in RECIPES:
            raise ValueError(f'unknown transform recipe {recipe!r}; choose one of {RECIPES}')
        self.size = _input_hw(data_config)
        self.interpolation = _INTERPOLATION.get(data_config.get('interpolation', 'bilinear'),
                                                v2.InterpolationMode.BILINEAR)
        mean = torch.tensor(data_config['mean'], dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(data_config['std'], dtype=torch.float32).view(1, -1, 1, 1)
        self.scale, self.shift = 1 / (255 * std), -mean / std  # (x / 255 - mean) / std = x * scale + shift
        self.recipe = recipe
        self.is_training = is_training
        self.channels_last = channels_last
        self.geometric_p, self.erase_scale = _RECIPE_PARAMS[recipe] if is_training else (0.0, None)
        self.affine = v2.RandomAffine(degrees=20, translate=(0.2, 0.2), scale=(0.8, 1.0),
                                      interpolation=self.interpolation)

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.as_tensor([example['label'] for example in batch], dtype=torch.long)
        return self.transform([example['pixel_values'] for example in batch]), labels

    def transform(self, images: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
        """uint8 images (a B x C x H x W batch or a list of C x H x W of any sizes) -> normalised float batch."""
        images = list(images)
        if any(image.dtype != torch.uint8 for image in images):
            raise TypeError('BatchCollate expects decoded uint8 images; prepare the split with v2.Identity()')
        if self.geometric_p:
            for i in (torch.rand(len(images)) < self.geometric_p).nonzero().flatten().tolist():
                images[i] = self._geometric(images[i])
        x = self._resize(images)
        if self.is_training:
            flip = torch.rand(x.shape[0]) < 0.5
            x[flip] = x[flip].flip(-1)
        out = self._output(x.shape)
        out.copy_(x).mul_(self.scale).add_(self.shift)
        if self.erase_scale is not None:
            self._erase(out)
        return out

    def _geometric(self, image: torch.Tensor) -> torch.Tensor:
        """The recipe's rotation/crop or affine, on one image at its native size (sizes relative to 224 px)."""
        if self.recipe != 'rafdb':
            return self.affine(image)
        h, w = image.shape[-2:]
        image = TF.rotate(image, float(torch.empty(()).uniform_(-20, 20)), interpolation=self.interpolation)
        pad = round(32 * h / 224)
        top, left = torch.randint(0, 2 * pad + 1, (2,)).tolist()
        return TF.pad(image, [pad])[..., top:top + h, left:left + w]

    def _resize(self, images: list[torch.Tensor]) -> torch.Tensor:
        """One antialiased bilinear resize of the whole batch (channels_last uint8: the fast kernel)."""
        if len({image.shape for image in images}) > 1:  # mixed sizes: resize each, then stack
            return torch.cat([self._resize_batch(image[None]) for image in images])
        return self._resize_batch(torch.stack(images))

    def _resize_batch(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if tuple(x.shape[-2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode=_MODES[self.interpolation], antialias=True, align_corners=False)

    def _output(self, shape: torch.Size) -> torch.Tensor:
        """An empty float batch; in a DataLoader worker allocated in shared memory (as `default_collate` does)."""
        b, c, h, w = shape
        if get_worker_info() is None:
            out = torch.empty((b, h, w, c) if self.channels_last else (b, c, h, w))
        else:
            proto = torch.empty(0)
            storage = proto._typed_storage()._new_shared(b * c * h * w, device=proto.device)
            out = proto.new(storage).view((b, h, w, c) if self.channels_last else (b, c, h, w))
        return out.permute(0, 3, 1, 2) if self.channels_last else out

    def _erase(self, x: torch.Tensor) -> None:
        """RandomErasing(p=0.5, scale, ratio=(0.3, 3.3), value=0) per sample, the torchvision rules, vectorised."""
        b, _, h, w = x.shape
        area = h * w * torch.empty(b, _ERASE_TRIES).uniform_(*self.erase_scale)
        log_ratio = torch.log(torch.tensor(_ERASE_RATIO))
        ratio = torch.exp(torch.empty(b, _ERASE_TRIES).uniform_(log_ratio[0].item(), log_ratio[1].item()))
        eh = torch.sqrt(area * ratio).round().long()
        ew = torch.sqrt(area / ratio).round().long()
        fits = (eh < h) & (ew < w)
        first = fits.int().argmax(1)  # the first try that fits, as torchvision takes it
        chosen = (torch.rand(b) < 0.5) & fits.any(1)
        rows = torch.arange(b)
        eh, ew = eh[rows, first], ew[rows, first]
        top = (torch.rand(b) * (h - eh + 1)).long()
        left = (torch.rand(b) * (w - ew + 1)).long()
        for i in chosen.nonzero().flatten().tolist():
            x[i, :, top[i]:top[i] + eh[i], left[i]:left[i] + ew[i]] = 0
