"""The device pipeline (`timm_dan.data.device`) on CPU tensors: its random draws, its batches equal the batched
path's where the operation is the same, its augmentations are distributed as the per-sample recipe's (the probe of
`test_recipes.py`), and a split that does not fit streams, with a message, giving the same batches."""
import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, Value, load_from_disk
from PIL import Image as PILImage
from scipy.stats import ks_2samp
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from tests.data.test_recipes import _measure, _outputs
from timm_dan.data import LABELS, BatchCollate, DeviceNormalize, decode_to_arrow, prepare_dataset
from timm_dan.data import device as device_module
from timm_dan.data.batched import ERASE_UNIFORMS, erase_rectangles
from timm_dan.data.device import (
    DeviceBatches,
    DeviceSplit,
    counter_uniforms,
    inverse_affine,
    storage_size,
    warp_affine,
)
from timm_dan.data.recipes import TRAIN_RECIPES, Erasing, Recipe

CFG = {'input_size': (3, 32, 32), 'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225),
       'interpolation': 'bilinear'}
SIZES = [(16, 16), (24, 40), (64, 48), (33, 17), (40, 64), (48, 32), (20, 56), (56, 24)]


def _split(tmp_path, sizes, name='arrow') -> Dataset:
    """A split saved to disk and loaded back (as `load_fer_dataset` gives it), PNG images of the given sizes."""
    rng = np.random.default_rng(0)
    files = []
    for i, (h, w) in enumerate(sizes):
        file = tmp_path / f'{name}-{i}.png'
        PILImage.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(file)
        files.append(str(file))
    features = Features({'image': Image(), 'label': ClassLabel(names=list(LABELS[:7])), 'file': Value('string')})
    Dataset.from_dict({'image': files, 'label': [i % 7 for i in range(len(files))], 'file': files},
                      features=features).save_to_disk(str(tmp_path / name))
    return load_from_disk(str(tmp_path / name))


def _batched(split: Dataset, recipe=None, is_training=False):
    """The batched path's batch of the whole split (BatchCollate + DeviceNormalize), in its order."""
    prepared = prepare_dataset(split, v2.Identity())
    collate = BatchCollate(CFG, recipe, is_training=is_training)
    return DeviceNormalize(CFG)(collate([prepared[i] for i in range(len(prepared))]))


def test_counter_uniforms_are_a_pure_function_of_seed_epoch_and_draw():
    draws = torch.arange(20_000)
    u = counter_uniforms(7, 3, draws, 29)
    assert u.shape == (20_000, 29) and u.dtype == torch.float32 and 0 <= u.min() and u.max() < 1
    assert torch.equal(u, counter_uniforms(7, 3, draws, 29))  # no state: the same numbers every call
    assert torch.equal(u[5:9], counter_uniforms(7, 3, draws[5:9], 29))  # a draw's numbers do not depend on its batch
    for other in (counter_uniforms(8, 3, draws, 29), counter_uniforms(7, 4, draws, 29),
                  counter_uniforms(-7, 3, draws, 29), counter_uniforms(7 + 2 ** 40, 3, draws, 29)):
        assert (other != u).float().mean() > 0.99
    assert abs(u.mean().item() - 0.5) < 0.005 and abs(u.var().item() - 1 / 12) < 0.002
    histogram = torch.histc(u[:, 0], bins=10, min=0, max=1)
    assert (histogram - 2000).abs().max() < 200
    correlation = torch.corrcoef(u.T)  # across streams, and between neighbouring draws
    assert (correlation - torch.eye(29)).abs().max() < 0.05
    assert torch.corrcoef(torch.stack([u[:-1, 0], u[1:, 0]]))[0, 1].abs() < 0.05


def test_evaluation_batches_equal_the_batched_paths(tmp_path):
    for sizes, stored in ((SIZES, (32, 32)), ([(40, 40)] * 6, (40, 40))):
        split = _split(tmp_path, sizes, name=f'arrow{len(sizes)}')
        decoded = decode_to_arrow(split)
        assert storage_size(decoded, (32, 32)) == stored
        device_split = DeviceSplit.from_dataset(decoded, 'cpu', size=stored)
        assert device_split.resident and device_split.size == stored
        images, labels = DeviceBatches(device_split, CFG).__getitems__(list(range(len(sizes))))
        expected_images, expected_labels = _batched(split)
        assert images.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)
    with pytest.raises(ValueError, match='differ in size; pass size='):
        DeviceSplit.from_dataset(decode_to_arrow(_split(tmp_path, SIZES[:2], name='mixed')), 'cpu')
    with pytest.raises(ValueError, match='pass the split through timm_dan.data.decode_to_arrow first'):
        DeviceSplit.from_dataset(split, 'cpu')


