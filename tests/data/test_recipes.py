"""The recipe table holds the authors' numbers, and every transform path (per sample, batched, on the device with
host-side or sync-free choices) really applies each recipe's augmentations with those numbers: measured over seeded
draws on a probe image whose pixels encode their own coordinates, so the flip, the geometric op (angle, scale,
shift) and the erased rectangle of every draw can be read back from the output."""
from typing import NamedTuple, Optional

import pytest
import torch

from timm_dan.data import RECIPES, BatchCollate, DeviceNormalize, create_transform
from timm_dan.data.device import DeviceBatches, DeviceSplit
from timm_dan.data.recipes import TRAIN_RECIPES, Affine, Erasing, Recipe, RotateCrop, get_recipe

PATHS = ['per-sample', 'batched', 'device', 'device (sync-free)']
SIZE = 48
CFG = {'input_size': (3, SIZE, SIZE), 'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225),
       'interpolation': 'bilinear'}
DRAWS = 200
STEP = 255 / (SIZE - 1)  # probe value per pixel of the coordinate ramps
CONTENT = 128  # the probe's third channel: the image itself (fill is 0, erased pixels are 0 after normalising)
V, U = (c.flatten().double() for c in torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing='ij'))


def test_the_table_holds_the_authors_numbers():
    affine = Affine(degrees=20.0, translate=(0.2, 0.2), scale=(0.8, 1.0))
    assert TRAIN_RECIPES == {
        'rafdb': Recipe('rafdb', RotateCrop(degrees=20.0, padding=32), 0.2, Erasing(0.5, (0.02, 0.25), (0.3, 3.3))),
        'affectnet': Recipe('affectnet', affine, 0.7, Erasing(0.5, (0.02, 0.33), (0.3, 3.3))),
        'sfew': Recipe('sfew', affine, 0.5, None),
        'synthetic': Recipe('synthetic', None, 0.0, None),
    }
    assert RECIPES == ('rafdb', 'affectnet', 'sfew', 'synthetic')
    assert all(recipe.flip_p == 0.5 for recipe in TRAIN_RECIPES.values())
    assert get_recipe(None) is TRAIN_RECIPES['synthetic']
    assert [RotateCrop().padding_at(h) for h in (224, 100, 48)] == [32, 14, 7]
    with pytest.raises(ValueError, match=r"unknown transform recipe 'imagenet'; choose one of \('rafdb'"):
        get_recipe('imagenet')


class Draw(NamedTuple):
    flipped: bool
    angle: float  # degrees, of the geometric op
    scale: float
    shift: tuple[float, float]  # pixels (x, y)
    erased: Optional[tuple[float, float]]  # (area fraction, height / width) of the erased rectangle, or None

    @property
    def moved(self) -> bool:
        return abs(self.angle) > 0.3 or abs(self.scale - 1) > 0.01 or max(map(abs, self.shift)) > 0.5


def _probe() -> torch.Tensor:
    """Channel 0 ramps with x, channel 1 with y (0..255), channel 2 is constant: the content marker."""
    x = torch.linspace(0, 255, SIZE).round().expand(SIZE, SIZE)
    return torch.stack([x, x.T, torch.full((SIZE, SIZE), CONTENT)]).to(torch.uint8)


