"""FERPlus: `fer2013new.csv`, ten annotators' votes per FER2013 image, joined row for row with the FER2013 pixels."""
from collections import Counter
from pathlib import Path

import numpy as np
from datasets import Sequence, Value

from ...labels import FERPLUS
from ..builder import SourceScan, inside_data_dir, layout_error
from ._parse import parse
from .base import NON_COMMERCIAL, CardEntry, FERDatasetInfo, FERSource
from .fer2013 import USAGE, csv_rows, fer2013_rows, usage_split

VOTE_COLUMNS = (*FERPLUS.native, 'unknown', 'NF')  # the last two are not expressions


def majority_vote(votes: np.ndarray) -> tuple[int, np.ndarray]:
    """FERPlus majority rule over the 10 vote columns: single votes are outliers and removed; the top class must
    hold more than half of the remaining votes (so ties are dropped). Returns (vote column or -1, distribution)."""
    votes = np.where(votes <= 1, 0, votes).astype(np.float64)
    total = votes.sum()
    top = int(votes.argmax())
    if total == 0 or votes[top] <= total / 2:
        return -1, votes
    return top, votes


def scan(root: Path) -> SourceScan:
    new_path, pixels_path = root / 'fer2013new.csv', root / 'fer2013.csv'
    if not new_path.is_file():
        raise layout_error(new_path, 'ferplus')
    pixels = [(line, p) for line, _, p, _ in fer2013_rows(pixels_path)]
    splits = {split: [] for split in USAGE.values()}
    dropped = {split: Counter() for split in USAGE.values()}
    rows = list(csv_rows(new_path, ('Usage', 'Image name'), 'ferplus'))
    if len(rows) != len(pixels):
        raise ValueError(f'{new_path}: {len(rows)} rows but {pixels_path} has {len(pixels)}: they must match row for '
                         'row (FERPlus relabels FER2013 in its order)')
    for (line, row), (_, image) in zip(rows, pixels, strict=True):
        if len(row) != 12:
            raise ValueError(f'{new_path}:{line}: expected 12 columns (Usage, Image name, {", ".join(VOTE_COLUMNS)}), '
                             f'got {len(row)}')
        split, name = usage_split(row[0], new_path, line), row[1].strip()
        if not name:  # FERPlus blanks the name of images it removed
            dropped[split]['no image name (removed by FERPlus)'] += 1
            continue
        inside_data_dir(root, root, name, f'{new_path}:{line}')  # a name, never opened: still one of the data set's
        votes = np.array([parse(int, v, new_path, line, 'an integer vote count') for v in row[2:]])
        top, distribution = majority_vote(votes)
        if top < 0 or top >= len(FERPLUS):
            reason = 'no majority (tie or spread votes)' if top < 0 else f'{VOTE_COLUMNS[top]} majority'
            dropped[split][reason] += 1
            continue
        soft = np.zeros(len(FERPLUS))
        soft[list(FERPLUS.to_canonical)] = distribution[:len(FERPLUS)]
        splits[split].append({'pixels': image, 'file': name, 'source_label': top,
                              'label': FERPLUS.canonical(top), 'soft_label': (soft / soft.sum()).tolist()})
    features = {'source_label': Value('int32'), 'soft_label': Sequence(Value('float32'), length=len(FERPLUS))}
    return SourceScan(splits=splits, features=features, label_files=[new_path, pixels_path], dropped=dropped)


SOURCE = FERSource(
    info=FERDatasetInfo(
        name='ferplus', title='FERPlus', splits=('train', 'validation', 'test'), num_classes=(8,),
        layout=(
            'DATA_DIR/\n'
            '  fer2013new.csv   columns Usage, Image name, neutral, happiness, surprise, sadness, anger, disgust,\n'
            '                   fear, contempt, unknown, NF (10 annotator votes per row)\n'
            '  fer2013.csv      the FER2013 pixels, same row order'
        ),
        citation=('Barsoum, Zhang, Canton Ferrer, Zhang. Training Deep Networks for Facial Expression Recognition '
                  'with Crowd-Sourced Label Distribution. ICMI 2016.'),
    ),
    scan=scan, label_map=FERPLUS,
    cards={'ferplus': CardEntry(
        'FERPlus', 'ferplus', 'test', '48x48 grayscale face crops (FER2013 images), upsampled', NON_COMMERCIAL,
    )},
)
