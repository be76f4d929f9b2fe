"""AffectNet, either release: the full one (csv lists + face boxes) or the compact one (images + .npy annotations).

Expression codes 0-7 are the eight emotions; 8 (none), 9 (uncertain) and 10 (no-face) are not, and are dropped and
counted by reason. Valence and arousal are in [-1, 1]; the release marks images without them with -2 (the
uncertain and no-face images, Mollahosseini et al. 2019), which is read as missing (None), never as a value.
Code 8 images do have valence and arousal but no class, so the joint class + valence/arousal training drops them
too. Any other value outside [-1, 1] is an error naming the file and line.
"""
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np
from datasets import Sequence, Value

from ...labels import AFFECTNET
from ..builder import SourceScan, check_inside, inside_data_dir, layout_error, list_images
from ._parse import code, csv_lines, parse, read_npy
from .base import NON_COMMERCIAL, CardEntry, FERDatasetInfo, FERSource

FULL_LISTS = 'Manually_Annotated_file_lists'
FULL_IMAGES = 'Manually_Annotated_Images'
FULL_CSV = {'train': 'training.csv', 'validation': 'validation.csv'}
COMPACT = {'train': 'train_set', 'validation': 'val_set'}
COLUMNS = ('subDirectory_filePath', 'face_x', 'face_y', 'face_width', 'face_height', 'facial_landmarks',
           'expression', 'valence', 'arousal')
CODES = range(11)
MEANING = ', '.join(AFFECTNET.native) + ', none, uncertain, no-face'
NON_EMOTION = {8: 'code 8 (none)', 9: 'code 9 (uncertain)', 10: 'code 10 (no-face)'}
VA_NOT_ANNOTATED = -2.0  # the release's valence/arousal of images it gives none for

FEATURES = {
    'source_label': Value('int32'),
    'bbox': Sequence(Value('int32'), length=4),
    'landmarks': Sequence(Value('float32')),
    'valence': Value('float32'),
    'arousal': Value('float32'),
}


def _keep(native: int, num_classes: int, dropped: Counter) -> bool:
    """Codes 8-10 are not emotions; contempt (7) is out of a 7-class set. Both are counted, never silent."""
    if native in NON_EMOTION:
        dropped[NON_EMOTION[native]] += 1
        return False
    if native >= num_classes:
        dropped[f'{AFFECTNET.native[native]} (num_classes={num_classes})'] += 1
        return False
    return True


def _affect(value: float, where: str, what: str) -> Optional[float]:
    """A valence or arousal value in [-1, 1]; the release's -2 (none given) becomes None."""
    if value == VA_NOT_ANNOTATED:
        return None
    if not -1.0 <= value <= 1.0:
        raise ValueError(f'{where}: expected {what} in [-1, 1] (or -2: not annotated), got {value}')
    return value


def _landmarks(text: str, path: Path, line: int) -> list[float]:
    values = [v for v in text.split(';') if v]
    return parse(lambda v: np.array(v, dtype=np.float64).tolist(), values, path, line,
                 'landmarks as numbers separated by ";"')


def _scan_full(root: Path, num_classes: int) -> SourceScan:
    splits, dropped, files = {}, {}, []
    image_root = root / FULL_IMAGES
    if not image_root.is_dir():
        raise layout_error(image_root, 'affectnet')
    for split, name in FULL_CSV.items():
        path = root / FULL_LISTS / name
        if not path.is_file():
            raise layout_error(path, 'affectnet')
        check_inside(root, path, image_root)
        files.append(path)
        records, dropped[split] = [], Counter()
        with open(path, newline='', encoding='utf-8-sig') as f:
            for line_no, row in csv_lines(f, path):
                if not row or (line_no == 1 and row[0] == COLUMNS[0]):  # the header is optional
                    continue
                if len(row) != len(COLUMNS):
                    raise ValueError(f'{path}:{line_no}: expected {len(COLUMNS)} columns ({", ".join(COLUMNS)}), '
                                     f'got {len(row)}')
                native = code(row[6], path, line_no, CODES, MEANING)
                if not _keep(native, num_classes, dropped[split]):
                    continue
                box = [parse(int, v, path, line_no, f'an integer {c}') for v, c in zip(row[1:5], COLUMNS[1:5],
                                                                                         strict=True)]
                records.append({
                    'path': str(inside_data_dir(root, image_root, row[0], f'{path}:{line_no}')), 'file': row[0],
                    'source_label': native,
                    'label': AFFECTNET.canonical(native),
                    'bbox': box, 'landmarks': _landmarks(row[5], path, line_no),
                    **{name: _affect(parse(float, text, path, line_no, f'a number ({name})'), f'{path}:{line_no}', name)
                       for name, text in (('valence', row[7]), ('arousal', row[8]))},
                })
        splits[split] = records
    return SourceScan(splits=splits, features=FEATURES, label_files=files, dropped=dropped)


