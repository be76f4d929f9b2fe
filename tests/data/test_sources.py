"""The real FER loaders on tiny fixture trees in each official layout (built here, a handful of rows each)."""
import csv
import warnings

import numpy as np
import pytest
from PIL import Image

from timm_dan import LABELS
from timm_dan.data import FER_DATASETS, BadImagesError, load_fer_dataset

NEUTRAL, HAPPY, SAD, SURPRISE, FEAR, DISGUST, ANGER, CONTEMPT = range(8)


def _image(path, size=(24, 20), value=None, fmt=None):
    """A small image whose pixel (x, y) is (x, y, value): crops can be checked exactly (PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    rgb = np.stack([x, y, np.full_like(x, value if value is not None else len(path.name))], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path, format=fmt)
    return rgb


def _load(name, root, tmp_path, **options):
    return load_fer_dataset(name, root, cache_dir=str(tmp_path / 'cache'), return_report=True, **options)


def _by_file(split):
    return {row['file']: row for row in split}


# ---------------------------------------------------------------- RAF-DB

RAF_LINES = ['train_00001.jpg 1', 'train_00002.jpg 4', 'train_00003.jpg 7', 'test_0001.jpg 5', 'test_0002.jpg 6']


@pytest.fixture
def rafdb(tmp_path):
    root = tmp_path / 'RAF-DB' / 'basic'
    (root / 'EmoLabel').mkdir(parents=True)
    # Windows line ends and a byte-order mark, as some copies have
    (root / 'EmoLabel' / 'list_patition_label.txt').write_text('\ufeff' + '\r\n'.join(RAF_LINES) + '\r\n')
    for line in RAF_LINES:
        stem = line.split()[0][:-4]
        _image(root / 'Image' / 'aligned' / f'{stem}_aligned.jpg', (10, 10), fmt='JPEG')
        _image(root / 'Image' / 'original' / f'{stem}.jpg', (30, 20), fmt='JPEG')
    return root


def test_rafdb_splits_and_canonical_labels(rafdb, tmp_path):
    ds, report = _load('rafdb', rafdb, tmp_path)
    assert {s: ds[s].num_rows for s in ds} == {'train': 3, 'test': 2}
    assert ds['train'].features['label'].names == list(LABELS[:7])
    rows = {**_by_file(ds['train']), **_by_file(ds['test'])}
    # file labels are 1-based in RAF-DB's own order
    assert {f: (r['source_label'], r['label']) for f, r in rows.items()} == {
        'train_00001.jpg': (1, SURPRISE), 'train_00002.jpg': (4, HAPPY), 'train_00003.jpg': (7, NEUTRAL),
        'test_0001.jpg': (5, SAD), 'test_0002.jpg': (6, ANGER)}
    assert rows['train_00001.jpg']['image'].size == (10, 10)
    assert report.kept == {'train': 3, 'test': 2} and report.total('missing') == report.total('corrupt') == 0


def test_one_split_is_cached_apart_from_the_whole_set(rafdb, tmp_path):
    test_only, report = _load('rafdb', rafdb, tmp_path, splits=['test'])
    assert list(test_only) == ['test'] and test_only['test'].num_rows == 2 and report.kept == {'test': 2}
    # a later full load is not answered by the test-only cache, nor the other way round
    full, _ = _load('rafdb', rafdb, tmp_path)
    assert {s: full[s].num_rows for s in full} == {'train': 3, 'test': 2}
    again, _ = _load('rafdb', rafdb, tmp_path, splits=['test'])
    assert list(again) == ['test']
    with pytest.raises(ValueError, match="has the splits"):
        _load('rafdb', rafdb, tmp_path, splits=['validation'])


def test_rafdb_original_images(rafdb, tmp_path):
    ds, _ = _load('rafdb', rafdb, tmp_path, aligned=False)
    assert ds['test'][0]['image'].size == (30, 20)


def test_rafdb_missing_label_file_shows_layout(tmp_path):
    (tmp_path / 'raf').mkdir()
    with pytest.raises(FileNotFoundError) as e:
        load_fer_dataset('rafdb', tmp_path / 'raf')
    assert 'list_patition_label.txt' in str(e.value) and str(tmp_path / 'raf') in str(e.value)
    assert FER_DATASETS['rafdb'].layout in str(e.value)
    with pytest.raises(FileNotFoundError, match='nowhere'):
        load_fer_dataset('rafdb', tmp_path / 'nowhere')


@pytest.mark.parametrize('line, message', [
    ('train_00004.jpg', r'list_patition_label.txt:6: expected "train_00001.jpg 5"'),
    ('val_0001.jpg 3', r'list_patition_label.txt:6: expected'),
    ('train_00004.jpg 8', r'list_patition_label.txt:6: unknown label code 8'),
    ('train_00004.jpg x', r'list_patition_label.txt:6: expected an integer label code'),
])
def test_rafdb_bad_lines_name_file_and_line(rafdb, tmp_path, line, message):
    label_file = rafdb / 'EmoLabel' / 'list_patition_label.txt'
    label_file.write_text(label_file.read_text() + line + '\n')
    with pytest.raises(ValueError, match=message):
        _load('rafdb', rafdb, tmp_path)


def test_rafdb_missing_and_corrupt_images(rafdb, tmp_path):
    (rafdb / 'Image' / 'aligned' / 'train_00002_aligned.jpg').unlink()
    truncated = rafdb / 'Image' / 'aligned' / 'test_0001_aligned.jpg'
    truncated.write_bytes(truncated.read_bytes()[:120])
    (rafdb / 'Image' / 'aligned' / 'test_0002_aligned.jpg').write_text('not an image')
    with pytest.raises(BadImagesError) as e:
        _load('rafdb', rafdb, tmp_path)
    message = str(e.value)
    assert '1 missing and 2 undecodable' in message and 'train_00002_aligned.jpg' in message
    assert 'test_0001_aligned.jpg' in message and 'test_0002_aligned.jpg' in message and "on_bad='skip'" in message
    with pytest.warns(UserWarning, match='train_00002_aligned.jpg'):
        ds, report = _load('rafdb', rafdb, tmp_path, on_bad='skip')
    assert {s: ds[s].num_rows for s in ds} == {'train': 2, 'test': 0}
    assert report.missing['train'] == [str(rafdb / 'Image' / 'aligned' / 'train_00002_aligned.jpg')]
    assert len(report.corrupt['test']) == 2
    # the error also holds on a cache hit
    with pytest.raises(BadImagesError):
        _load('rafdb', rafdb, tmp_path)


def test_cache_follows_label_file_edits(rafdb, tmp_path):
    ds, _ = _load('rafdb', rafdb, tmp_path)
    again, _ = _load('rafdb', rafdb, tmp_path)
    assert again['train'].cache_files == ds['train'].cache_files  # reused
    label_file = rafdb / 'EmoLabel' / 'list_patition_label.txt'
    label_file.write_text(label_file.read_text().replace('train_00002.jpg 4', 'train_00002.jpg 3'))
    edited, _ = _load('rafdb', rafdb, tmp_path)
    assert edited['train'].cache_files != ds['train'].cache_files
    assert _by_file(edited['train'])['train_00002.jpg']['label'] == DISGUST
    # replacing an image (new size and mtime) is seen too
    _image(rafdb / 'Image' / 'aligned' / 'train_00001_aligned.jpg', (16, 16), fmt='JPEG')
    replaced, _ = _load('rafdb', rafdb, tmp_path)
    assert _by_file(replaced['train'])['train_00001.jpg']['image'].size == (16, 16)


# ---------------------------------------------------------------- AffectNet, full release

AFFECTNET_HEADER = ['subDirectory_filePath', 'face_x', 'face_y', 'face_width', 'face_height', 'facial_landmarks',
                    'expression', 'valence', 'arousal']


@pytest.fixture
def affectnet_full(tmp_path):
    root = tmp_path / 'AffectNet'
    lists = root / 'Manually_Annotated_file_lists'
    lists.mkdir(parents=True)
    rows = {'train': [], 'validation': []}
    for i, expression in enumerate([0, 1, 7, 8, 9, 10, 6]):
        rows['train'].append([f'{i}/img{i}.png', 2, 3, 10, 8, '1.5;2.5;3;4', expression, 0.25, -0.5])
    for i, expression in enumerate([2, 3]):
        rows['validation'].append([f'v/val{i}.png', 0, 0, 5, 5, '', expression, -1, 1])
    for split, name, header in (('train', 'training.csv', True), ('validation', 'validation.csv', False)):
        with open(lists / name, 'w', newline='') as f:
            writer = csv.writer(f)
            if header:
                writer.writerow(AFFECTNET_HEADER)
            writer.writerows(rows[split])
        for row in rows[split]:
            _image(root / 'Manually_Annotated_Images' / row[0], (24, 20), value=7)
    return root


def test_affectnet_full_release(affectnet_full, tmp_path):
    ds, report = _load('affectnet', affectnet_full, tmp_path)
    assert {s: ds[s].num_rows for s in ds} == {'train': 4, 'validation': 2}
    assert ds['train'].features['label'].names == list(LABELS)
    assert sorted(ds['train']['label']) == [NEUTRAL, HAPPY, ANGER, CONTEMPT]
    assert report.dropped['train'] == {'code 8 (none)': 1, 'code 9 (uncertain)': 1, 'code 10 (no-face)': 1}
    row = _by_file(ds['train'])['0/img0.png']
    assert row['bbox'] == [2, 3, 10, 8] and row['landmarks'] == [1.5, 2.5, 3.0, 4.0]
    assert row['valence'] == 0.25 and row['arousal'] == -0.5
    crop = np.asarray(row['image'])  # the face box, cut from the (x, y, 7) test pattern
    assert crop.shape == (8, 10, 3)
    assert crop[0, 0].tolist() == [2, 3, 7] and crop[-1, -1].tolist() == [11, 10, 7]
    assert sorted(ds['validation']['label']) == [SAD, SURPRISE]


def test_affectnet_seven_classes_drops_contempt_counted(affectnet_full, tmp_path):
    ds, report = _load('affectnet', affectnet_full, tmp_path, num_classes=7)
    assert ds['train'].features['label'].names == list(LABELS[:7])
    assert sorted(ds['train']['label']) == [NEUTRAL, HAPPY, ANGER]
    assert report.dropped['train']['contempt (num_classes=7)'] == 1


def test_affectnet_full_bad_rows(affectnet_full, tmp_path):
    path = affectnet_full / 'Manually_Annotated_file_lists' / 'validation.csv'
    path.write_text(path.read_text() + 'v/x.png,0,0,5,5,,11,0,0\n')
    with pytest.raises(ValueError, match=r'validation.csv:3: unknown label code 11'):
        _load('affectnet', affectnet_full, tmp_path)
    path.write_text('v/x.png,0,0,5,5,1;a,2,0,0\n')
    with pytest.raises(ValueError, match=r'validation.csv:1: expected landmarks as numbers'):
        _load('affectnet', affectnet_full, tmp_path)
    path.write_text('v/x.png,0,0,5\n')
    with pytest.raises(ValueError, match=r'validation.csv:1: expected 9 columns'):
        _load('affectnet', affectnet_full, tmp_path)


# ---------------------------------------------------------------- AffectNet, compact release

@pytest.fixture
def affectnet_compact(tmp_path):
    root = tmp_path / 'affectnet_compact'
    for split, codes in (('train_set', ['3', 7, 8, 0]), ('val_set', [5, '6'])):
        for i, value in enumerate(codes):
            _image(root / split / 'images' / f'{i}.jpg', (12, 12), fmt='JPEG')
            (root / split / 'annotations').mkdir(parents=True, exist_ok=True)
            np.save(root / split / 'annotations' / f'{i}_exp.npy', np.array(value))
            np.save(root / split / 'annotations' / f'{i}_val.npy', np.array(str(0.1 * i)))
            np.save(root / split / 'annotations' / f'{i}_aro.npy', np.array(-0.2))
    np.save(root / 'train_set' / 'annotations' / '0_lnd.npy', np.arange(136, dtype=np.float64))
    _image(root / 'train_set' / 'images' / '99.jpg', (12, 12), fmt='JPEG')  # no annotation
    return root


def test_affectnet_compact_release(affectnet_compact, tmp_path):
    ds, report = _load('affectnet', affectnet_compact, tmp_path)
    assert {s: ds[s].num_rows for s in ds} == {'train': 3, 'validation': 2}
    rows = _by_file(ds['train'])
    assert rows['train_set/images/0.jpg']['label'] == SURPRISE  # code stored as the string '3'
    assert rows['train_set/images/1.jpg']['label'] == CONTEMPT
    assert rows['train_set/images/0.jpg']['landmarks'] == list(range(136))
    assert rows['train_set/images/3.jpg']['valence'] == pytest.approx(0.3)
    assert rows['train_set/images/3.jpg']['arousal'] == pytest.approx(-0.2)
    assert sorted(ds['validation']['label']) == [DISGUST, ANGER]
    assert report.dropped['train'] == {'code 8 (none)': 1, 'image without N_exp.npy': 1}


def test_affectnet_compact_bad_annotation(affectnet_compact, tmp_path):
    np.save(affectnet_compact / 'val_set' / 'annotations' / '1_exp.npy', np.array(12))
    with pytest.raises(ValueError, match=r'1_exp.npy:1: unknown label code 12'):
        _load('affectnet', affectnet_compact, tmp_path)
    np.save(affectnet_compact / 'val_set' / 'annotations' / '1_exp.npy', np.array('happy'))
    with pytest.raises(ValueError, match=r'1_exp.npy: expected a number'):
        _load('affectnet', affectnet_compact, tmp_path)


def test_affectnet_unknown_layout(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='Manually_Annotated_file_lists'):
        load_fer_dataset('affectnet', tmp_path / 'empty')
    with pytest.raises(ValueError, match='num_classes must be 7 or 8'):
        load_fer_dataset('affectnet', tmp_path / 'empty', num_classes=6)


# ---------------------------------------------------------------- SFEW 2.0

@pytest.fixture
def sfew(tmp_path):
    root = tmp_path / 'SFEW_2'
    for folder, n in (('Train/Angry', 2), ('Train/happy', 1), ('Train/SADNESS', 1), ('Val/Neutral', 1),
                      ('Val/surprise', 2)):
        for i in range(n):
            _image(root / folder / f'{folder.split("/")[1]}_{i}.png', (8, 8))
    (root / 'Train' / 'Angry' / 'Thumbs.db').write_bytes(b'\0')
    return root


def test_sfew_mixed_case_and_synonym_folders(sfew, tmp_path):
    ds, report = _load('sfew', sfew, tmp_path)
    assert {s: ds[s].num_rows for s in ds} == {'train': 4, 'validation': 3}
    assert sorted(ds['train']['label']) == [HAPPY, SAD, ANGER, ANGER]
    assert sorted(ds['validation']['label']) == [NEUTRAL, SURPRISE, SURPRISE]
    assert _by_file(ds['train'])['Train/SADNESS/SADNESS_0.png']['source_label'] == 'SADNESS'
    assert report.dropped['train'] == {'not an image file (Angry)': 1}


def test_sfew_contempt_folder_is_dropped_and_counted(sfew, tmp_path):
    for i in range(2):  # some circulating copies carry an eighth class folder
        _image(sfew / 'Train' / 'Contempt' / f'c_{i}.png', (8, 8))
    ds, report = _load('sfew', sfew, tmp_path)
    assert ds['train'].num_rows == 4 and CONTEMPT not in ds['train']['label']
    assert report.dropped['train'] == {'not an image file (Angry)': 1, 'Contempt (num_classes=7)': 2}


def test_sfew_unknown_folder_and_missing_split(sfew, tmp_path):
    (sfew / 'Val' / 'Bored').mkdir()
    with pytest.raises(ValueError, match=r"Val/Bored: unknown class folder 'Bored'; expected one of Angry, Disgust"):
        _load('sfew', sfew, tmp_path)
    (sfew / 'Val' / 'Bored').rmdir()
    (sfew / 'Val').rename(sfew / 'Test')
    with pytest.raises(FileNotFoundError, match='Val'):
        _load('sfew', sfew, tmp_path)


def test_sfew_added_image_gives_fresh_dataset(sfew, tmp_path):
    ds, _ = _load('sfew', sfew, tmp_path)
    _image(sfew / 'Val' / 'Neutral' / 'new.png', (8, 8))
    again, _ = _load('sfew', sfew, tmp_path)
    assert again['validation'].num_rows == ds['validation'].num_rows + 1


# ---------------------------------------------------------------- FER2013 and FERPlus

def _pixels(value):
    return ' '.join([str(value)] * 2304)


FER_ROWS = [(0, 10, 'Training'), (3, 20, 'Training'), (6, 30, 'PublicTest'), (5, 40, 'PrivateTest'),
            (2, 50, 'Training'), (1, 60, 'Training'), (4, 70, 'PrivateTest')]


@pytest.fixture
def fer2013(tmp_path):
    root = tmp_path / 'fer'
    root.mkdir()
    with open(root / 'fer2013.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['emotion', 'pixels', 'Usage'])
        writer.writerows([(e, _pixels(v), u) for e, v, u in FER_ROWS])
    return root


def test_fer2013(fer2013, tmp_path):
    ds, _ = _load('fer2013', fer2013, tmp_path)
    assert {s: ds[s].num_rows for s in ds} == {'train': 4, 'validation': 1, 'test': 2}
    rows = _by_file(ds['train'])
    assert rows['fer2013.csv:2']['label'] == ANGER and rows['fer2013.csv:2']['source_label'] == 0
    assert rows['fer2013.csv:3']['label'] == HAPPY
    assert ds['validation'][0]['label'] == NEUTRAL and sorted(ds['test']['label']) == [SAD, SURPRISE]
    image = rows['fer2013.csv:3']['image']
    assert image.size == (48, 48) and np.asarray(image.convert('L')).max() == 20


def test_fer2013_bad_rows(fer2013, tmp_path):
    path = fer2013 / 'fer2013.csv'
    path.write_text(path.read_text() + '7,' + _pixels(1) + ',Training\n')
    with pytest.raises(ValueError, match=r'fer2013.csv:9: unknown label code 7'):
        _load('fer2013', fer2013, tmp_path)
    path.write_text('emotion,pixels,Usage\n1,1 2 3,Training\n')
    with pytest.raises(ValueError, match=r'fer2013.csv:2: expected 2304 pixel values'):
        _load('fer2013', fer2013, tmp_path)


FERPLUS_VOTES = {  # votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    'fer0000000.png': [0, 0, 0, 0, 6, 0, 2, 0, 2, 0],   # anger
    'fer0000001.png': [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],  # happiness
    'fer0000002.png': [4, 0, 0, 0, 0, 0, 0, 4, 2, 0],   # tie: dropped
    'fer0000003.png': [0, 0, 0, 0, 0, 0, 0, 0, 7, 3],   # unknown majority: dropped
    'fer0000004.png': [0, 0, 3, 0, 0, 0, 0, 0, 0, 7],   # NF majority: dropped
    '': [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],                # blank name: removed by FERPlus
    'fer0000006.png': [3, 1, 0, 1, 0, 1, 0, 3, 1, 0],   # single votes are outliers: contempt 3 vs neutral 3, tie
}


def test_ferplus_majority_vote(fer2013, tmp_path):
    with open(fer2013 / 'fer2013new.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['Usage', 'Image name'] + ['neutral', 'happiness', 'surprise', 'sadness', 'anger', 'disgust',
                                                     'fear', 'contempt', 'unknown', 'NF'])
        for (name, votes), (_, _, usage) in zip(FERPLUS_VOTES.items(), FER_ROWS, strict=True):
            writer.writerow([usage, name] + votes)
    ds, report = _load('ferplus', fer2013, tmp_path)
    assert ds['train'].features['label'].names == list(LABELS)
    rows = {**_by_file(ds['train']), **_by_file(ds['validation']), **_by_file(ds['test'])}
    assert sorted(rows) == ['fer0000000.png', 'fer0000001.png']
    assert rows['fer0000000.png']['label'] == ANGER and rows['fer0000001.png']['label'] == HAPPY
    soft = rows['fer0000000.png']['soft_label']  # canonical order; unknown votes excluded
    assert soft == pytest.approx([0, 0, 0, 0, 0.25, 0, 0.75, 0])
    assert report.dropped == {
        'train': {'NF majority': 1, 'no image name (removed by FERPlus)': 1},
        'validation': {'no majority (tie or spread votes)': 1},
        'test': {'unknown majority': 1, 'no majority (tie or spread votes)': 1}}
    # rows must match fer2013.csv one for one
    path = fer2013 / 'fer2013new.csv'
    path.write_text(''.join(path.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(ValueError, match='must match row for row'):
        _load('ferplus', fer2013, tmp_path)


# ---------------------------------------------------------------- ExpW

@pytest.fixture
def expw(tmp_path):
    root = tmp_path / 'ExpW'
    lines = []
    for i in range(30):
        name = f'img_{i // 2:03d}.jpg'
        if i % 2 == 0:
            _image(root / 'image' / 'origin' / name, (40, 30), value=9)
        # top left right bottom
        lines.append(f'{name} {i % 2} {2 + i % 2} 4 20 18 {0.9:.2f} {i % 3 * 3}')
    (root / 'label').mkdir(parents=True)
    (root / 'label' / 'label.lst').write_text('\n'.join(lines) + '\n')
    return root


def test_expw_boxes_and_stratified_split(expw, tmp_path):
    ds, _ = _load('expw', expw, tmp_path, seed=1)
    assert {s: ds[s].num_rows for s in ds} == {'train': 24, 'validation': 3, 'test': 3}
    for split in ds:  # codes 0, 3, 6 = anger, happy, neutral, ten each: 8/1/1 per class
        counts = np.bincount(ds[split]['label'], minlength=7)
        assert counts[[ANGER, HAPPY, NEUTRAL]].tolist() == [{'train': 8}.get(split, 1)] * 3
    row = _by_file(ds['train'].select(range(24)))
    first = row.get('img_000.jpg#0') or _by_file(ds['validation']).get('img_000.jpg#0') or \
        _by_file(ds['test'])['img_000.jpg#0']
    assert first['bbox'] == [4, 2, 16, 16] and first['label'] == ANGER and first['confidence'] == pytest.approx(0.9)
    crop = np.asarray(first['image'])  # JPEG re-encoded: compare loosely
    assert crop.shape == (16, 16, 3) and abs(int(crop[0, 0, 0]) - 4) <= 3 and abs(int(crop[0, 0, 1]) - 2) <= 3
    same, _ = _load('expw', expw, tmp_path, seed=1)
    other, _ = _load('expw', expw, tmp_path, seed=2)
    assert same['test']['file'] == ds['test']['file'] and other['test']['file'] != ds['test']['file']


def test_expw_bad_line(expw, tmp_path):
    path = expw / 'label' / 'label.lst'
    path.write_text(path.read_text() + 'img_000.jpg 0 1 2 3\n')
    with pytest.raises(ValueError, match=r'label.lst:31: expected "image_name face_id'):
        _load('expw', expw, tmp_path)


def test_registry_and_option_errors(tmp_path):
    assert set(FER_DATASETS) == {'rafdb', 'affectnet', 'sfew', 'fer2013', 'ferplus', 'expw', 'synthetic'}
    assert all(info.citation and info.layout and info.splits for info in FER_DATASETS.values())
    with pytest.raises(TypeError, match='unknown options for rafdb'):
        load_fer_dataset('rafdb', tmp_path, num_classes=8)
    with pytest.raises(ValueError, match='needs data_dir'):
        load_fer_dataset('sfew')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(ValueError, match='on_bad'):
            load_fer_dataset('sfew', tmp_path, on_bad='ignore')
