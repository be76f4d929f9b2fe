"""RAF-DB basic: `EmoLabel/list_patition_label.txt` + `Image/aligned/` (or `Image/original/`), and the manual
annotations of `Annotation/manual/` (five landmarks, gender, race, age group) when that folder is present."""
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from datasets import ClassLabel, Sequence, Value

from ...labels import RAFDB
from ..builder import SourceScan, check_inside, inside_data_dir, layout_error
from ._parse import code, label_code, parse, text_lines
from .base import NON_COMMERCIAL, CardEntry, FERDatasetInfo, FERSource

LABEL_FILE = 'EmoLabel/list_patition_label.txt'  # sic: the distributed file name
MANUAL_DIR = 'Annotation/manual'
ATTRIBUTES = {  # line 6, 7, 8 of <image>_manu_attri.txt: the codes' meanings, in code order (RAF-DB's README)
    'gender': ('male', 'female', 'unsure'),
    'race': ('Caucasian', 'African-American', 'Asian'),
    'age': ('0-3', '4-19', '20-39', '40-69', '70+'),
}
NUM_LANDMARKS = 5  # left eye, right eye, nose tip, left and right mouth corner (original image's pixels)


def _manual_annotation(path: Path) -> dict[str, Any]:
    """Lines 1-5 "x<TAB>y" landmarks, lines 6-8 the gender, race and age codes; blank lines at the end allowed."""
    lines = text_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    expected = NUM_LANDMARKS + len(ATTRIBUTES)
    if len(lines) != expected:
        raise ValueError(f'{path}:{min(len(lines), expected) + 1}: expected {expected} lines (5 landmarks "x y", then '
                         f'gender, race, age), got {len(lines)}')
    landmarks = []
    for line_no, line in enumerate(lines[:NUM_LANDMARKS], 1):
        values = line.split()
        if len(values) != 2:
            raise ValueError(f'{path}:{line_no}: expected a landmark "x<TAB>y", got {line!r}')
        landmarks += [parse(float, v, path, line_no, 'a landmark coordinate') for v in values]
    record: dict[str, Any] = {'landmarks': landmarks}
    for line_no, (column, names) in enumerate(ATTRIBUTES.items(), NUM_LANDMARKS + 1):
        meaning = ', '.join(f'{i} {name}' for i, name in enumerate(names))
        record[column] = code(lines[line_no - 1].strip(), path, line_no, range(len(names)), f'{column}: {meaning}')
    return record


def _manual_dir(root: Path, attributes: bool) -> Optional[Path]:
    folder = root / MANUAL_DIR
    if attributes and not folder.is_dir() and folder.with_suffix('.zip').is_file():
        warnings.warn(f'rafdb: {folder}.zip is not unpacked; unzip it in {folder.parent} for the gender, race and '
                      f'age columns', stacklevel=4)
    return folder if attributes and folder.is_dir() else None


def scan(root: Path, aligned: bool, attributes: bool) -> SourceScan:
    label_file = root / LABEL_FILE
    image_dir = root / 'Image' / ('aligned' if aligned else 'original')
    for path in (label_file, image_dir):
        if not path.exists():
            raise layout_error(path, 'rafdb')
    check_inside(root, label_file, image_dir)
    manual = _manual_dir(root, attributes)
    if manual is not None:
        check_inside(root, manual)
    splits = {'train': [], 'test': []}
    manual_files, lacking = [], []
    for line_no, line in enumerate(text_lines(label_file), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].startswith(('train_', 'test_')):
            raise ValueError(f'{label_file}:{line_no}: expected "train_00001.jpg 5" or "test_0001.jpg 3", got {line!r}')
        name, native = parts[0], label_code(parts[1], label_file, line_no, RAFDB)
        stem, suffix = name.rsplit('.', 1) if '.' in name else (name, 'jpg')
        where = f'{label_file}:{line_no}'
        image = inside_data_dir(root, image_dir, f'{stem}_aligned.{suffix}' if aligned else name, where)
        record = {'path': str(image), 'file': name, 'source_label': native, 'label': RAFDB.from_code(native)}
        if manual is not None:
            path = inside_data_dir(root, manual, f'{stem}_manu_attri.txt', where)
            if path.is_file():
                record.update(_manual_annotation(path))
                manual_files.append(path)
            else:
                lacking.append(path)
        splits[name.split('_', 1)[0]].append(record)
    if lacking:
        raise FileNotFoundError(f'rafdb: {len(lacking)} image(s) of {label_file.name} have no manual annotation in '
                                f'{manual}, e.g. {lacking[0]}; restore them, or pass attributes=False to load '
                                f'without the gender, race and age columns')
    features = {'source_label': Value('int32')}
    if manual is not None:
        features.update({'landmarks': Sequence(Value('float32'), length=2 * NUM_LANDMARKS),
                         **{column: ClassLabel(names=list(names)) for column, names in ATTRIBUTES.items()}})
    return SourceScan(splits=splits, features=features, label_files=[label_file], stat_files=manual_files,
                      dropped={s: Counter() for s in splits})


SOURCE = FERSource(
    info=FERDatasetInfo(
        name='rafdb', title='RAF-DB (basic emotion subset)', splits=('train', 'test'), num_classes=(7,),
        layout=(
            'DATA_DIR/\n'
            '  EmoLabel/list_patition_label.txt   lines "train_00001.jpg 5" (labels 1..7: surprise, fear, disgust,\n'
            '                                     happiness, sadness, anger, neutral)\n'
            '  Image/aligned/train_00001_aligned.jpg   (100x100 aligned faces; aligned=False reads\n'
            '  Image/original/train_00001.jpg          the original images instead)\n'
            '  Annotation/manual/train_00001_manu_attri.txt   optional (unzip manual.zip): lines 1-5 landmarks\n'
            '      "x<TAB>y", 6 gender (0 male, 1 female, 2 unsure), 7 race (0 Caucasian, 1 African-American,\n'
            '      2 Asian), 8 age (0: 0-3, 1: 4-19, 2: 20-39, 3: 40-69, 4: 70+) -> columns gender, race, age'
        ),
        citation=('Li, Deng, Du. Reliable Crowdsourcing and Deep Locality-Preserving Learning for Expression '
                  'Recognition in the Wild. CVPR 2017.'),
    ),
    defaults={'aligned': True, 'attributes': True}, scan=scan, label_map=RAFDB,
    cards={'rafdb': CardEntry(
        'RAF-DB (basic, 7 classes)', 'raf-db', 'test',
        'tightly aligned face crops (RAF-DB ships 100x100 faces aligned on the eyes, upsampled to 224x224); '
        'detect and align faces the same way before prediction', NON_COMMERCIAL, 'http://www.whdeng.cn/raf/model1.html',
    )},
)
