"""The built-in synthetic FER set: features, determinism by seed, class balance, caching by options."""
import numpy as np
import pytest

from timm_dan import LABELS
from timm_dan.data import load_fer_dataset


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp('hf'))
    return cache, load_fer_dataset('synthetic', num_samples=64, image_size=40, num_classes=8, seed=5, cache_dir=cache)


def test_features_and_sizes(small):
    _, ds = small
    assert set(ds) == {'train', 'validation'}
    assert ds['train'].num_rows == 64 and ds['validation'].num_rows == 16
    assert ds['train'].features['label'].names == list(LABELS)
    image = ds['train'][0]['image']
    assert image.size == (40, 40) and image.mode == 'RGB'


def test_classes_balanced(small):
    _, ds = small
    assert np.bincount(ds['train']['label'], minlength=8).tolist() == [8] * 8
    assert np.bincount(ds['validation']['label'], minlength=8).tolist() == [2] * 8


def test_deterministic_by_seed(small, tmp_path):
    cache, ds = small
    again = load_fer_dataset('synthetic', num_samples=64, image_size=40, seed=5, cache_dir=str(tmp_path))
    other = load_fer_dataset('synthetic', num_samples=64, image_size=40, seed=6, cache_dir=str(tmp_path))
    first = [np.asarray(x['image']) for x in ds['train'].select(range(4))]
    same = [np.asarray(x['image']) for x in again['train'].select(range(4))]
    differ = [np.asarray(x['image']) for x in other['train'].select(range(4))]
    assert all(np.array_equal(a, b) for a, b in zip(first, same, strict=True))
    assert ds['train']['label'] == again['train']['label']
    assert not any(np.array_equal(a, b) for a, b in zip(first, differ, strict=True))
    # the validation split is drawn apart from train
    assert not np.array_equal(first[0], np.asarray(ds['validation'][0]['image']))


def test_options_change_the_cached_set(small):
    cache, _ = small
    seven = load_fer_dataset('synthetic', num_samples=21, num_validation_samples=7, image_size=32, num_classes=7,
                             seed=5, cache_dir=cache)
    assert seven['train'].features['label'].names == list(LABELS[:7])
    assert seven['train'].num_rows == 21 and seven['validation'].num_rows == 7
    assert seven['train'][0]['image'].size == (32, 32)
    assert max(seven['train']['label']) == 6


def test_classes_differ_in_pixels(small):
    """Mean images per class differ: the expression is drawn, not only the label."""
    _, ds = small
    images = np.stack([np.asarray(x, np.float32) for x in ds['train']['image']])
    labels = np.asarray(ds['train']['label'])
    means = np.stack([images[labels == k].mean(0) for k in range(8)])
    assert images.std() > 20
    assert np.abs(means - means.mean(0)).mean() > 1


def test_bad_options():
    with pytest.raises(TypeError, match='unknown options'):
        load_fer_dataset('synthetic', data_size=3)
    with pytest.raises(ValueError, match='num_classes'):
        load_fer_dataset('synthetic', num_samples=8, num_classes=9)
    with pytest.raises(ValueError, match='takes no data_dir'):
        load_fer_dataset('synthetic', '/data')
    with pytest.raises(ValueError, match='unknown FER data set'):
        load_fer_dataset('fer2014')


def test_only_the_splits_asked_are_built(small, tmp_path):
    """What the evaluation script uses: only the split it evaluates is drawn, and it is the same split."""
    _, full = small
    validation = load_fer_dataset('synthetic', num_samples=64, image_size=40, num_classes=8, seed=5,
                                  cache_dir=str(tmp_path), splits=['validation'])
    assert list(validation) == ['validation']
    assert validation['validation']['file'] == full['validation']['file']
    assert validation['validation'][0]['image'].tobytes() == full['validation'][0]['image'].tobytes()
    assert not list(tmp_path.rglob('*train*'))  # nothing of the train split was generated
    with pytest.raises(ValueError, match=r"synthetic has the splits \['train', 'validation'\], not \['test'\]"):
        load_fer_dataset('synthetic', splits=['test'])
