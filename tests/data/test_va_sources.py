"""Valence/arousal and demographic annotations in the loaders: AffectNet's -2, RAF-DB's manual annotations, the
synthetic faces' circumplex ground truth, and the targets through the batched pipeline."""
import csv
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from timm_dan.data import BatchCollate, load_fer_dataset, prepare_dataset
from timm_dan.data.synthetic import CIRCUMPLEX, PROTOTYPES

HEADER = ['subDirectory_filePath', 'face_x', 'face_y', 'face_width', 'face_height', 'facial_landmarks',
          'expression', 'valence', 'arousal']


def _image(path, size=(16, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(path)


def _load(name, root, tmp_path, **options):
    return load_fer_dataset(name, root, cache_dir=str(tmp_path / 'cache'), return_report=True, **options)


# ---------------------------------------------------------------- AffectNet

def _affectnet(root, train_rows, validation_rows=(('v/a.png', 2, 0.5, 0.5),)):
    """The full release: csv lists in the published column order, one image per row."""
    lists = root / 'Manually_Annotated_file_lists'
    lists.mkdir(parents=True)
    for name, rows in (('training.csv', train_rows), ('validation.csv', validation_rows)):
        with open(lists / name, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(HEADER)
            for file, expression, valence, arousal in rows:
                writer.writerow([file, 0, 0, 16, 16, '', expression, valence, arousal])
                _image(root / 'Manually_Annotated_Images' / file)
    return root


def test_affectnet_minus_two_is_missing_and_codes_8_to_10_are_dropped_by_reason(tmp_path):
    # as published: uncertain (9) and no-face (10) carry -2; none (8) has valence/arousal but no class
    root = _affectnet(tmp_path / 'AffectNet', [
        ('1/a.png', 1, 0.75, 0.25), ('1/b.png', 3, -2, -2), ('1/c.png', 8, 0.1, 0.2), ('1/d.png', 9, -2, -2),
        ('1/e.png', 10, -2, -2), ('1/f.png', 6, -0.5, 1.0),
    ])
    ds, report = _load('affectnet', root, tmp_path)
    rows = {r['file']: r for r in ds['train']}
    assert set(rows) == {'1/a.png', '1/b.png', '1/f.png'}
    assert (rows['1/a.png']['valence'], rows['1/a.png']['arousal']) == (0.75, 0.25)
    assert rows['1/b.png']['valence'] is None and rows['1/b.png']['arousal'] is None  # -2: none given
    assert (rows['1/f.png']['valence'], rows['1/f.png']['arousal']) == (-0.5, 1.0)
    assert report.dropped['train'] == {'code 8 (none)': 1, 'code 9 (uncertain)': 1, 'code 10 (no-face)': 1}
    assert report.kept['train'] == 3 and sum(report.dropped['train'].values()) + report.kept['train'] == 6


@pytest.mark.parametrize('valence, arousal, message', [
    (1.5, 0, r'training.csv:2: expected valence in \[-1, 1\] \(or -2: not annotated\), got 1.5'),
    (0, -1.01, r'training.csv:2: expected arousal in \[-1, 1\]'),
    (0, 'x', r"training.csv:2: expected a number \(arousal\), got 'x'"),
])
def test_affectnet_valence_arousal_out_of_range_names_file_and_line(tmp_path, valence, arousal, message):
    root = _affectnet(tmp_path / 'AffectNet', [('1/a.png', 1, valence, arousal)])
    with pytest.raises(ValueError, match=message):
        _load('affectnet', root, tmp_path)


def test_affectnet_compact_minus_two_is_missing(tmp_path):
    root = tmp_path / 'compact'
    for split in ('train_set', 'val_set'):
        for i, (code, valence) in enumerate([(1, 0.5), (2, -2.0)]):
            _image(root / split / 'images' / f'{i}.jpg')
            (root / split / 'annotations').mkdir(parents=True, exist_ok=True)
            np.save(root / split / 'annotations' / f'{i}_exp.npy', np.array(code))
            np.save(root / split / 'annotations' / f'{i}_val.npy', np.array(valence))
            np.save(root / split / 'annotations' / f'{i}_aro.npy', np.array(-2.0 if valence == -2 else 0.25))
    ds, _ = _load('affectnet', root, tmp_path)
    rows = {r['file']: r for r in ds['validation']}
    assert rows['val_set/images/0.jpg']['valence'] == 0.5 and rows['val_set/images/0.jpg']['arousal'] == 0.25
    assert rows['val_set/images/1.jpg']['valence'] is None and rows['val_set/images/1.jpg']['arousal'] is None
    np.save(root / 'train_set' / 'annotations' / '0_aro.npy', np.array(3.0))
    with pytest.raises(ValueError, match=r'0_aro.npy: expected arousal in \[-1, 1\]'):
        _load('affectnet', root, tmp_path)


# ---------------------------------------------------------------- RAF-DB's manual annotations

def _manual(gender, race, age, landmarks=((35.2, 40.1), (60.0, 39.5), (48.4, 55.0), (38.0, 70.2), (58.9, 69.8))):
    """An `<image>_manu_attri.txt` as distributed: five "x<TAB>y" lines, then gender, race, age (and a blank line)."""
    return ''.join(f'{x}\t{y}\n' for x, y in landmarks) + f'{gender}\n{race}\n{age}\n\n'


RAF_LINES = {'train_00001.jpg': 1, 'train_00002.jpg': 4, 'test_0001.jpg': 5, 'test_0002.jpg': 7}
ATTRIBUTES = {'train_00001': (0, 0, 2), 'train_00002': (1, 2, 1), 'test_0001': (2, 1, 4), 'test_0002': (1, 0, 0)}


@pytest.fixture
def rafdb(tmp_path):
    root = tmp_path / 'RAF-DB' / 'basic'
    (root / 'EmoLabel').mkdir(parents=True)
    (root / 'EmoLabel' / 'list_patition_label.txt').write_text(
        ''.join(f'{name} {label}\n' for name, label in RAF_LINES.items()))
    manual = root / 'Annotation' / 'manual'
    manual.mkdir(parents=True)
    for stem, attributes in ATTRIBUTES.items():
        _image(root / 'Image' / 'aligned' / f'{stem}_aligned.jpg', (10, 10))
        (manual / f'{stem}_manu_attri.txt').write_text(_manual(*attributes))
    return root


def test_rafdb_manual_annotations_become_class_label_columns(rafdb, tmp_path):
    ds, _ = _load('rafdb', rafdb, tmp_path)
    features = ds['test'].features
    assert features['gender'].names == ['male', 'female', 'unsure']
    assert features['race'].names == ['Caucasian', 'African-American', 'Asian']
    assert features['age'].names == ['0-3', '4-19', '20-39', '40-69', '70+']
    rows = {r['file']: r for split in ds.values() for r in split}
    for stem, (gender, race, age) in ATTRIBUTES.items():
        row = rows[f'{stem}.jpg']
        assert (row['gender'], row['race'], row['age']) == (gender, race, age)
    assert features['age'].int2str(rows['test_0001.jpg']['age']) == '70+'
    np.testing.assert_allclose(rows['train_00001.jpg']['landmarks'],
                               [35.2, 40.1, 60.0, 39.5, 48.4, 55.0, 38.0, 70.2, 58.9, 69.8], rtol=1e-6)
    # without the folder, or with attributes=False, there are no such columns
    plain, _ = _load('rafdb', rafdb, tmp_path, attributes=False)
    assert 'gender' not in plain['train'].column_names


@pytest.mark.parametrize('content, message', [
    (_manual(3, 0, 0), r'test_0002_manu_attri.txt:6: unknown label code 3 \(valid: 0..2 = gender: 0 male, 1 female'),
    (_manual(0, 0, 5), r'test_0002_manu_attri.txt:8: unknown label code 5 \(valid: 0..4 = age'),
    (_manual(0, 'Asian', 0), r"test_0002_manu_attri.txt:7: expected an integer label code \(race: 0 Caucasian"),
    ('1.0\t2.0\n' * 5 + '0\n1\n', r'test_0002_manu_attri.txt:8: expected 8 lines'),
    ('1.0 2.0 3.0\n' + '1.0\t2.0\n' * 4 + '0\n0\n0\n', r"test_0002_manu_attri.txt:1: expected a landmark"),
    ('1.0\tx\n' + '1.0\t2.0\n' * 4 + '0\n0\n0\n', r"test_0002_manu_attri.txt:1: expected a landmark coordinate"),
])
def test_rafdb_malformed_manual_annotation_names_file_and_line(rafdb, tmp_path, content, message):
    (rafdb / 'Annotation' / 'manual' / 'test_0002_manu_attri.txt').write_text(content)
    with pytest.raises(ValueError, match=message):
        _load('rafdb', rafdb, tmp_path)


def test_rafdb_missing_manual_annotation_and_unpacked_zip(rafdb, tmp_path):
    (rafdb / 'Annotation' / 'manual' / 'train_00002_manu_attri.txt').unlink()
    with pytest.raises(FileNotFoundError, match=r'1 image\(s\) .* no manual annotation .*train_00002_manu_attri.txt'
                                                 r'.*attributes=False'):
        _load('rafdb', rafdb, tmp_path)
    (rafdb / 'Annotation' / 'manual').rename(rafdb / 'Annotation' / 'elsewhere')
    (rafdb / 'Annotation' / 'manual.zip').write_bytes(b'PK')
    with pytest.warns(UserWarning, match='manual.zip is not unpacked'):
        ds, _ = _load('rafdb', rafdb, tmp_path)
    assert 'gender' not in ds['train'].column_names


# ---------------------------------------------------------------- the synthetic faces

def test_synthetic_valence_arousal_follow_the_circumplex_and_intensity(tmp_path):
    ds = load_fer_dataset('synthetic', num_samples=80, image_size=32, cache_dir=str(tmp_path))
    names = ds['train'].features['label'].names
    va = np.stack([ds['train']['valence'], ds['train']['arousal']], 1)
    labels = np.asarray(ds['train']['label'])
    assert np.abs(va).max() <= 1
    for k, name in enumerate(names):
        rows = va[labels == k]
        if name == 'neutral':
            assert np.abs(rows).max() == 0
            continue
        radius = np.hypot(rows[:, 0], rows[:, 1])
        angle = np.degrees(np.arctan2(rows[:, 1], rows[:, 0])) % 360
        assert radius.min() >= 0.75 - 1e-6 and radius.max() <= 1 + 1e-6  # the prototype AUs' mean intensity
        np.testing.assert_allclose(angle, CIRCUMPLEX[name], atol=1e-3)
        assert radius.std() > 0.01  # the intensity varies from face to face
    assert set(CIRCUMPLEX) == set(PROTOTYPES) - {'neutral'}
    # happy is pleasant, sad unpleasant and calm, surprise and fear aroused
    mean = {name: va[labels == k].mean(0) for k, name in enumerate(names)}
    assert mean['happy'][0] > 0.7 and mean['sad'][0] < -0.5 and mean['sad'][1] < -0.3
    assert mean['surprise'][1] > 0.6 and mean['fear'][1] > 0.6 and mean['fear'][0] < 0


# ---------------------------------------------------------------- the batched pipeline

def test_valence_arousal_travel_through_prepare_and_collate(tmp_path):
    root = _affectnet(tmp_path / 'AffectNet', [('1/a.png', 1, 0.75, 0.25), ('1/b.png', 3, -2, -2)])
    ds, _ = _load('affectnet', root, tmp_path)
    prepared = prepare_dataset(ds['train'], v2.Identity(), columns=('valence', 'arousal'))
    examples = [prepared[i] for i in range(len(prepared))]
    batch = BatchCollate({'input_size': (3, 8, 8), 'interpolation': 'bilinear'}, 'affectnet', is_training=True)(
        examples)
    by_label = {int(label): row for label, row in zip(batch.labels, batch.valence_arousal, strict=True)}
    assert by_label[1].tolist() == [0.75, 0.25]
    assert all(math.isnan(v) for v in by_label[3].tolist())  # no targets: NaN, left out of the loss
    assert batch.valence_arousal.dtype == torch.float32
    plain = BatchCollate({'input_size': (3, 8, 8), 'interpolation': 'bilinear'})(
        [prepare_dataset(ds['train'], v2.Identity())[0]])
    assert plain.valence_arousal is None
    with pytest.raises(ValueError, match='no column gender'):
        prepare_dataset(ds['train'], v2.Identity(), columns=('gender',))
