"""The train recipes' augmentations, as one table of numbers (the DAN authors' code; sizes at 224 px).

Both the per-sample transforms (`create_transform`) and the batched ones (`BatchCollate`) read their
numbers here. Every recipe: Resize, horizontal flip, with probability `geometric_p` the geometric op
(`RotateCrop` or `Affine`), normalise, then `erasing` (torchvision RandomErasing on the normalised tensor).

    >>> get_recipe('rafdb').geometric
    RotateCrop(degrees=20.0, padding=32)
"""
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

from torchvision.transforms import v2

__all__ = ['RECIPES', 'TRAIN_RECIPES', 'Recipe', 'RotateCrop', 'Affine', 'Erasing', 'get_recipe', 'INTERPOLATION',
           'interpolation_mode', 'input_hw']


@dataclass(frozen=True)
class RotateCrop:
    """RandomRotation(degrees), then RandomCrop back to the image size from a zero padding of `padding` px at 224."""
    degrees: float = 20.0
    padding: int = 32

    def padding_at(self, height: int) -> int:
        """The crop padding for an image `height` px high (scaled from 224 px)."""
        return round(self.padding * height / 224)


@dataclass(frozen=True)
class Affine:
    """RandomAffine(degrees, translate, scale); no shear."""
    degrees: float = 20.0
    translate: tuple[float, float] = (0.2, 0.2)
    scale: tuple[float, float] = (0.8, 1.0)

    def transform(self, interpolation: v2.InterpolationMode) -> v2.RandomAffine:
        return v2.RandomAffine(degrees=self.degrees, translate=self.translate, scale=self.scale,
                               interpolation=interpolation)


@dataclass(frozen=True)
class Erasing:
    """RandomErasing(p, scale, ratio, value=0): zeroes a rectangle of the normalised tensor."""
    p: float = 0.5
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)


@dataclass(frozen=True)
class Recipe:
    """A train recipe: flip probability, the geometric op and its probability, and RandomErasing (or None)."""
    name: str
    geometric: Optional[Union[RotateCrop, Affine]] = None
    geometric_p: float = 0.0
    erasing: Optional[Erasing] = None
    flip_p: float = 0.5


TRAIN_RECIPES: Mapping[str, Recipe] = {recipe.name: recipe for recipe in (
    Recipe('rafdb', RotateCrop(degrees=20.0, padding=32), geometric_p=0.2, erasing=Erasing(scale=(0.02, 0.25))),
    Recipe('affectnet', Affine(degrees=20.0, translate=(0.2, 0.2), scale=(0.8, 1.0)), geometric_p=0.7,
           erasing=Erasing()),
    Recipe('sfew', Affine(degrees=20.0, translate=(0.2, 0.2), scale=(0.8, 1.0)), geometric_p=0.5),
    Recipe('synthetic'),
)}
"""The recipes by name: `rafdb`, `affectnet` (AffectNet-7 and -8), `sfew` (the authors' reply to a user), `synthetic`
(flip only)."""

RECIPES = tuple(TRAIN_RECIPES)
"""Train-transform recipe names; `None` means 'synthetic' (resize + flip)."""

INTERPOLATION: Mapping[str, v2.InterpolationMode] = {
    'nearest': v2.InterpolationMode.NEAREST,
    'bilinear': v2.InterpolationMode.BILINEAR,
    'bicubic': v2.InterpolationMode.BICUBIC,
}
"""timm data config `interpolation` names -> torchvision modes (whose `.value` is the `F.interpolate` mode)."""


def get_recipe(name: Optional[str]) -> Recipe:
    """The recipe called `name` (None: 'synthetic'); ValueError naming the choices otherwise."""
    recipe = TRAIN_RECIPES.get(name or 'synthetic')
    if recipe is None:
        raise ValueError(f'unknown transform recipe {name!r}; choose one of {RECIPES}')
    return recipe


def interpolation_mode(data_config: Mapping[str, Any]) -> v2.InterpolationMode:
    """The data config's `interpolation` as a torchvision mode (bilinear if absent or not one of `INTERPOLATION`)."""
    return INTERPOLATION.get(data_config.get('interpolation', 'bilinear'), v2.InterpolationMode.BILINEAR)


def input_hw(data_config: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of the data config's `input_size` (C, H, W)."""
    _, h, w = data_config['input_size']
    return int(h), int(w)
