"""The cache at scale: a cache hit stats a bounded number of paths and reads no label file, whatever the number of
images; the first scan stats each image once; what each verification mode sees. On generated AffectNet trees
(the full release's layout, empty image files: `benchmarks/million_files.py` writes them)."""
import json

import pytest

from benchmarks.million_files import IMAGES, LISTS, write_affectnet_tree
from timm_dan.data import builder, load_fer_dataset
from timm_dan.data.sources import affectnet

SAMPLE = 40


@pytest.fixture(autouse=True)
def empty_images_and_a_small_sample(monkeypatch):
    """The images are empty files: keep their paths instead of decoding them; a smaller sample than the default."""
    monkeypatch.setattr(builder, '_checked_image', lambda record: {'bytes': None, 'path': record['path']})
    monkeypatch.setattr(builder, 'SAMPLED_IMAGES', SAMPLE)


def _counting(monkeypatch, name):
    calls = []
    original = getattr(builder, name)

    def counted(path):
        calls.append(path)
        return original(path)
    monkeypatch.setattr(builder, name, counted)
    return calls


def _load(root, tmp_path, **kwargs):
    return load_fer_dataset('affectnet', root, cache_dir=str(tmp_path / 'cache'), **kwargs)


def _scan_forbidden(*args, **kwargs):
    raise AssertionError('a cache hit read the label files')


@pytest.mark.parametrize('num_files', [200, 2000])
def test_a_cache_hit_stats_a_bounded_number_of_paths_whatever_the_size(tmp_path, monkeypatch, num_files):
    root = write_affectnet_tree(tmp_path / 'AffectNet', num_files, num_folders=4)
    first = _counting(monkeypatch, '_stat')
    built = _load(root, tmp_path)
    assert sum(ds.num_rows for ds in built.values()) == num_files
    assert len(first) == num_files and len(set(first)) == num_files  # the first scan: each image stat'ed once

    monkeypatch.setattr(affectnet, '_scan_full', _scan_forbidden)
    per_image = _counting(monkeypatch, '_stat')
    watched = _counting(monkeypatch, '_watch_stat')
    again = _load(root, tmp_path)
    assert again['train'].cache_files == built['train'].cache_files
    assert per_image == []
    # 2 label files, 4 image folders and their parent, SAMPLE images: the same for 200 and 2000 images
    assert len(watched) == 2 + 5 + SAMPLE
    assert sum(str(path).endswith('.jpg') for path in watched) == SAMPLE


def test_what_each_verification_mode_sees(tmp_path, monkeypatch):
    root = write_affectnet_tree(tmp_path / 'AffectNet', 300, num_folders=3)
    built = _load(root, tmp_path)
    (index_file,) = (tmp_path / 'cache' / 'timm_dan' / 'affectnet' / 'index').glob('*.json')
    sampled = {path for path, _ in json.loads(index_file.read_text())['watched']}
    unsampled = next(p for p in sorted((root / IMAGES / '1').iterdir()) if str(p) not in sampled)

    # an image rewritten in place, not among the sampled ones: the quick check keeps the cache, a full check sees it
    unsampled.write_bytes(b'new content')
    assert _load(root, tmp_path)['train'].cache_files == built['train'].cache_files
    rechecked = _load(root, tmp_path, verification_mode='all_checks')
    assert rechecked['train'].cache_files != built['train'].cache_files
    with monkeypatch.context() as patch:  # the environment variable: the same for every load of a process
        patch.setenv(builder.VERIFICATION_ENV, 'all_checks')
        patch.setattr(affectnet, '_scan_full', _scan_forbidden)
        with pytest.raises(AssertionError, match='read the label files'):
            _load(root, tmp_path)

    # a label file edited: seen at once
    labels = root / LISTS / 'training.csv'
    lines = labels.read_text().splitlines(keepends=True)
    labels.write_text(''.join(lines[:-1]))
    edited = _load(root, tmp_path)
    assert edited['train'].num_rows == rechecked['train'].num_rows - 1
    # an image removed from its folder: seen (the folder changed), and reported missing
    removed = next((root / IMAGES / '2').iterdir())  # a training image (validation: every 200th)
    removed.unlink()
    with pytest.warns(UserWarning, match=removed.name):
        _, report = _load(root, tmp_path, on_bad='skip', return_report=True)
    assert report.missing['train'] + report.missing['validation'] == [str(removed)]
    # no_checks: the last build, whatever changed since
    labels.write_text(''.join(lines))
    with pytest.warns(UserWarning, match=removed.name):
        trusted = _load(root, tmp_path, on_bad='skip', verification_mode='no_checks')
    assert trusted['train'].num_rows == edited['train'].num_rows - 1

    with pytest.raises(ValueError, match="verification_mode must be one of basic_checks, all_checks, no_checks"):
        _load(root, tmp_path, verification_mode='some_checks')
