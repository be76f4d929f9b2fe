"""Label files that point out of the data set: '..', absolute paths and symlinks are refused with file:line, and
no file outside the data directory is ever opened (an audit hook watches every `open`)."""
import csv
import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

from timm_dan.data import load_fer_dataset
from timm_dan.data.builder import OutsideDataDirError

_OPENED: list[str] = []
_WATCHED: list[str] = []  # folders whose opening is recorded (the fixture's "outside" folder)


def _audit(event, args):
    if event == 'open' and _WATCHED and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if any(path.startswith(w) for w in _WATCHED):
            _OPENED.append(path)


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one records only while a test watches


@pytest.fixture
def outside(tmp_path):
    """A folder beside the data set holding a file no loader may open (`secret.jpg`, a valid image)."""
    folder = tmp_path / 'outside'
    folder.mkdir()
    Image.new('RGB', (8, 8), (1, 2, 3)).save(folder / 'secret.jpg')
    np.save(folder / 'secret.npy', np.array(3))
    (folder / 'labels.txt').write_text('train_00001.jpg 1\n')
    _OPENED.clear()
    _WATCHED[:] = [str(folder)]
    yield folder
    _WATCHED.clear()
    assert not _OPENED, f'opened outside the data directory: {_OPENED}'


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (12, 12), (90, 90, 90)).save(path)


def _refused(name, root, tmp_path, where, **options):
    with pytest.raises(OutsideDataDirError, match=re.escape(where)) as e:
        load_fer_dataset(name, root, cache_dir=str(tmp_path / 'cache'), **options)
    return str(e.value)


# ---------------------------------------------------------------- RAF-DB

def _rafdb(tmp_path, extra_line):
    root = tmp_path / 'rafdb'
    _image(root / 'Image' / 'aligned' / 'train_00001_aligned.jpg')
    (root / 'EmoLabel').mkdir(parents=True)
    (root / 'EmoLabel' / 'list_patition_label.txt').write_text(f'train_00001.jpg 1\n{extra_line}\n')
    return root


def test_rafdb_dotdot_and_symlinked_image(tmp_path, outside):
    root = _rafdb(tmp_path, 'train_/../../../../outside/secret.jpg 1')
    message = _refused('rafdb', root, tmp_path, 'list_patition_label.txt:2')
    assert "climbs out" in message
    root = _rafdb(tmp_path / 'b', 'train_00002.jpg 4')
    (root / 'Image' / 'aligned' / 'train_00002_aligned.jpg').symlink_to(outside / 'secret.jpg')
    message = _refused('rafdb', root, tmp_path, 'list_patition_label.txt:2')
    assert f'symlink to {outside / "secret.jpg"}' in message and 'outside the data directory' in message


def test_rafdb_label_file_and_image_folder_symlinked_out(tmp_path, outside):
    root = _rafdb(tmp_path, 'train_00002.jpg 4')
    label_file = root / 'EmoLabel' / 'list_patition_label.txt'
    label_file.unlink()
    label_file.symlink_to(outside / 'labels.txt')
    _refused('rafdb', root, tmp_path, str(label_file))
    root = _rafdb(tmp_path / 'b', 'train_00002.jpg 4')
    (root / 'Image' / 'original').symlink_to(outside, target_is_directory=True)
    _refused('rafdb', root, tmp_path, str(root / 'Image' / 'original'), aligned=False)


def test_a_symlink_that_stays_inside_is_followed(tmp_path, outside):
    root = _rafdb(tmp_path, 'train_00002.jpg 4')
    (root / 'Image' / 'aligned' / 'train_00002_aligned.jpg').symlink_to(root / 'Image' / 'aligned' /
                                                                        'train_00001_aligned.jpg')
    ds = load_fer_dataset('rafdb', root, cache_dir=str(tmp_path / 'cache'))
    assert ds['train'].num_rows == 2


# ---------------------------------------------------------------- ExpW

def _expw(tmp_path, extra_line):
    root = tmp_path / 'expw'
    _image(root / 'image' / 'origin' / 'a.jpg')
    (root / 'label').mkdir(parents=True)
    (root / 'label' / 'label.lst').write_text(f'a.jpg 0 1 1 8 8 0.9 3\n{extra_line}\n')
    return root