def test_the_warp_is_torchvisions_affine_and_rotate_then_crop():
    """With fill 0, as the recipes' v2.RandomAffine and v2.RandomRotation apply them: the same pixels but for a
    rounding tie here and there."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8, generator=generator)
    angle = torch.tensor([0.0, 13.7, -19.9, 5.0, 90.0, -2.5])
    tx, ty = torch.tensor([0.0, 3.0, -8.0, 1.0, 0.0, 7.0]), torch.tensor([0.0, -2.0, 5.0, 8.0, 0.0, -1.0])
    scale = torch.tensor([1.0, 0.85, 0.8, 0.97, 1.0, 0.9])
    warped = warp_affine(images, inverse_affine(angle, tx, ty, scale))
    for i in range(6):
        expected = TF.affine(images[i], angle=float(angle[i]), translate=[float(tx[i]), float(ty[i])],
                             scale=float(scale[i]), shear=[0.0, 0.0], interpolation=InterpolationMode.BILINEAR, fill=0)
        difference = (warped[i].int() - expected.int()).abs()
        assert difference.max() <= 1 and (difference == 0).float().mean() > 0.995, i

    pad, top, left = 5, torch.tensor([0, 10, 3, 5, 7, 1]), torch.tensor([10, 0, 6, 5, 2, 9])
    one = torch.ones(6)
    cropped = warp_affine(images, inverse_affine(-angle, 0 * one, 0 * one, one), shift=torch.stack(
        [left - pad, top - pad], 1))
    for i in range(6):  # RotateCrop: rotate, then RandomCrop from a zero padding
        rotated = TF.pad(TF.rotate(images[i], float(angle[i]), interpolation=InterpolationMode.BILINEAR, fill=0),
                         [pad])
        expected = rotated[:, top[i]:top[i] + 40, left[i]:left[i] + 40]
        difference = (cropped[i].int() - expected.int()).abs()
        assert difference.max() <= 1 and (difference == 0).float().mean() > 0.995, i


@pytest.mark.parametrize('sync_free', [False, True])
def test_flips_and_erasing_are_the_batched_paths_exactly(tmp_path, sync_free):
    split = DeviceSplit.from_dataset(decode_to_arrow(_split(tmp_path, [(40, 40)] * 8)), 'cpu')
    draws = [(i, i) for i in range(8)]
    evaluation = DeviceBatches(split, CFG)
    evaluation.sync_free = sync_free  # off a CPU the resize runs in float (no uint8 kernel there): the same here
    plain, _ = evaluation.__getitems__(list(range(8)))

    def outputs(recipe):
        batches = DeviceBatches(split, CFG, 'synthetic', is_training=True, seed=3)
        batches.recipe, batches.erasing = recipe, recipe.erasing
        batches.sync_free = sync_free
        return batches.__getitems__(draws)[0]
    assert torch.equal(outputs(Recipe('flip', flip_p=1.0)), plain.flip(-1))
    assert torch.equal(outputs(Recipe('none', flip_p=0.0)), plain)
    erasing = Erasing(p=1.0)
    erased = outputs(Recipe('erase', erasing=erasing, flip_p=0.0))
    uniforms = counter_uniforms(3, 0, torch.arange(8), device_module._STREAMS)[:, device_module._ERASE:]
    assert uniforms.shape[1] == ERASE_UNIFORMS
    chosen, top, left, eh, ew = erase_rectangles(uniforms, 32, 32, erasing)
    expected = plain.clone()
    for i in chosen.nonzero().flatten().tolist():
        expected[i, :, top[i]:top[i] + eh[i], left[i]:left[i] + ew[i]] = 0
    assert chosen.sum() >= 6 and torch.equal(erased, expected)


@pytest.mark.parametrize('name', list(TRAIN_RECIPES))
def test_host_side_and_sync_free_choices_give_the_same_batches(tmp_path, name):
    """Without a resize (stored at the input size), choosing samples with masks (off a CPU) or on the host changes
    nothing: the same warps, flips and rectangles."""
    split = DeviceSplit.from_dataset(decode_to_arrow(_split(tmp_path, [(32, 32)] * 8)), 'cpu')
    outputs = []
    for sync_free in (False, True):
        batches = DeviceBatches(split, CFG, name, is_training=True, seed=1)
        batches.sync_free = sync_free
        outputs.append(batches.__getitems__([(i, i % 8) for i in range(24)])[0])
    assert torch.equal(*outputs)


def test_the_augmentations_are_distributed_as_the_per_sample_recipes():
    """Two-sample tests on what the probe reads back (200 seeded draws each): the device path against the
    per-sample torchvision transforms, for the angles, scales, shifts and erased areas."""
    for name in ('rafdb', 'affectnet'):
        device, per_sample = (_measure(_outputs(path, name)) for path in ('device', 'per-sample'))
        moved = [[d for d in draws if d.moved] for draws in (device, per_sample)]
        readings = [lambda d: d.angle, lambda d: max(map(abs, d.shift))]
        if name == 'affectnet':  # RotateCrop does not scale: its readings are fit noise around 1
            readings.append(lambda d: d.scale)
        for what in readings:
            assert ks_2samp(*([what(d) for d in draws] for draws in moved)).pvalue > 0.001, name
        areas = [[d.erased[0] for d in draws if d.erased] for draws in (device, per_sample)]
        assert ks_2samp(*areas).pvalue > 0.001, name


def test_a_split_that_does_not_fit_streams_with_a_message_and_the_same_batches(tmp_path, monkeypatch):
    decoded = decode_to_arrow(_split(tmp_path, [(40, 40)] * 8))
    resident = DeviceSplit.from_dataset(decoded, 'cpu')
    with pytest.warns(UserWarning, match=r'train: the decoded images \(8 at 40x40, 0.0 MiB\) do not fit in the 0.0 '
                                         r'MiB the data may take on cpu; streaming each batch from pinned host memory'):
        streamed = DeviceSplit.from_dataset(decoded, 'cpu', memory_limit=8 * 40 * 40 * 3, name='train')
    assert not streamed.resident and resident.resident
    draws = [(i, (3 * i) % 8) for i in range(8)]
    for _ in range(4):  # through every staging buffer and back to the first
        batches = [DeviceBatches(split, CFG, 'rafdb', is_training=True, seed=2).__getitems__(draws)
                   for split in (resident, streamed)]
        assert all(torch.equal(a, b) for a, b in zip(*batches))
    assert len(streamed._staging) == device_module._STAGING

    class Small:
        available = 1000
    monkeypatch.setattr(device_module.psutil, 'virtual_memory', lambda: Small)
    with pytest.raises(MemoryError, match='need 0.0 MiB of host memory to stream from'):
        DeviceSplit.from_dataset(decoded, 'cpu', resident=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('name', list(TRAIN_RECIPES))
def test_on_cuda_the_batches_are_the_sync_free_cpu_ones(tmp_path, name):
    """The same draws on any device; CUDA's float kernels round a pixel differently here and there; streaming
    from host memory gives the resident batches exactly."""
    draws = torch.arange(1000)
    assert torch.equal(counter_uniforms(4, 2, draws.cuda(), 29).cpu(), counter_uniforms(4, 2, draws, 29))
    decoded = decode_to_arrow(_split(tmp_path, [(40, 40)] * 8))
    outputs = []
    for device, resident in (('cpu', True), ('cuda', True), ('cuda', False)):
        batches = DeviceBatches(DeviceSplit.from_dataset(decoded, device, resident=resident), CFG, name,
                                is_training=True, seed=1)
        batches.sync_free = True
        for _ in range(4):  # the streaming staging buffers come round again
            images, labels = batches.__getitems__([(i, i % 8) for i in range(24)])
        assert images.device.type == device
        outputs.append((images.cpu(), labels.cpu()))
    (on_cpu, labels), (resident, resident_labels), (streamed, streamed_labels) = outputs
    assert torch.equal(resident, streamed) and torch.equal(labels, resident_labels) and torch.equal(labels,
                                                                                                     streamed_labels)
    levels = (resident - on_cpu).abs() * 255 * torch.tensor(CFG['std'])[:, None, None]
    assert levels.max() <= 1.01 and (levels < 0.01).float().mean() > 0.99


def test_valence_arousal_targets_come_after_the_labels(tmp_path):
    """A split loaded with `valence_arousal=True`: the drawn rows' targets (NaN for None), resident or streamed,
    in training too; without the columns, one clear error."""
    from datasets import Value
    decoded = decode_to_arrow(_split(tmp_path, [(40, 40)] * 8))
    values = [[0.5, -0.25], [None, 0.75], [-1.0, None], [0.0, 0.0], [1.0, 1.0], [0.25, -0.5], [-0.75, 0.5],
              [0.125, 0.375]]
    for i, column in enumerate(('valence', 'arousal')):
        decoded = decoded.add_column(column, [v[i] for v in values], feature=Value('float32'))
    expected = torch.tensor([[float('nan') if x is None else x for x in v] for v in values])
    draws = [(i, (3 * i) % 8) for i in range(8)]
    resident = DeviceSplit.from_dataset(decoded, 'cpu', valence_arousal=True)
    with pytest.warns(UserWarning, match='streaming'):
        streamed = DeviceSplit.from_dataset(decoded, 'cpu', memory_limit=1000, valence_arousal=True)
    for split in (resident, streamed):
        images, labels, va = DeviceBatches(split, CFG, 'rafdb', is_training=True, seed=2).__getitems__(draws)
        torch.testing.assert_close(va, expected[[index for _, index in draws]], equal_nan=True)
        without = DeviceBatches(DeviceSplit.from_dataset(decoded, 'cpu'), CFG, 'rafdb', is_training=True, seed=2)
        plain_images, plain_labels = without.__getitems__(draws)  # the targets change nothing else
        assert torch.equal(images, plain_images) and torch.equal(labels, plain_labels)
    with pytest.raises(ValueError, match='valence_arousal=True needs the columns valence and arousal'):
        DeviceSplit.from_dataset(decode_to_arrow(_split(tmp_path, [(40, 40)] * 2, name='plain')), 'cpu',
                                 valence_arousal=True)