def _npy(path: Path, root: Path) -> Optional[np.ndarray]:
    """A compact-release annotation: numbers, or numbers stored as a string (never unpickled)."""
    if not path.is_file():
        return None
    inside_data_dir(root, path.parent, path.name, str(path))
    value = read_npy(path)  # its errors name the file
    if value.dtype.kind in 'US':
        text = str(value.reshape(-1)[0] if value.size == 1 else ' '.join(map(str, value.ravel())))
        try:
            value = np.array(text.replace(';', ' ').replace(',', ' ').split(), dtype=np.float64)
        except ValueError:
            raise ValueError(f'{path}: expected a number (or numbers) stored with numpy.save, got the text '
                             f'{text[:80]!r}') from None
    return value.astype(np.float64).ravel()


def _scan_compact(root: Path, num_classes: int) -> SourceScan:
    splits, dropped, files = {}, {}, []
    for split, name in COMPACT.items():
        images_dir, annotations = root / name / 'images', root / name / 'annotations'
        for path in (images_dir, annotations):
            if not path.is_dir():
                raise layout_error(path, 'affectnet')
        check_inside(root, images_dir, annotations)
        labelled = {p.name[:-len('_exp.npy')]: p for p in sorted(annotations.glob('*_exp.npy'))}
        images, others = list_images(images_dir, root)
        by_stem = {p.stem: p for p in images}
        records, dropped[split] = [], Counter()
        if others:
            dropped[split]['not an image file'] += len(others)
        unlabelled = len(set(by_stem) - set(labelled))
        if unlabelled:
            dropped[split]['image without N_exp.npy'] += unlabelled
        for key in sorted(labelled, key=lambda k: (len(k), k)):
            exp_path = labelled[key]
            files.append(exp_path)
            value = _npy(exp_path, root)
            if value is None or value.size != 1 or value[0] != int(value[0]):
                raise ValueError(f'{exp_path}: expected one integer expression code, got {value}')
            native = code(str(int(value[0])), exp_path, 1, CODES, MEANING)
            if not _keep(native, num_classes, dropped[split]):
                continue
            record: dict[str, Any] = {
                'path': str(by_stem.get(key, images_dir / f'{key}.jpg')), 'file': f'{name}/images/{key}.jpg',
                'label': AFFECTNET.canonical(native), 'source_label': native, 'bbox': None,
            }
            for column, suffix in (('valence', 'val'), ('arousal', 'aro'), ('landmarks', 'lnd')):
                extra = annotations / f'{key}_{suffix}.npy'
                value = _npy(extra, root)
                if value is not None:
                    files.append(extra)
                    if column == 'landmarks':
                        record[column] = value.tolist()
                    else:
                        record[column] = _affect(float(value[0]), extra, column)
            records.append(record)
        splits[split] = records
    return SourceScan(splits=splits, features=FEATURES, label_files=[], stat_files=files, dropped=dropped)


def scan(root: Path, num_classes: int) -> SourceScan:
    """Detect the release: `Manually_Annotated_file_lists/` (full) or `train_set/` + `val_set/` (compact)."""
    if num_classes not in (7, 8):
        raise ValueError(f'affectnet: num_classes must be 7 or 8, got {num_classes}')
    if (root / FULL_LISTS).is_dir():
        return _scan_full(root, num_classes)
    if (root / COMPACT['train']).is_dir() or (root / COMPACT['validation']).is_dir():
        return _scan_compact(root, num_classes)
    raise layout_error(root / FULL_LISTS, 'affectnet')


_FACES = 'loose, unaligned face crops of web photos (AffectNet\'s face boxes), resized to 224x224'
SOURCE = FERSource(
    info=FERDatasetInfo(
        name='affectnet', title='AffectNet (manually annotated)', splits=('train', 'validation'), num_classes=(7, 8),
        layout=(
            'DATA_DIR/ holding either the full release\n'
            '  Manually_Annotated_file_lists/training.csv, validation.csv   (subDirectory_filePath, face_x, face_y,\n'
            '      face_width, face_height, facial_landmarks, expression, valence, arousal)\n'
            '  Manually_Annotated_Images/<subDirectory_filePath>\n'
            'or the compact release\n'
            '  train_set/images/N.jpg, train_set/annotations/N_exp.npy (+ N_val.npy, N_aro.npy, N_lnd.npy)\n'
            '  val_set/images/N.jpg,   val_set/annotations/N_exp.npy   ...\n'
            'expression codes 0..7 = neutral, happy, sad, surprise, fear, disgust, anger, contempt;\n'
            '8, 9, 10 (none, uncertain, no-face) are dropped; valence/arousal in [-1, 1], -2 = not annotated'
        ),
        citation=('Mollahosseini, Hasani, Mahoor. AffectNet: A Database for Facial Expression, Valence, and Arousal '
                  'Computing in the Wild. IEEE Trans. Affective Computing 10(1), 2019.'),
    ),
    defaults={'num_classes': 8}, scan=scan, label_map=AFFECTNET,
    cards={  # the 7- and 8-class tasks: one release, two model-index configs
        f'affectnet{k}': CardEntry(f'AffectNet ({k} classes)', 'affectnet', 'validation', _FACES, NON_COMMERCIAL,
                                   'http://mohammadmahoor.com/affectnet/', f'{k}-class')
        for k in (7, 8)
    },
)