@pytest.mark.parametrize('name, expected', [
    ('../../../outside/secret.jpg', 'climbs out'),
    ('{outside}/secret.jpg', 'is an absolute path'),
    ('sub/../../../../outside/secret.jpg', 'climbs out'),
    ('evil\x00.jpg', 'NUL character'),
])
def test_expw_names_leaving_the_data_dir(tmp_path, outside, name, expected):
    name = name.format(outside=outside)
    root = _expw(tmp_path, f'{name} 0 1 1 8 8 0.9 3')
    assert expected in _refused('expw', root, tmp_path, 'label.lst:2')


def test_expw_symlinked_image(tmp_path, outside):
    root = _expw(tmp_path, 'b.jpg 0 1 1 8 8 0.9 3')
    (root / 'image' / 'origin' / 'b.jpg').symlink_to(outside / 'secret.jpg')
    _refused('expw', root, tmp_path, 'label.lst:2')


# ---------------------------------------------------------------- AffectNet

def _affectnet_full(tmp_path, name):
    root = tmp_path / 'affectnet'
    lists = root / 'Manually_Annotated_file_lists'
    lists.mkdir(parents=True)
    _image(root / 'Manually_Annotated_Images' / '1' / 'a.jpg')
    for file, rows in (('training.csv', [['1/a.jpg', 0, 0, 8, 8, '', 1, 0, 0], [name, 0, 0, 8, 8, '', 2, 0, 0]]),
                       ('validation.csv', [['1/a.jpg', 0, 0, 8, 8, '', 1, 0, 0]])):
        with open(lists / file, 'w', newline='') as f:
            csv.writer(f).writerows(rows)
    return root


@pytest.mark.parametrize('name', ['../../outside/secret.jpg', '{outside}/secret.jpg', '1/link.jpg'])
def test_affectnet_csv_paths_leaving_the_data_dir(tmp_path, outside, name):
    root = _affectnet_full(tmp_path, name.format(outside=outside))
    (root / 'Manually_Annotated_Images' / '1' / 'link.jpg').symlink_to(outside / 'secret.jpg')
    _refused('affectnet', root, tmp_path, 'training.csv:2')


def test_affectnet_compact_symlinked_image_and_annotation(tmp_path, outside):
    root = tmp_path / 'compact'
    for split in ('train_set', 'val_set'):
        _image(root / split / 'images' / '0.jpg')
        (root / split / 'annotations').mkdir(parents=True)
        np.save(root / split / 'annotations' / '0_exp.npy', np.array(1))
    annotation = root / 'val_set' / 'annotations' / '1_exp.npy'
    annotation.symlink_to(outside / 'secret.npy')
    _image(root / 'val_set' / 'images' / '1.jpg')
    _refused('affectnet', root, tmp_path, str(annotation))
    annotation.unlink()
    np.save(annotation, np.array(2))
    image = root / 'val_set' / 'images' / '2.jpg'
    image.symlink_to(outside / 'secret.jpg')
    _refused('affectnet', root, tmp_path, str(image))


# ---------------------------------------------------------------- FERPlus, SFEW

def test_ferplus_image_name_leaving_the_data_dir(tmp_path, outside):
    root = tmp_path / 'fer'
    root.mkdir()
    pixels = ' '.join(['7'] * 2304)
    (root / 'fer2013.csv').write_text(f'emotion,pixels,Usage\n3,{pixels},Training\n4,{pixels},Training\n')
    votes = ',0,10,0,0,0,0,0,0,0,0'
    (root / 'fer2013new.csv').write_text('Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,'
                                         f'contempt,unknown,NF\nTraining,fer0.png{votes}\n'
                                         f'Training,../../etc/passwd{votes}\n')
    _refused('ferplus', root, tmp_path, 'fer2013new.csv:3')


def test_sfew_symlinked_image_and_class_folder(tmp_path, outside):
    root = tmp_path / 'sfew'
    for split in ('Train', 'Val'):
        _image(root / split / 'Happy' / 'a.png')
    (root / 'Val' / 'Happy' / 'b.jpg').symlink_to(outside / 'secret.jpg')
    _refused('sfew', root, tmp_path, str(root / 'Val' / 'Happy' / 'b.jpg'))
    (root / 'Val' / 'Happy' / 'b.jpg').unlink()
    (root / 'Val' / 'Sad').symlink_to(outside, target_is_directory=True)
    _refused('sfew', root, tmp_path, f"{root / 'Val' / 'Sad'} leads through a symlink")  # the folder itself
