"""The DAN recipes' transforms: shapes, dtype, determinism under a seed, recipe parameters (what the ops draw is
measured in tests/test_data_recipes.py)."""
import pytest
import torch
from torchvision.transforms import v2

from timm_dan.data import RECIPES, create_transform

CFG = {'input_size': (3, 48, 48), 'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225),
       'interpolation': 'bilinear', 'crop_pct': 0.875}


def _image(h=70, w=60, seed=0):
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _ops(transform, kind):
    """All ops of a type, looking inside RandomApply."""
    found = []
    for op in transform.transforms:
        inner = op.transforms if isinstance(op, v2.RandomApply) else [op]
        found += [t for t in inner if isinstance(t, kind)]
    return found


@pytest.mark.parametrize('recipe', RECIPES + (None,))
@pytest.mark.parametrize('is_training', [False, True])
def test_shape_dtype_and_seeded_determinism(recipe, is_training):
    transform = create_transform(CFG, recipe, is_training)
    image = _image()
    torch.manual_seed(3)
    a = transform(image)
    torch.manual_seed(3)
    b = transform(image)
    assert a.shape == (3, 48, 48) and a.dtype == torch.float32
    assert torch.equal(a, b)


def test_eval_is_resize_then_normalise():
    image = _image()
    out = create_transform(CFG, 'rafdb', is_training=False)(image)
    resized = v2.functional.resize(image, [48, 48], antialias=True).float() / 255
    mean, std = torch.tensor(CFG['mean'])[:, None, None], torch.tensor(CFG['std'])[:, None, None]
    torch.testing.assert_close(out, (resized - mean) / std, atol=1e-5, rtol=0)


@pytest.mark.parametrize('recipe', ['rafdb', 'affectnet', 'sfew'])
def test_training_transforms_are_random(recipe):
    transform = create_transform(CFG, recipe, is_training=True)
    image = _image()
    outs = [transform(image) for _ in range(12)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_rafdb_recipe_parameters():
    transform = create_transform({**CFG, 'input_size': (3, 224, 224)}, 'rafdb', is_training=True)
    apply = [op for op in transform.transforms if isinstance(op, v2.RandomApply)]
    assert len(apply) == 1 and apply[0].p == 0.2
    (rotation,), (crop,) = _ops(transform, v2.RandomRotation), _ops(transform, v2.RandomCrop)
    assert list(rotation.degrees) == [-20.0, 20.0]
    assert crop.size == (224, 224) and crop.padding == [32, 32, 32, 32]
    (erasing,) = _ops(transform, v2.RandomErasing)
    assert erasing.scale == (0.02, 0.25)
    assert len(_ops(transform, v2.RandomHorizontalFlip)) == 1
    # erasing acts on the normalised tensor: it comes after Normalize
    kinds = [type(op) for op in transform.transforms]
    assert kinds.index(v2.RandomErasing) > kinds.index(v2.Normalize) > kinds.index(v2.ToDtype)


@pytest.mark.parametrize('recipe, p, erasing', [('affectnet', 0.7, True), ('sfew', 0.5, False)])
def test_affine_recipe_parameters(recipe, p, erasing):
    transform = create_transform(CFG, recipe, is_training=True)
    apply = [op for op in transform.transforms if isinstance(op, v2.RandomApply)]
    assert len(apply) == 1 and apply[0].p == p
    (affine,) = _ops(transform, v2.RandomAffine)
    assert list(affine.degrees) == [-20.0, 20.0] and affine.translate == (0.2, 0.2) and affine.scale == (0.8, 1.0)
    assert len(_ops(transform, v2.RandomErasing)) == int(erasing)


def test_default_recipe_is_resize_and_flip():
    transform = create_transform(CFG, None, is_training=True)
    assert [type(op) for op in transform.transforms] == [
        v2.ToImage, v2.Resize, v2.RandomHorizontalFlip, v2.ToDtype, v2.Normalize]


def test_unknown_recipe():
    with pytest.raises(ValueError, match='unknown transform recipe'):
        create_transform(CFG, 'imagenet', is_training=True)
