"""BatchCollate + DeviceNormalize: the recipes' transforms on whole batches give what the per-sample transforms
give; the batch crosses processes as uint8 with its erasures, and is normalised by the consumer."""
import pytest
import torch
from torch.utils.data import DataLoader

from timm_dan.data import RECIPES, BatchCollate, DeviceNormalize, FERBatch, create_transform, fer_collate

CFG = {'input_size': (3, 48, 48), 'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225),
       'interpolation': 'bilinear'}


def _images(n, h=40, w=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen) for _ in range(n)]


def _examples(images):
    return [{'pixel_values': image, 'label': i % 7} for i, image in enumerate(images)]


def _batched(collate, images):
    """What the model receives: the collated uint8 batch, normalised by the consumer."""
    return DeviceNormalize(CFG)(collate(_examples(images)))


def test_eval_equals_per_sample_transform():
    images = _images(5)
    expected, labels = fer_collate([{'pixel_values': create_transform(CFG)(im), 'label': i % 7}
                                    for i, im in enumerate(images)])
    out, out_labels = _batched(BatchCollate(CFG), images)
    assert out.shape == (5, 3, 48, 48) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(out_labels, labels)


def test_mixed_sizes_and_channels_last():
    images = _images(2, 40, 40) + _images(2, 64, 50, seed=1)
    expected = torch.stack([create_transform(CFG)(im) for im in images])
    batch = BatchCollate(CFG)(_examples(images))
    pixels = batch.pixel_values
    assert pixels.dtype == torch.uint8 and pixels.is_contiguous(memory_format=torch.channels_last)
    out, _ = DeviceNormalize(CFG)(batch)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('recipe', RECIPES)
def test_training_augments_with_the_recipe_probabilities(recipe):
    # a left-right ramp: a flip reverses the sign of its horizontal slope
    ramp = torch.linspace(0, 255, 40).round().to(torch.uint8).expand(3, 40, 40).contiguous()
    torch.manual_seed(0)
    out, _ = _batched(BatchCollate(CFG, recipe, is_training=True), [ramp] * 300)
    assert out.shape == (300, 3, 48, 48)
    flipped = ((out[:, 0, 24, 30] - out[:, 0, 24, 17]) < 0).float().mean().item()
    assert 0.4 < flipped < 0.6
    erased = (out == 0).all(1).flatten(1).any(1).float().mean().item()  # zero in all channels: erased
    assert (0.4 < erased < 0.6) if recipe in ('rafdb', 'affectnet') else erased == 0
    # neither moved nor erased: the plain resize, flipped or not
    plain = _batched(BatchCollate(CFG), [ramp])[0]
    untouched = (torch.isclose(out, plain).all((1, 2, 3)) | torch.isclose(out, plain.flip(-1)).all((1, 2, 3)))
    geometric_p = {'rafdb': 0.2, 'affectnet': 0.7, 'sfew': 0.5, 'synthetic': 0.0}[recipe]
    assert abs(untouched.float().mean().item() - (1 - geometric_p) * (1 - erased)) < 0.08


def test_rejects_float_input():
    with pytest.raises(TypeError, match='uint8'):
        BatchCollate(CFG)(_examples([torch.rand(3, 40, 40)]))


def test_unknown_recipe():
    with pytest.raises(ValueError, match='recipe'):
        BatchCollate(CFG, 'imagenet')


def test_erasures_travel_with_the_uint8_batch_and_are_zeroed_after_normalising():
    images = _images(64)
    torch.manual_seed(1)
    batch = BatchCollate(CFG, 'rafdb', is_training=True)(_examples(images))
    assert isinstance(batch, FERBatch) and batch.pixel_values.dtype == torch.uint8
    assert 16 < len(batch.erase) < 48  # p = 0.5 of 64
    out, labels = DeviceNormalize(CFG)(batch)
    kept, _ = DeviceNormalize(CFG)(batch._replace(erase=()))
    erased = torch.zeros(64, 48, 48, dtype=torch.bool)
    for i, top, left, height, width in batch.erase:
        # RandomErasing scale (0.02, 0.25) of the area, up to the rounding of height and width
        assert 0.02 * 48 * 48 - 48 <= height * width <= 0.25 * 48 * 48 + 48 and 0 < height < 48 and 0 < width < 48
        erased[i, top:top + height, left:left + width] = True
    assert (out.permute(1, 0, 2, 3)[:, erased] == 0).all()
    assert torch.equal(out.permute(1, 0, 2, 3)[:, ~erased], kept.permute(1, 0, 2, 3)[:, ~erased])
    assert torch.equal(labels, batch.labels)


def test_device_normalize_moves_the_batch_and_checks_channels():
    batch = BatchCollate(CFG)(_examples(_images(2)))
    out, labels = DeviceNormalize(CFG, device='cpu')(batch)
    assert out.device.type == 'cpu' and out.shape == (2, 3, 48, 48)
    gray = batch._replace(pixel_values=batch.pixel_values[:, :1])
    with pytest.raises(ValueError, match='1 channels'):
        DeviceNormalize(CFG)(gray)


def test_in_a_worker_process():
    dataset = _examples(_images(8))
    loader = DataLoader(dataset, batch_size=4, num_workers=1, collate_fn=BatchCollate(CFG, 'rafdb', True))
    batches = [DeviceNormalize(CFG)(batch) for batch in loader]
    assert len(batches) == 2 and batches[0][0].shape == (4, 3, 48, 48)
    assert all(torch.isfinite(images).all() for images, _ in batches)
