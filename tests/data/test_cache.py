"""decode_to_arrow: decoded pixels stored in Arrow (cached next to the split), read back without decoding, giving
bit-identical batches."""
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, Value, load_from_disk
from PIL import Image as PILImage

from timm_dan.data import LABELS, create_transform, decode_image_uint8, decode_to_arrow, fer_collate, prepare_dataset
from timm_dan.data import loader as loader_module
from timm_dan.training.config import TrainConfig, parse_config
from timm_dan.training.data import create_loader, load_splits

SIZES = [(16, 16), (24, 40), (64, 48), (33, 17), (40, 64), (48, 32), (20, 56), (56, 24)]
CFG = {'input_size': (3, 32, 32), 'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225),
       'interpolation': 'bilinear'}


@pytest.fixture
def split(tmp_path):
    """A split saved to disk like `load_fer_dataset`'s: JPEG, PNG and one grayscale PNG of different sizes, by path
    and as embedded bytes."""
    rng = np.random.default_rng(0)
    files = []
    for i, (h, w) in enumerate(SIZES):
        pixels = rng.integers(0, 256, (h, w) if i == 3 else (h, w, 3), dtype=np.uint8)
        file = tmp_path / f'{i}.{"jpg" if i % 2 else "png"}'
        PILImage.fromarray(pixels).save(file)
        files.append(str(file))
    images = [{'path': f, 'bytes': None} if i % 3 else {'path': None, 'bytes': open(f, 'rb').read()}
              for i, f in enumerate(files)]
    features = Features({'image': Image(), 'label': ClassLabel(names=list(LABELS[:7])), 'file': Value('string')})
    data = Dataset.from_dict({'image': images, 'label': [i % 7 for i in range(len(files))], 'file': files},
                             features=features)
    data.save_to_disk(str(tmp_path / 'arrow'))
    return load_from_disk(str(tmp_path / 'arrow'))


def test_pixels_equal_decoding_and_other_columns_are_kept(split):
    cached = decode_to_arrow(split)
    assert cached.column_names == ['label', 'file', 'pixels', 'height', 'width']
    assert cached['label'] == split['label'] and cached['file'] == split['file']
    assert cached.features['label'] == split.features['label']
    raw = split.cast_column('image', Image(decode=False))
    for row, image in zip(cached, raw['image'], strict=True):
        expected = decode_image_uint8(image)
        assert (row['height'], row['width']) == tuple(expected.shape[1:])
        assert len(row['pixels']) == expected.numel()
        tensor = loader_module.pixels_to_tensor(row['pixels'], row['height'], row['width'])
        assert tensor.is_contiguous() and tensor.dtype == torch.uint8
        assert torch.equal(tensor, expected)


def test_cached_next_to_the_split_and_reused(split, monkeypatch):
    cached = decode_to_arrow(split)
    (split_dir,) = {Path(f['filename']).parent for f in split.cache_files}
    assert [Path(f['filename']).parent for f in cached.cache_files] == [split_dir]

    def no_decoding(image):
        raise AssertionError('decoded again instead of reading the cache')
    monkeypatch.setattr(loader_module, 'decode_image_uint8', no_decoding)
    again = decode_to_arrow(load_from_disk(str(split_dir)))  # as a new run would load it
    assert again.cache_files == cached.cache_files
    assert again['pixels'] == cached['pixels']


def test_prepare_dataset_with_a_random_transform_is_bit_identical(split):
    transform = create_transform(CFG, 'affectnet', is_training=True)
    outputs = []
    for data in (split, decode_to_arrow(split)):
        prepared = prepare_dataset(data, transform)
        torch.manual_seed(3)
        outputs.append(fer_collate([prepared[i] for i in range(len(SIZES))]))
    assert outputs[0][0].shape == (len(SIZES), 3, 32, 32)
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])


@pytest.mark.parametrize('is_training', [True, False])
def test_create_loader_gives_the_same_batches(split, is_training):
    batches = []
    for data, workers in ((split, 0), (decode_to_arrow(split), 2)):  # the cached split read in worker processes
        torch.manual_seed(0)
        batches.append(list(create_loader(data, CFG, batch_size=4, is_training=is_training, recipe='rafdb',
                                          num_workers=workers, seed=7)))
    assert len(batches[0]) == 2
    for plain, cached in zip(*batches, strict=True):
        assert torch.equal(plain.pixel_values, cached.pixel_values) and torch.equal(plain.labels, cached.labels)
        assert plain.erase == cached.erase


def test_cli_option_and_bad_input(split, tmp_path):
    assert TrainConfig().cache_decoded is False
    assert parse_config(['--cache-decoded']).cache_decoded is True
    with pytest.raises(ValueError, match='needs an `image` column'):
        decode_to_arrow(split.remove_columns('image'))
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'\xff\xd8 not a JPEG')
    with pytest.raises(ValueError, match=f'cannot decode {broken}'):
        decode_to_arrow(Dataset.from_dict({'image': [str(broken)]}, features=Features({'image': Image()})))


def test_load_splits_caches_every_role(tmp_path):
    options = {'num_samples': 32, 'num_validation_samples': 8, 'image_size': 40, 'num_classes': 8,
               'cache_dir': str(tmp_path / 'cache')}
    common = dict(dataset='synthetic', num_classes=8, dataset_options=options, val_fraction=0.25,
                  test_split='validation')
    plain, cached = (load_splits(TrainConfig(**common, cache_decoded=flag)) for flag in (False, True))
    assert set(cached) == {'train', 'validation', 'test'}
    for role, split in cached.items():
        assert 'pixels' in split.column_names and 'image' not in split.column_names
        assert split['label'] == plain[role]['label']
        assert Path(split.cache_files[0]['filename']).is_relative_to(tmp_path / 'cache')
    first = prepare_dataset(cached['train'], create_transform(CFG))[0]['pixel_values']
    assert torch.equal(first, prepare_dataset(plain['train'], create_transform(CFG))[0]['pixel_values'])