def _fit(pixels: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per output, the linear map pixel (u, v) -> probe coordinates (x, y) = matrix @ (u, v) + offset, by least
    squares over its valid pixels (B x 2 x 2 matrices, B x 2 offsets)."""
    weight = valid.double().flatten(1)[..., None]  # B x HW x 1
    design = torch.stack([torch.ones_like(U), U, V], 1)  # HW x 3
    target = pixels[:, :2].double().flatten(2).transpose(1, 2) / STEP  # B x HW x 2
    coef = torch.linalg.solve(design.T @ (weight * design), design.T @ (weight * target))  # rows: offset, d/du, d/dv
    return coef[:, 1:].transpose(1, 2), coef[:, 0]


def _measure(outputs: torch.Tensor) -> list[Draw]:
    """Read back what each normalised output (B x 3 x H x W) went through."""
    zero = (outputs == 0).all(1)  # RandomErasing's value 0 in every channel: never the probe's content nor its fill
    mean, std = torch.tensor(CFG['mean'])[:, None, None], torch.tensor(CFG['std'])[:, None, None]
    pixels = (outputs * std + mean) * 255
    valid = ~zero & ((pixels[:, 2] - CONTENT).abs() < 0.5)  # the probe itself, not fill nor a blend with it
    matrix, offset = _fit(pixels, valid)
    flipped = torch.linalg.det(matrix) < 0
    unflipped = _fit(pixels.flip(-1), valid.flip(-1))  # the geometric op, read off the unflipped output
    matrix = torch.where(flipped[:, None, None], unflipped[0], matrix)
    offset = torch.where(flipped[:, None], unflipped[1], offset)
    forward = torch.linalg.inv(matrix)  # probe -> output: forward @ (p - c) + c + shift, c the centre
    centre = torch.full((2,), (SIZE - 1) / 2, dtype=torch.float64)
    shift = (forward @ (centre - offset)[..., None])[..., 0] - centre
    angle = torch.atan2(forward[:, 1, 0], forward[:, 0, 0]).rad2deg()
    scale = torch.linalg.det(forward).sqrt()
    draws = []
    for i, mask in enumerate(zero):
        erased = None
        if mask.any():
            rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
            height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
            assert mask.sum() == height * width, 'the erased pixels form one rectangle'
            erased = (height * width / SIZE ** 2, height / width)
        draws.append(Draw(bool(flipped[i]), float(angle[i]), float(scale[i]), tuple(shift[i].tolist()), erased))
    return draws


def _device_batches(recipe: Optional[str], is_training: bool, path: str, copies: int = DRAWS) -> DeviceBatches:
    """`DeviceBatches` over `copies` copies of the probe, choosing samples on the host or with masks (as off a CPU)."""
    pixels = _probe().permute(1, 2, 0).expand(copies, -1, -1, -1).contiguous()
    batches = DeviceBatches(DeviceSplit(pixels, torch.zeros(copies, dtype=torch.long), 'cpu', resident=True), CFG,
                            recipe, is_training=is_training, seed=0)
    batches.sync_free = path == 'device (sync-free)'
    return batches


def _outputs(path: str, recipe: str) -> torch.Tensor:
    probe = _probe()
    torch.manual_seed(0)
    if path == 'per-sample':
        transform = create_transform(CFG, recipe, is_training=True)
        return torch.stack([transform(probe) for _ in range(DRAWS)])
    if path.startswith('device'):  # each copy is its own draw of the epoch
        return _device_batches(recipe, True, path).__getitems__([(i, i) for i in range(DRAWS)])[0]
    collate = BatchCollate(CFG, recipe, is_training=True)
    batch = collate([{'pixel_values': probe, 'label': 0}] * DRAWS)
    return DeviceNormalize(CFG)(batch)[0]


def _rate(draws: list, what) -> float:
    return sum(map(what, draws)) / len(draws)


@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('name', RECIPES)
def test_each_augmentation_happens_with_the_recipes_numbers(path, name):
    recipe = TRAIN_RECIPES[name]
    draws = _measure(_outputs(path, name))
    # 200 draws: a rate's standard deviation is at most 0.035
    assert abs(_rate(draws, lambda d: d.flipped) - recipe.flip_p) < 0.1

    moved = [d for d in draws if d.moved]
    assert abs(len(moved) / DRAWS - recipe.geometric_p) < 0.1
    angles = [abs(d.angle) for d in moved]
    scales = [d.scale for d in moved]
    shifts = [max(map(abs, d.shift)) for d in moved]
    geometric = recipe.geometric
    if geometric is not None:  # the whole range is used, and no more
        assert geometric.degrees - 5 < max(angles) <= geometric.degrees + 0.5
    if isinstance(geometric, RotateCrop):  # rotation, then a crop shifting by up to the padding (7 px at 48)
        pad = geometric.padding_at(SIZE)
        assert all(abs(s - 1) < 0.01 for s in scales)
        assert pad - 2 <= max(shifts) <= pad + 1
    elif isinstance(geometric, Affine):
        low, high = geometric.scale
        assert low - 0.01 < min(scales) < low + 0.05 and high - 0.05 < max(scales) < high + 0.01
        limit = geometric.translate[0] * SIZE
        assert limit - 3 < max(shifts) <= limit + 1

    erased = [d.erased for d in draws if d.erased is not None]
    erasing = recipe.erasing
    if erasing is None:
        assert erased == []
        return
    assert abs(len(erased) / DRAWS - erasing.p) < 0.1
    areas, ratios = [a for a, _ in erased], [r for _, r in erased]
    low, high = erasing.scale  # up to the rounding of the rectangle's sides
    assert low - 0.01 < min(areas) < low + 0.03 and high - 0.05 < max(areas) < high + 0.015
    low, high = erasing.ratio
    assert low * 0.8 < min(ratios) < 0.6 and 2 < max(ratios) < high * 1.25


@pytest.mark.parametrize('path', PATHS)
def test_the_probe_reads_back_a_plain_resize_as_untouched(path):
    torch.manual_seed(0)
    probe = _probe()
    if path == 'per-sample':
        out = create_transform(CFG)(probe)[None]
    elif path.startswith('device'):
        out = _device_batches(None, False, path, copies=1).__getitems__([0])[0]
    else:
        out = DeviceNormalize(CFG)(BatchCollate(CFG)([{'pixel_values': probe, 'label': 0}]))[0]
    (draw, mirrored) = _measure(torch.cat([out, out.flip(-1)]))
    assert not draw.flipped and not draw.moved and draw.erased is None
    assert mirrored.flipped and not mirrored.moved
