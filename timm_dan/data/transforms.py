"""The train recipes' per-sample transforms and the eval transform, in torchvision v2 on uint8 tensors.

Images are decoded once to a uint8 C x H x W tensor; resizing and augmentation run on uint8, then
`ToDtype(float32, scale=True)` and `Normalize` (and RandomErasing, which the recipes apply to the
normalised tensor) come last. The recipes' numbers are in `recipes.py`.
"""
from typing import Any, Optional

import torch
from torchvision.transforms import v2

from .recipes import RECIPES, Affine, RotateCrop, get_recipe, input_hw, interpolation_mode

__all__ = ['RECIPES', 'create_transform']


def create_transform(
        data_config: dict[str, Any], recipe: Optional[str] = None, is_training: bool = False) -> v2.Compose:
    """Build the transform for a timm `data_config` (`timm.data.resolve_model_data_config(model)`).

    Eval (any recipe): Resize to `input_size` + normalise; faces are already crops, so `crop_pct` is not used.
    Train: Resize, flip, with the recipe's probability its geometric op, normalise, then its RandomErasing if it
    has one; the numbers are `TRAIN_RECIPES[recipe]` (rafdb: rotation + crop, erasing; affectnet: affine, erasing;
    sfew: affine; synthetic, also for `recipe=None`: flip only).
    Input: a uint8 C x H x W tensor (or PIL image); output: float32 C x H x W.
    """
    spec = get_recipe(recipe)
    size = input_hw(data_config)
    interpolation = interpolation_mode(data_config)
    ops = [v2.ToImage(), v2.Resize(size, interpolation=interpolation, antialias=True)]
    if is_training:
        ops.append(v2.RandomHorizontalFlip(p=spec.flip_p))
        geometric = spec.geometric
        if isinstance(geometric, RotateCrop):
            ops.append(v2.RandomApply([v2.RandomRotation(geometric.degrees, interpolation=interpolation),
                                       v2.RandomCrop(size, padding=geometric.padding_at(size[0]))],
                                      p=spec.geometric_p))
        elif isinstance(geometric, Affine):
            ops.append(v2.RandomApply([geometric.transform(interpolation)], p=spec.geometric_p))
    ops += [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(data_config['mean']), std=list(data_config['std'])),
    ]
    if is_training and spec.erasing is not None:
        erasing = spec.erasing
        ops.append(v2.RandomErasing(p=erasing.p, scale=erasing.scale, ratio=erasing.ratio))
    return v2.Compose(ops)
