"""ExpW: `label/label.lst` face boxes over `image/origin/`; no official split, so a seeded stratified one."""
from collections import Counter
from pathlib import Path

import numpy as np
from datasets import Sequence, Value

from ...labels import EXPW
from ..builder import SourceScan, check_inside, inside_data_dir, layout_error
from ._parse import label_code, parse, text_lines
from .base import NON_COMMERCIAL, CardEntry, FERDatasetInfo, FERSource

LABEL_FILE = 'label/label.lst'
IMAGE_DIR = 'image/origin'
SPLITS = ('train', 'validation', 'test')


def stratified_split(labels: list[int], fractions: tuple[float, ...], seed: int) -> list[int]:
    """Split index per example: each class is shuffled by `seed` and cut by `fractions` (rounded per class)."""
    labels = np.asarray(labels)
    assignment = np.zeros(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    bounds = np.cumsum(fractions) / np.sum(fractions)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(bounds * len(members)).astype(int)
        for split, (start, stop) in enumerate(zip(np.r_[0, cuts[:-1]], cuts, strict=True)):
            assignment[members[start:stop]] = split
    return assignment.tolist()


def scan(root: Path, seed: int, split_fractions: tuple[float, float, float]) -> SourceScan:
    label_file, image_dir = root / LABEL_FILE, root / IMAGE_DIR
    for path in (label_file, image_dir):
        if not path.exists():
            raise layout_error(path, 'expw')
    check_inside(root, label_file, image_dir)
    if len(split_fractions) != len(SPLITS) or min(split_fractions) < 0 or sum(split_fractions) <= 0:
        raise ValueError(f'expw: split_fractions must be three non-negative numbers, got {split_fractions}')
    records = []
    for line_no, line in enumerate(text_lines(label_file), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 8:
            raise ValueError(f'{label_file}:{line_no}: expected "image_name face_id top left right bottom confidence '
                             f'expression", got {line!r}')
        top, left, right, bottom = (parse(int, v, label_file, line_no, 'an integer box coordinate')
                                    for v in parts[2:6])
        native = label_code(parts[7], label_file, line_no, EXPW)
        records.append({
            'path': str(inside_data_dir(root, image_dir, parts[0], f'{label_file}:{line_no}')),
            'file': f'{parts[0]}#{parts[1]}', 'source_label': native,
            'label': EXPW.canonical(native), 'bbox': [left, top, right - left, bottom - top],
            'confidence': parse(float, parts[6], label_file, line_no, 'a number (confidence)'),
        })
    assignment = stratified_split([r['label'] for r in records], split_fractions, seed)
    splits = {split: [r for r, a in zip(records, assignment, strict=True) if a == i] for i, split in enumerate(SPLITS)}
    features = {'source_label': Value('int32'), 'bbox': Sequence(Value('int32'), length=4),
                'confidence': Value('float32')}
    return SourceScan(splits=splits, features=features, label_files=[label_file],
                      dropped={s: Counter() for s in SPLITS})


SOURCE = FERSource(
    info=FERDatasetInfo(
        name='expw', title='Expression in-the-Wild (ExpW)', splits=SPLITS, num_classes=(7,),
        layout=(
            'DATA_DIR/\n'
            '  label/label.lst   lines "image_name face_id top left right bottom confidence expression"\n'
            '                    (expression 0..6 = angry, disgust, fear, happy, sad, surprise, neutral)\n'
            '  image/origin/<image_name>'
        ),
        citation=('Zhang, Luo, Loy, Tang. From Facial Expression Recognition to Interpersonal Relation Prediction. '
                  'IJCV 126, 2018.'),
    ),
    defaults={'seed': 0, 'split_fractions': (0.8, 0.1, 0.1)}, scan=scan, label_map=EXPW,
    cards={'expw': CardEntry(
        'ExpW', 'expw', 'test', 'faces cropped from web images with the data set\'s boxes', NON_COMMERCIAL,
    )},
)
