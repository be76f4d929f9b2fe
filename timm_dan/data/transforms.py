"""The authors' train/eval transforms, in torchvision v2 on uint8 tensors.

Images are decoded once to a uint8 C x H x W tensor; resizing and augmentation run on uint8, then
`ToDtype(float32, scale=True)` and `Normalize` (and RandomErasing, which the recipes apply to the
normalised tensor) come last.
"""
from typing import Any, Optional

import torch
from torchvision.transforms import v2

__all__ = ['RECIPES', 'create_transform']

RECIPES = ('rafdb', 'affectnet', 'sfew', 'synthetic')
"""Train-transform recipes; `None` means 'synthetic' (resize + flip)."""

_INTERPOLATION = {
    'nearest': v2.InterpolationMode.NEAREST,
    'bilinear': v2.InterpolationMode.BILINEAR,
    'bicubic': v2.InterpolationMode.BICUBIC,
}


def _input_hw(data_config: dict[str, Any]) -> tuple[int, int]:
    _, h, w = data_config['input_size']
    return int(h), int(w)


def create_transform(
        data_config: dict[str, Any], recipe: Optional[str] = None, is_training: bool = False) -> v2.Compose:
    """Build the transform for a timm `data_config` (`timm.data.resolve_model_data_config(model)`).

    Eval (any recipe): Resize to `input_size` + normalise; faces are already crops, so `crop_pct` is not used.
    Train recipes (the DAN authors' code, sizes scaled from their 224 px):
        rafdb      Resize, flip, p=0.2 [RandomRotation(20), RandomCrop(pad 32 at 224)], normalise,
                   RandomErasing(scale=(0.02, 0.25))
        affectnet  Resize, flip, p=0.7 RandomAffine(20, translate 0.2, scale 0.8-1), normalise, RandomErasing()
        sfew       Resize, flip, p=0.5 RandomAffine(as affectnet), normalise
        synthetic  Resize, flip, normalise (also for `recipe=None`)
    Input: a uint8 C x H x W tensor (or PIL image); output: float32 C x H x W.
    """
    recipe = recipe or 'synthetic'
    if recipe not in RECIPES:
        raise ValueError(f'unknown transform recipe {recipe!r}; choose one of {RECIPES}')
    size = _input_hw(data_config)
    interpolation = _INTERPOLATION.get(data_config.get('interpolation', 'bilinear'), v2.InterpolationMode.BILINEAR)
    ops = [v2.ToImage(), v2.Resize(size, interpolation=interpolation, antialias=True)]
    if is_training:
        ops.append(v2.RandomHorizontalFlip())
        affine = v2.RandomAffine(degrees=20, translate=(0.2, 0.2), scale=(0.8, 1.0), interpolation=interpolation)
        if recipe == 'rafdb':
            pad = round(32 * size[0] / 224)
            ops.append(v2.RandomApply([v2.RandomRotation(20, interpolation=interpolation),
                                       v2.RandomCrop(size, padding=pad)], p=0.2))
        elif recipe == 'affectnet':
            ops.append(v2.RandomApply([affine], p=0.7))
        elif recipe == 'sfew':
            ops.append(v2.RandomApply([affine], p=0.5))
    ops += [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(data_config['mean']), std=list(data_config['std'])),
    ]
    if is_training and recipe == 'rafdb':
        ops.append(v2.RandomErasing(scale=(0.02, 0.25)))
    elif is_training and recipe == 'affectnet':
        ops.append(v2.RandomErasing())
    return v2.Compose(ops)
